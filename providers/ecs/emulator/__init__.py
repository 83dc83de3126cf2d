"""A local AWS for Mayfly: moto for SQS, S3, CloudWatch Logs and IAM, plus an ECS API that runs real containers."""
