"""The ``ecs`` provider: tasks on AWS ECS Fargate, with SQS queues, S3 storage and CloudWatch Logs.

(Being built: see issue 3.)
"""
