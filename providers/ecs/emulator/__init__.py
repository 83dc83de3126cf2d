"""A local AWS for Mayfly: moto for SQS, S3, CloudWatch Logs and IAM, plus an ECS API that runs real containers.

``mayfly emulator aws`` (or :class:`AwsEmulator` from Python) serves, on one
port (default 4566), everything an ``ecs`` target talks to:

- **ECS**, implemented here from the ECS API reference: CreateCluster,
  DescribeClusters, ListClusters, DeleteCluster, RegisterTaskDefinition,
  DescribeTaskDefinition, DeregisterTaskDefinition, ListTaskDefinitions,
  RunTask, DescribeTasks, StopTask, ListTasks, TagResource, UntagResource,
  ListTagsForResource. RunTask really runs the task definition's container in
  the local Docker engine, with the overrides (command, environment), the
  task's cpu and memory as hard limits (exceeding the memory is a real OOM
  kill, reported as ``OutOfMemoryError: Container killed due to memory usage``
  with exit code 137), the container's user and stopTimeout. Tasks go through
  ECS's lifecycle (PROVISIONING, PENDING, RUNNING, DEPROVISIONING, STOPPED) with
  its timestamps, stop codes (``EssentialContainerExited``, ``UserInitiated``,
  ``TaskFailedToStart``) and reasons (``CannotPullContainerError``,
  ``ResourceInitializationError``), stay describable for an hour after they
  stop, honour ``clientToken`` idempotency (``ConflictException`` on reuse with
  other parameters) and keep ``startedBy`` and tags (StopTask deletes a task's
  tags, as ECS's API reference says it does). A container with the
  ``awslogs`` driver has its stdout and stderr in CloudWatch Logs, stream
  ``PREFIX/CONTAINER/TASK_ID``, within about a second of each line.
- **Everything else** (SQS, S3 and presigned URLs, CloudWatch Logs, IAM, STS,
  EC2, ECR, ...) is moto's server, in the same process.

Use the endpoint it prints (``http://172.17.0.1:4566`` on Linux: the Docker
bridge's gateway) for boto3, for the target's ``endpoint_url`` and thus for the
presigned URLs task containers fetch; see :mod:`.network`. Which local image a
task's image reference runs is explained in :mod:`.images`: nothing is pulled.
Any credentials are accepted (e.g. ``AWS_ACCESS_KEY_ID=test``).

What it does not do
    No IAM enforcement (roles and policies are recorded, never checked; no
    signature checks, presigned URLs never expire). No ENIs, VPCs or security
    groups: subnets are recorded, every task is on the local bridge network
    and reaches whatever this host reaches. No Fargate capacity limits, launch
    rate limits or throttling unless a test injects them per cluster
    (``inject_fault``: RunTask ``failures`` for capacity and quotas,
    ``ThrottlingException``; see :mod:`.faults`), no Spot interruptions (FARGATE_SPOT runs like
    FARGATE). No EC2 or EXTERNAL launch type (RunTask answers "No Container
    Instances were found in your cluster."), no services, no container
    instances, no EventBridge task state events. One container per task definition; volumes, health
    checks, port mappings and the task metadata endpoint are accepted and
    ignored; the task role's credentials are not served to the container.
    ``secrets`` are read from moto's SSM / Secrets Manager at start (no IAM
    check); a missing one fails the task with ECS's ResourceInitializationError.
    Image pulls: none, images must exist locally. State is in memory and lost
    on exit (moto's state is process-wide, see :mod:`.server`).
"""

from mayfly.providers.ecs.emulator.server import AwsEmulator

__all__ = ["AwsEmulator"]
