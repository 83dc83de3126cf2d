"""The boot script's result upload through an Azure SAS URL: staged env, real boot code, Azurite checking it."""

from __future__ import annotations

import json
import types
from importlib.resources import files
from pathlib import Path

import pytest

from mayfly.core.models import LaunchSpec
from mayfly.core.staging import read_result, stage_inputs
from mayfly.providers.aci.blobs import AzureBlobStore
from mayfly.providers.aci.settings import AciSettings

# Each test talks to Azurite (started once per session); some wait out leases or expiries.
pytestmark = pytest.mark.slow


@pytest.fixture
def boot(tmp_path: Path) -> types.ModuleType:
    """The runtimes' boot script as a module, its result file moved into ``tmp_path``."""
    source = (files("mayfly.runtimes") / "boot" / "mayfly-boot").read_text()
    module = types.ModuleType("mayfly_boot")
    exec(compile(source, "mayfly-boot", "exec"), module.__dict__)
    module.RESULT_FILE = str(tmp_path / "result.json")
    return module


def _spec() -> LaunchSpec:
    return LaunchSpec(
        name="mayfly-t1-1",
        task_id="t1",
        attempt=1,
        project="default",
        image="mayfly/runtime-python-3.11:1",
        command=("mayfly-boot", "python3 main.py"),
        env={},
        code=None,
        payload=b'{"n": 7}',
        config=b"{}",
        cpu=0.5,
        memory_mb=512,
        timeout=60,
        max_result_bytes=1024,
    )


def test_the_boot_script_puts_the_result_with_the_headers_the_store_asks_for(
    azure_settings: AciSettings, boot: types.ModuleType
) -> None:

    store = AzureBlobStore.from_settings(azure_settings)
    store.create_container()
    env = stage_inputs(_spec(), store, max_result_bytes=1024)
    assert json.loads(env["MAYFLY_RESULT_HEADERS"]) == {"x-ms-blob-type": "BlockBlob"}
    Path(boot.RESULT_FILE).write_text('{"answer": 42}')
    boot.send_result(env["MAYFLY_RESULT_URL"], env)
    assert read_result(store, "t1", 1, 1024) == b'{"answer": 42}'
    # What was staged is readable through the GET URLs the same script downloads.
    out = Path(boot.RESULT_FILE).parent / "payload.json"
    boot.fetch_file("the payload", env["MAYFLY_PAYLOAD_URL"], str(out))
    assert out.read_bytes() == b'{"n": 7}'


@pytest.mark.parametrize("raw", ["[1]", '{"x-ms-blob-type": 1}', '{"bad name": "v"}', '{"a": "b\\r\\nX: y"}', "{"])
def test_malformed_result_headers_are_a_usage_error(boot: types.ModuleType, raw: str) -> None:
    with pytest.raises(boot.BootError) as caught:
        boot.result_headers({"MAYFLY_RESULT_HEADERS": raw})
    assert caught.value.code == boot.EXIT_USAGE
