"""Azure stack files are validated before anything runs: Azure's naming rules, one exact line per problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from mayfly.infra.clouds.azure.component import AzureTargetArgs, queue_names
from mayfly.infra.clouds.azure.stack import AzureStack
from mayfly.infra.errors import InvalidStackFile
from mayfly.infra.stackfile import load_stack_file, parse_stack, stack_to_json

ROOT = Path(__file__).resolve().parents[2]
SUB = "0a1b2c3d-0000-4000-8000-00000000abcd"
GOOD = f"cloud: azure\nname: azure-dev\nregion: westeurope\nazure:\n  subscription: {SUB}\n"


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(InvalidStackFile) as info:
        load_stack_file(path)
    assert info.value.exit_code == 2
    prefix = f"{path}: "
    lines = info.value.message.splitlines()
    assert all(line.startswith(prefix) for line in lines), lines
    return [line.removeprefix(prefix) for line in lines]


def test_the_example_stack_file_is_valid_and_maps_onto_the_component() -> None:
    stack = load_stack_file(ROOT / "stacks" / "azure-example.yaml")
    assert isinstance(stack, AzureStack)
    assert (stack.cloud, stack.name, stack.target_name) == ("azure", "azure-dev", "azure-dev")
    assert stack.region == "westeurope"
    args = AzureTargetArgs.from_stack(stack)
    assert (args.location, args.resource_group, args.queue_prefix, args.container) == (
        "westeurope",
        "mayfly-azure-dev",
        "azure-dev",
        "mayfly",
    )
    assert (args.shared_key_access, args.runner, args.principals, args.tags) == (False, False, (), {"team": "data"})


def test_default_names_follow_azure_rules_and_are_stable(tmp_path: Path) -> None:
    long_name = "a-very-long-stack-name-for-azure-0123456"  # 40 characters, the most allowed
    stacks = [parse_stack({**json.loads(json.dumps(_good())), "name": name}, "s") for name in ("dev", long_name)]
    for stack in stacks:
        assert isinstance(stack, AzureStack)
        assert re.fullmatch(r"[a-z0-9]{3,24}", stack.storage_account), stack.storage_account
        assert re.fullmatch(r"[a-zA-Z0-9]{5,50}", stack.registry), stack.registry
        for queue in queue_names(stack.queue_prefix):
            assert len(queue) <= 63
            assert "--" not in queue
        # The saved copy parses back to the same stack, hence the same names.
        again = parse_stack(json.loads(stack_to_json(stack)), "copy")
        assert isinstance(again, AzureStack)
        assert (again.storage_account, again.registry) == (stack.storage_account, stack.registry)
    # Another subscription gets other globally unique names.
    other = parse_stack({**_good(), "azure": {"subscription": SUB.replace("a", "b")}}, "s")
    assert isinstance(other, AzureStack)
    assert other.storage_account != stacks[0].storage_account


def test_names_set_in_the_file_are_used(tmp_path: Path) -> None:
    azure = {
        "subscription": SUB.upper(),
        "resource_group": "rg.Mayfly(dev)",
        "storage_account": "mystorage123",
        "registry": "MyRegistry1",
        "queue_prefix": "jobs",
        "principals": [{"id": SUB, "type": "Group"}],
    }
    stack = parse_stack({**_good(), "azure": azure}, "s")
    assert isinstance(stack, AzureStack)
    args = AzureTargetArgs.from_stack(stack)
    assert (args.subscription, args.resource_group, args.storage_account, args.registry, args.queue_prefix) == (
        SUB,
        "rg.Mayfly(dev)",
        "mystorage123",
        "MyRegistry1",
        "jobs",
    )
    assert args.principals == ((SUB, "Group"),)
    assert args.image_prefix == "myregistry1.azurecr.io/mayfly"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "cloud: azure\nname: azure-dev\nregion: West Europe\nazure: {subscription: " + SUB + "}\n",
            ["region: 'West Europe' is not an Azure location (like westeurope: `az account list-locations -o table`)"],
        ),
        ("cloud: azure\nname: azure-dev\nregion: westeurope\n", ["azure: missing (required)"]),
        (
            GOOD.replace(SUB, "my-subscription"),
            [
                "azure.subscription: 'my-subscription' is not a subscription id "
                "(a GUID: `az account show --query id -o tsv`)"
            ],
        ),
        (
            GOOD + "  storage_account: My_Storage\n",
            ["azure.storage_account: 'My_Storage' is not a storage account name (3-24 lowercase letters and digits)"],
        ),
        (
            GOOD + "  storage_account: mayflystorageaccountistoolong\n",
            [
                "azure.storage_account: 'mayflystorageaccountistoolong' is not a storage account name "
                "(3-24 lowercase letters and digits)"
            ],
        ),
        (
            GOOD + "  registry: acr\n",
            ["azure.registry: 'acr' is not a container registry name (5-50 letters and digits)"],
        ),
        (
            GOOD + "  resource_group: 'group.'\n",
            [
                "azure.resource_group: 'group.' is not a resource group name (1-90 letters, digits, '-', '_', '.', "
                "'(', ')'; not ending in '.')"
            ],
        ),
        (
            GOOD + "  container: Blobs\n",
            [
                "azure.container: 'Blobs' is not a blob container name "
                "(3-63 lowercase letters, digits and single hyphens)"
            ],
        ),
        (
            GOOD + "  queue_prefix: a--b\n",
            [
                "azure.queue_prefix: 'a--b' cannot prefix queue names "
                "(lowercase letters, digits and single hyphens, at most 48 characters)"
            ],
        ),
        (
            GOOD.replace("name: azure-dev", "name: azure--dev"),
            [
                "stack: the target name 'azure--dev' cannot prefix queue names (lowercase letters, digits and single "
                "hyphens, at most 48 characters): set azure.queue_prefix"
            ],
        ),
        (
            GOOD.replace("name: azure-dev", "name: " + "a" * 41),
            ["name: at most 40 characters on azure (container group and identity names)"],
        ),
        (
            GOOD + "  principals: [{id: me, type: Robot}]\n",
            [
                "azure.principals.0.id: 'me' is not an Entra object id (a GUID)",
                "azure.principals.0.type: must be 'User', 'Group' or 'ServicePrincipal', got \"Robot\"",
            ],
        ),
        (GOOD + "  location: westeurope\n", ["azure.location: unknown key"]),
        (GOOD + "  registy: mayflyacr\n", ["azure.registy: unknown key (did you mean 'registry'?)"]),
        (
            GOOD + "runner: {enabled: true, image: 'r:1', cpu: 300, memory: 1000}\n",
            ["runner: cpu 300 is not an ACI size (256-4096 units in steps of 256; 1024 = one vCPU)"],
        ),
        (
            GOOD + "runner: {enabled: true, image: 'r:1', cpu: 1024, memory: 32768}\n",
            ["runner: memory 32768 is not an ACI size (512-16384 MiB in steps of 512)"],
        ),
    ],
)
def test_bad_stack_file_is_one_line_per_problem(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "cloud: azure\nname: azure-dev\nregion: eu-west-1\nazure: {subscription: x, registry: a_b, container: X}\n"
    lines = problems(tmp_path, text)
    where = [line.split(":")[0] for line in lines]
    assert where == ["region", "azure.subscription", "azure.registry", "azure.container"]


def _good() -> dict[str, object]:
    return {"cloud": "azure", "name": "azure-dev", "region": "westeurope", "azure": {"subscription": SUB}}
