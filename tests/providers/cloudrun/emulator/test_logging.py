"""Cloud Logging ``entries:list`` of the emulator through the real ``google.cloud.logging`` JSON client."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from google.cloud import run_v2

pytestmark = [pytest.mark.docker, pytest.mark.slow]


@pytest.fixture(scope="module")
def logged(gcp_emulator: Any, busybox_image: str) -> tuple[Any, str]:
    """A logging client, and the filter of one finished execution that wrote one/two on stdout, three on stderr."""
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import logging as cloud_logging

    container = run_v2.Container(image=busybox_image, command=["sh", "-c", "echo one; echo two; echo three >&2"])
    job = run_v2.Job(
        template=run_v2.ExecutionTemplate(template=run_v2.TaskTemplate(containers=[container], max_retries=0))
    )
    jobs = gcp_emulator.run_client("Jobs")
    created = jobs.create_job(parent=gcp_emulator.parent, job=job, job_id=f"logs-{uuid.uuid4().hex[:8]}")
    execution = jobs.run_job(name=created.result(timeout=30).name).result(timeout=120)
    client = cloud_logging.Client(
        project=gcp_emulator.project,
        credentials=AnonymousCredentials(),
        _use_grpc=False,
        client_options={"api_endpoint": gcp_emulator.endpoints.logging},
    )
    execution_id = execution.name.rsplit("/", 1)[-1]
    return client, f'resource.type="cloud_run_job"\nlabels."run.googleapis.com/execution_name"="{execution_id}"'


def _payloads(client: Any, log_filter: str, **kwargs: Any) -> list[str]:
    return [entry.payload for entry in client.list_entries(filter_=log_filter, **kwargs)]


def test_filters_order_and_pages(logged: tuple[Any, str], gcp_emulator: Any) -> None:
    from google.cloud import logging as cloud_logging

    client, base = logged
    # stdout and stderr are two streams: only each stream's own order is guaranteed.
    assert sorted(_payloads(client, base)) == ["one", "three", "two"]
    assert _payloads(client, f"{base} AND severity>=ERROR") == ["three"]
    stdout = f"projects/{gcp_emulator.project}/logs/run.googleapis.com%2Fstdout"
    assert _payloads(client, f'{base} AND logName="{stdout}"') == ["one", "two"]
    assert sorted(_payloads(client, f'{base} AND (textPayload="one" OR textPayload:"THR")')) == ["one", "three"]
    assert sorted(_payloads(client, f'{base} AND NOT textPayload="one" AND -textPayload="two"')) == ["three"]
    ordered = _payloads(client, f'{base} AND logName="{stdout}"', order_by=cloud_logging.DESCENDING)
    assert ordered == ["two", "one"]
    # One entry per page: the client follows nextPageToken.
    assert _payloads(client, f'{base} AND logName="{stdout}"', page_size=1) == ["one", "two"]
    assert _payloads(client, base.replace("cloud_run_job", "cloud_run_revision")) == []
