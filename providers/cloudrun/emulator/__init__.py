"""A local Google Cloud for Mayfly: a Cloud Run Admin API that runs real containers, plus Pub/Sub and GCS.

``mayfly emulator gcp`` (or :class:`GcpEmulator` from Python) serves everything a
``cloudrun`` target talks to:

- **Cloud Run Admin API v2** (REST, JSON; :mod:`.api`), implemented here from the
  API reference: jobs create/get/list/update/delete (a job's ``startExecutionToken``
  or ``runExecutionToken`` starts the execution ``JOB-TOKEN`` once, its operation
  done when that execution has started, or completed), RunJob with overrides (container
  args and env, taskCount, timeout), executions get/list/delete/cancel, tasks
  get/list, and the long-running operations (get, wait, delete). The real
  ``google.cloud.run_v2`` clients work against it (``transport="rest"``,
  ``ClientOptions(api_endpoint=...)``, ``AnonymousCredentials()``). RunJob's
  operation carries the new Execution as its metadata at once and is done when
  the execution completes (its response is then the Execution). Each task
  attempt is a container in the local Docker engine (:mod:`.runner`): the
  template's image, command, args and env with the overrides, cpu and memory as
  hard limits (memory without swap: a real OOM kill), the task timeout enforced,
  ``maxRetries`` honoured (Cloud Run's default is 3; send 0 for none).
- **Cloud Logging** ``entries:list`` (:mod:`.logstore`): each line a container
  writes, tagged as Cloud Run tags job logs.
- **Pub/Sub**: the Google Cloud SDK's emulator; **Cloud Storage**:
  fake-gcs-server (:mod:`.processes`), child processes.

What each outcome looks like (execution ``conditions[type=Completed]``, the
task's ``conditions[type=Completed]`` and ``lastAttemptResult``):

============  =========================================================  ===========================================
outcome       execution Completed condition                              task lastAttemptResult
============  =========================================================  ===========================================
success       state SUCCEEDED (4)                                        exitCode 0, no status
exit code N   state FAILED (3), executionReason NON_ZERO_EXIT_CODE (2)   exitCode N, status UNKNOWN (2)
              "Task T failed with message: ... N/M tasks were a success"  "The container exited with an exit code of N."
OOM           as exit code, message from the task                        exitCode 137, status RESOURCE_EXHAUSTED (8),
                                                                         "Memory limit of M MiB exceeded ..."
timeout       as exit code                                               status DEADLINE_EXCEEDED (4), "Task was
                                                                         stopped because it reached the configured
                                                                         timeout of Ns."
cancelled     state FAILED, executionReason CANCELLED (3)                status CANCELLED (1); cancelledCount 1
              (CANCELLING (4) while containers stop)
no image      state FAILED, reason CONTAINER_MISSING (6), "Image 'REF'   no exitCode, status NOT_FOUND (5); also
              not found." (ResourcesAvailable FAILED too)                ResourcesAvailable FAILED
============  =========================================================  ===========================================

OOM and timeout are also written to the task's ``run.googleapis.com%2Fvarlog%2Fsystem`` log,
as Cloud Run does.

What it does not do
    No IAM (any credentials or none; the key files' token URI is the
    emulator's own ``/token``), no quotas or rate limits, no VPC egress
    (``vpcAccess`` is recorded; tasks are on the local bridge network), no
    service accounts inside tasks (no metadata server), no secrets in env
    (variables with a ``valueSource`` are left unset), no volumes, no image pulls
    (images must exist locally, :mod:`.images`); ``parallelism`` is honoured,
    every task of an execution shares the same template. Cloud Run resolves a
    job's image when the job is created; the emulator looks when a task starts,
    so images built after the job was created run. State is in memory and lost
    on exit.
"""

from mayfly.providers.cloudrun.emulator.server import Endpoints, GcpEmulator

__all__ = ["Endpoints", "GcpEmulator"]
