"""The ``azure_emulator`` fixture's target: what a Mayfly task container needs from it really works.

A container group on the target's ARM endpoint runs the target's runtime image
(by its registry name), reads its input from Azurite through a read SAS URL and
writes its result through a create/write SAS URL, as the boot script does.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from azure.mgmt.containerinstance import models
from azure.storage.blob import BlobSasPermissions, BlobServiceClient, generate_blob_sas

pytestmark = [pytest.mark.docker, pytest.mark.slow]

SCRIPT = """
import os, urllib.request
data = urllib.request.urlopen(os.environ["INPUT_URL"]).read()
put = urllib.request.Request(os.environ["OUTPUT_URL"], data=data.upper(), method="PUT",
                             headers={"x-ms-blob-type": "BlockBlob"})
urllib.request.urlopen(put).read()
print("done")
"""


def test_a_group_of_the_target_reads_and_writes_blobs_through_sas_urls(
    azure_emulator: Any, runtime_images: dict[str, str]
) -> None:
    settings = azure_emulator.settings()
    assert settings.blob_endpoint
    assert settings.image_prefix
    assert settings.account_key
    credential = {"account_name": settings.storage_account, "account_key": settings.account_key}
    blobs = BlobServiceClient(settings.blob_endpoint, credential=credential).get_container_client(settings.container)
    blobs.upload_blob("in.txt", b"hello azure")

    def sas(blob: str, permission: BlobSasPermissions) -> str:
        token = generate_blob_sas(
            settings.storage_account,
            settings.container,
            blob,
            account_key=settings.account_key,
            permission=permission,
            expiry=datetime.now(UTC) + timedelta(minutes=10),
        )
        return f"{settings.blob_endpoint}/{settings.container}/{blob}?{token}"

    version = runtime_images["python-3.11"].rsplit(":", 1)[1]
    client = azure_emulator.management_client(settings)
    client.container_groups.begin_create_or_update(
        settings.resource_group,
        "sas-io",
        models.ContainerGroup(
            location=settings.location,
            os_type="Linux",
            restart_policy="Never",
            tags={"mayfly-target": "t"},
            containers=[
                models.Container(
                    name="task",
                    image=f"{settings.image_prefix}/runtime-python-3.11:{version}",
                    command=["python3", "-c", SCRIPT],
                    environment_variables=[
                        models.EnvironmentVariable(
                            name="INPUT_URL", secure_value=sas("in.txt", BlobSasPermissions(read=True))
                        ),
                        models.EnvironmentVariable(
                            name="OUTPUT_URL", secure_value=sas("out.txt", BlobSasPermissions(create=True, write=True))
                        ),
                    ],
                    resources=models.ResourceRequirements(requests=models.ResourceRequests(cpu=0.5, memory_in_gb=0.5)),
                )
            ],
        ),
    ).result()
    deadline = time.monotonic() + 60
    while (
        state := client.container_groups.get(settings.resource_group, "sas-io")
        .containers[0]
        .instance_view.current_state
    ).state != "Terminated":
        assert time.monotonic() < deadline, state
        time.sleep(0.2)
    logs = client.containers.list_logs(settings.resource_group, "sas-io", "task").content
    assert state.exit_code == 0, logs
    assert logs == "done\n"
    assert blobs.download_blob("out.txt").readall() == b"HELLO AZURE"
    client.container_groups.begin_delete(settings.resource_group, "sas-io").result()
