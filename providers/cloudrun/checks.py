"""``mayfly target check`` for a cloudrun target: is every resource there, and may we use it?

Each step makes the cheapest call on one resource the runner uses, in the order a
broken setup usually fails: credentials, Cloud Run (jobs.list), the bucket (exists,
then ``testIamPermissions``), URL signing (one signature, through signBlob when that is
the signer), the topics and subscriptions (get, then ``testIamPermissions``) and Cloud
Logging. The first problem raises one line that names the resource and the permission.
An emulator that has no IAM API (fake-gcs-server, the Pub/Sub emulator) skips only the
permission part of its step.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mayfly.core.errors import AccessDenied, MayflyError, NotFound
from mayfly.providers.cloudrun.google import translate

if TYPE_CHECKING:
    from mayfly.providers.cloudrun.provider import CloudRunProvider

#: What the runner does with the bucket (``roles/storage.objectUser`` has them all).
BUCKET_PERMISSIONS = (
    "storage.objects.get",
    "storage.objects.create",
    "storage.objects.delete",
    "storage.objects.list",
)
#: Per queue kind: (topic permissions, subscription permissions) the runner and control plane need between them.
QUEUE_PERMISSIONS = {
    "tasks": (("pubsub.topics.publish",), ("pubsub.subscriptions.consume",)),
    "control": (("pubsub.topics.publish",), ("pubsub.subscriptions.consume",)),
    "events": (("pubsub.topics.publish",), ("pubsub.subscriptions.consume",)),
}


def _no_iam_api(exc: BaseException) -> bool:
    """An emulator without the IAM methods (404, 405, 501 on testIamPermissions)."""
    from google.api_core import exceptions as gx

    return isinstance(exc, gx.NotFound | gx.MethodNotAllowed | gx.MethodNotImplemented | gx.BadRequest)


def _missing(granted: Any, wanted: tuple[str, ...]) -> list[str]:
    got = set(granted or ())
    return [p for p in wanted if p not in got]


def check_target(provider: CloudRunProvider) -> None:
    """Raise a one-line MayflyError naming the first resource that is missing or not allowed."""
    s = provider.settings
    # Cloud Run: the runner lists and creates jobs, and runs them.
    with translate(f"listing the Cloud Run jobs of {provider.parent} (run.jobs.list)"):
        provider._client("JobsClient").list_jobs(request={"parent": provider.parent, "page_size": 1})
    _check_bucket(provider)
    # Signing: one signature now, rather than a failed launch later.
    from mayfly.providers.cloudrun.auth import signing_credentials

    signer = signing_credentials(s.signer_service_account, s.credentials_file)
    with translate("signing a test message for the target's signed URLs"):
        signer.sign_bytes(b"mayfly target check")
    _check_queues(provider)
    with translate(f"reading Cloud Logging entries of project {s.project} (logging.logEntries.list)"):
        entries = provider._logs.client.list_entries(
            resource_names=[f"projects/{s.project}"], filter_='resource.type="cloud_run_job"', page_size=1
        )
        next(iter(entries), None)  # one request (the first page)


def _check_bucket(provider: CloudRunProvider) -> None:
    from google.api_core import exceptions as gx

    store = provider.records.store
    bucket = store._bucket
    with translate(f"checking Cloud Storage bucket {store.bucket_name} (storage.buckets.get)"):
        if not bucket.exists():
            raise NotFound(
                f"Cloud Storage bucket {store.bucket_name} does not exist in project {provider.settings.project}"
            )
    try:
        with translate(f"testing permissions on bucket {store.bucket_name}"):
            try:
                granted = bucket.test_iam_permissions(list(BUCKET_PERMISSIONS))
            except gx.GoogleAPICallError as exc:
                if _no_iam_api(exc) and provider.settings.storage_endpoint:
                    return
                raise
    except MayflyError:
        raise
    missing = _missing(granted, BUCKET_PERMISSIONS)
    if missing:
        raise AccessDenied(
            f"access denied to Cloud Storage bucket {store.bucket_name}: missing {', '.join(missing)} "
            "(grant roles/storage.objectUser on the bucket)"
        )


def _check_queues(provider: CloudRunProvider) -> None:
    from google.api_core import exceptions as gx

    from mayfly.providers.cloudrun.pubsub import PubSubQueueSet

    s = provider.settings
    transport = type(provider).transport(s, provider.context.target)
    queues = transport.queues
    assert isinstance(queues, PubSubQueueSet)
    try:
        for kind, (topic_perms, sub_perms) in QUEUE_PERMISSIONS.items():
            queue = queues.get(kind)
            for resource, perms, getter, client in (
                (queue.topic, topic_perms, "get_topic", queues.clients.publisher),
                (queue.subscription, sub_perms, "get_subscription", queues.clients.subscriber),
            ):
                what = resource.rsplit("/", 2)[-2].rstrip("s")
                field = "topic" if getter == "get_topic" else "subscription"
                with translate(f"checking Pub/Sub {what} {resource}"):
                    try:
                        getattr(client, getter)(request={field: resource})
                    except gx.NotFound as exc:
                        raise NotFound(f"Pub/Sub {what} {resource} does not exist") from exc
                with translate(f"testing permissions on Pub/Sub {what} {resource}"):
                    try:
                        granted = client.test_iam_permissions(
                            request={"resource": resource, "permissions": list(perms)}
                        ).permissions
                    except gx.GoogleAPICallError as exc:
                        if s.pubsub_endpoint and (_no_iam_api(exc) or isinstance(exc, gx.MethodNotImplemented)):
                            continue
                        raise
                missing = _missing(granted, perms)
                if missing:
                    raise AccessDenied(f"access denied to Pub/Sub {what} {resource}: missing {', '.join(missing)}")
    finally:
        queues.close()
