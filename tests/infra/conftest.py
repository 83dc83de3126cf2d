"""Pulumi mocks that record what the component asks for, a helper that builds it under them, and
``mocked_pulumi``: ``mayfly deploy`` end to end with the program run under the mocks.

``RecordingMocks`` answers every resource with plausible ids, ARNs, URLs and names
(as AWS would shape them) and keeps every ``MockResourceArgs``; ``RecordingMonitor``
also keeps the parent URN of each registration and the outputs the component
registers. Tests assert on those recorded inputs, never on values the mocks invent.
"""

from __future__ import annotations

import contextvars
import json
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pytest
from pulumi.automation import CommandResult, StackNotFoundError
from pulumi.automation.events import EngineEvent
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

from mayfly.infra.cloud import cloud_for
from mayfly.infra.deploy import DeployEngine
from mayfly.infra.stackfile import Stack

with warnings.catch_warnings():
    # Importing pulumi_aws warns about every deprecated resource class it defines (none of which we use).
    warnings.simplefilter("ignore", DeprecationWarning)
    # pulumi_aws loads its submodules lazily, on first attribute access: load the ones the component uses now.
    import pulumi_aws

    for _module, _name in (
        ("cloudwatch", "LogGroup"),
        ("ec2", "SecurityGroup"),
        ("ecr", "Repository"),
        ("ecs", "Cluster"),
        ("iam", "Role"),
        ("s3", "Bucket"),
        ("sqs", "Queue"),
    ):
        getattr(getattr(pulumi_aws, _module), _name)  # the access is what loads the module

ACCOUNT = "123456789012"
REGION = "eu-west-1"
DEFAULT_VPC = "vpc-0default"
DEFAULT_SUBNETS = ["subnet-0a", "subnet-0b", "subnet-0c"]
PROJECT = "mayfly"
STACK = "test"


def physical(name: str) -> str:
    """The auto-name Pulumi gives a resource (logical name + a random suffix)."""
    return f"{name}-1a2b3c4"


class RecordingMocks(pulumi.runtime.Mocks):
    """Plausible outputs per AWS resource type; every call and resource is recorded."""

    account = ACCOUNT
    region = REGION
    default_vpc = DEFAULT_VPC
    default_subnets = DEFAULT_SUBNETS
    project = PROJECT
    stack = STACK
    physical = staticmethod(physical)

    def __init__(self) -> None:
        self.resources: list[MockResourceArgs] = []
        self.calls: list[MockCallArgs] = []

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(args)
        name = args.inputs.get("name") or physical(args.name)
        state: dict[str, Any] = dict(args.inputs)
        typ = args.typ
        arn_base = f"arn:aws:{{}}:{REGION}:{ACCOUNT}"
        if typ == "aws:sqs/queue:Queue":
            rid = f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT}/{name}"
            state |= {"name": name, "arn": arn_base.format("sqs") + f":{name}", "url": rid}
        elif typ == "aws:s3/bucket:Bucket":
            rid = name
            state |= {"bucket": name, "arn": f"arn:aws:s3:::{name}"}
        elif typ == "aws:ecr/repository:Repository":
            rid = name
            state |= {
                "name": name,
                "arn": arn_base.format("ecr") + f":repository/{name}",
                "repository_url": f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/{name}",
            }
        elif typ == "aws:ecs/cluster:Cluster":
            rid = arn_base.format("ecs") + f":cluster/{name}"
            state |= {"name": name, "arn": rid}
        elif typ == "aws:cloudwatch/logGroup:LogGroup":
            rid = name
            state |= {"name": name, "arn": arn_base.format("logs") + f":log-group:{name}"}
        elif typ == "aws:iam/role:Role":
            rid = name
            state |= {"name": name, "arn": f"arn:aws:iam::{ACCOUNT}:role/{name}"}
        elif typ == "aws:iam/policy:Policy":
            rid = f"arn:aws:iam::{ACCOUNT}:policy/{name}"
            state |= {"name": name, "arn": rid}
        elif typ == "aws:ec2/securityGroup:SecurityGroup":
            rid = "sg-0123456789abcdef0"
            state |= {"arn": arn_base.format("ec2") + f":security-group/{rid}"}
        elif typ == "aws:ecs/taskDefinition:TaskDefinition":
            rid = f"{args.inputs['family']}:1"
            state |= {"arn": arn_base.format("ecs") + f":task-definition/{rid}", "revision": 1}
        elif typ == "aws:ecs/service:Service":
            rid = arn_base.format("ecs") + f":service/{name}"
            state |= {"name": name}
        else:
            rid = f"{name}-id"
        return rid, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append(args)
        token = args.token
        if token == "aws:index/getRegion:getRegion":
            return {"id": REGION, "name": REGION, "region": REGION}, []
        if token == "aws:index/getCallerIdentity:getCallerIdentity":
            return {"id": ACCOUNT, "accountId": ACCOUNT, "arn": f"arn:aws:iam::{ACCOUNT}:user/me"}, []
        if token == "aws:index/getPartition:getPartition":
            return {"id": "aws", "partition": "aws", "dnsSuffix": "amazonaws.com"}, []
        if token == "aws:ec2/getVpc:getVpc":
            return {"id": DEFAULT_VPC, "default": True, "cidrBlock": "172.31.0.0/16"}, []
        if token == "aws:ec2/getSubnets:getSubnets":
            return {"id": REGION, "ids": DEFAULT_SUBNETS}, []
        if token == "aws:ec2/getSubnet:getSubnet":
            return {"id": args.args["id"], "vpcId": "vpc-0given"}, []
        raise AssertionError(f"unexpected invoke {token}")

    # ------------------------------------------------------------ queries for tests

    def of_type(self, typ: str) -> dict[str, dict[str, Any]]:
        """Inputs of every resource of a type, by logical name."""
        return {r.name: r.inputs for r in self.resources if r.typ == typ}

    def one(self, typ: str, name: str) -> dict[str, Any]:
        found = self.of_type(typ)
        assert name in found, f"no {typ} named {name}: {sorted(found)}"
        return found[name]


class RecordingMonitor(MockMonitor):
    """The mock monitor, also keeping each registration's parent URN and the registered outputs."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.parents: dict[tuple[str, str], str] = {}
        self.registered_outputs: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        self.parents[(request.type, request.name)] = request.parent
        return super().RegisterResource(request)  # type: ignore[no-untyped-call]

    def RegisterResourceOutputs(self, request: Any) -> Any:
        self.registered_outputs[request.urn] = rpc.deserialize_properties(request.outputs)
        return super().RegisterResourceOutputs(request)  # type: ignore[no-untyped-call]


@dataclass
class Built:
    """A component built under the mocks: what it registered, and its resolved settings."""

    mocks: RecordingMocks
    monitor: RecordingMonitor
    settings: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)

    def policy(self, typ: str, name: str, key: str = "policy") -> dict[str, Any]:
        """A policy document input, parsed."""
        value = self.mocks.one(typ, name)[key]
        assert isinstance(value, str), f"{name}.{key} is not a JSON string: {value!r}"
        doc: dict[str, Any] = json.loads(value)
        return doc


@pytest.fixture
def mocks() -> tuple[RecordingMocks, RecordingMonitor]:
    """Fresh recording mocks installed in the Pulumi runtime (a real deployment, not a preview)."""
    recording = RecordingMocks()
    monitor = RecordingMonitor(recording)
    pulumi.runtime.set_mocks(recording, project=PROJECT, stack=STACK, preview=False, monitor=monitor)
    return recording, monitor


@pytest.fixture
def build(mocks: tuple[RecordingMocks, RecordingMonitor]) -> Callable[..., Built]:
    """Build ``AwsTarget(name, args)`` under the mocks; returns once every registration has finished."""
    from mayfly.infra.clouds.aws.component import AwsTarget, AwsTargetArgs

    def run(name: str = "dev", args: AwsTargetArgs | None = None) -> Built:
        built = Built(*mocks)

        @pulumi.runtime.test  # type: ignore[untyped-decorator]  # pulumi's test helper is untyped
        def program() -> pulumi.Output[Any]:
            target = AwsTarget(name, args or AwsTargetArgs())
            resolved = pulumi.Output.all(settings=target.settings_outputs(), outputs=target.outputs())
            return resolved.apply(lambda v: (built.settings.update(v["settings"]), built.outputs.update(v["outputs"])))

        program()
        return built

    return run


# ---------------------------------------------------------------- `mayfly deploy` with Pulumi's mocks
#
# The Pulumi CLI cannot be installed here, so `DeployEngine.open_stack` (the one step that needs it) is
# replaced by a stack that runs the cloud's real inline program under `pulumi.runtime.set_mocks`, keeps
# what it registered in a JSON file in the stack's file backend, and answers preview/up/destroy/outputs
# with the counts a Pulumi engine would report (create/update/same/delete by URN and inputs). Everything
# else `mayfly deploy | preview | destroy | outputs` does runs for real: stack-file validation through the
# cloud's model, preflight, workspace and passphrase, event rendering, settings validation by the
# provider's model, the image push through the cloud's registry, and the target recorded in SQLite.


class EchoMocks(pulumi.runtime.Mocks):
    """Answers any resource with its inputs as its state (``<name>-id`` as id); no invokes."""

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        return f"{args.name}-id", dict(args.inputs)

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        raise AssertionError(f"unexpected invoke {args.token}")


class _Registrations(MockMonitor):
    """Keeps every registration (the root stack too) as urn -> (type, name, inputs)."""

    def __init__(self, mocks: pulumi.runtime.Mocks) -> None:
        super().__init__(mocks)
        self.registered: dict[str, dict[str, Any]] = {}

    def RegisterResource(self, request: Any) -> Any:
        response = super().RegisterResource(request)  # type: ignore[no-untyped-call]
        inputs = rpc.deserialize_properties(request.object) if request.type != "pulumi:pulumi:Stack" else {}
        self.registered[response.urn] = {"type": request.type, "name": request.name, "inputs": _plain(inputs)}
        return response


def _plain(value: Any) -> Any:
    """Inputs as JSON-able data (unknowns and resource references as strings)."""
    return json.loads(json.dumps(value, default=str, sort_keys=True))


@dataclass
class _Result:
    """The attributes of the Automation API's result objects that the engine reads."""

    change_summary: dict[str, int] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    summary: Any = None


@dataclass
class _Summary:
    resource_changes: dict[str, int]


@dataclass
class _Output:
    value: Any
    secret: bool = False


class MockedStack:
    """Stands in for ``pulumi.automation.Stack``: runs the program under mocks, state in a JSON file."""

    def __init__(self, state_file: Path, name: str, program: Callable[[], None], mocks: Callable[[], Any]) -> None:
        self.state_file, self.name, self.program, self.mocks = state_file, name, program, mocks

    # ------------------------------------------------------------ state

    def load(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.state_file.read_text())
        return data

    def exists(self) -> bool:
        return self.state_file.is_file()

    def save(self, state: dict[str, Any]) -> None:
        self.state_file.parent.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=2, sort_keys=True))

    # ------------------------------------------------------------ running the program

    def _run(self, *, preview: bool) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
        def run() -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
            pulumi.runtime.settings.ROOT.set(None)  # a fresh root stack resource for this run
            monitor = _Registrations(self.mocks())
            pulumi.runtime.set_mocks(monitor.mocks, project=PROJECT, stack=self.name, preview=preview, monitor=monitor)
            exported: dict[str, Any] = {}

            @pulumi.runtime.test  # type: ignore[untyped-decorator]
            def program() -> pulumi.Output[Any]:
                self.program()
                root = pulumi.runtime.get_root_resource()
                return pulumi.Output.from_input(dict(root.outputs)).apply(exported.update)  # type: ignore[union-attr]

            program()
            return monitor.registered, _plain(exported)

        return contextvars.copy_context().run(run)

    def _plan(self, registered: dict[str, dict[str, Any]]) -> tuple[dict[str, int], list[tuple[str, str]]]:
        before: dict[str, dict[str, Any]] = self.load()["resources"] if self.exists() else {}
        steps: list[tuple[str, str]] = []
        for urn, res in registered.items():
            old = before.get(urn)
            op = "create" if old is None else "same" if old["inputs"] == res["inputs"] else "update"
            steps.append((op, urn))
        steps += [("delete", urn) for urn in before if urn not in registered]
        counts: dict[str, int] = {}
        for op, _ in steps:
            counts[op] = counts.get(op, 0) + 1
        return counts, steps

    @staticmethod
    def _events(on_event: Callable[[EngineEvent], None], steps: list[tuple[str, str]], registry: Any) -> None:
        for seq, (op, urn) in enumerate(steps):
            typ = registry[urn]["type"]
            meta = {"op": op, "urn": urn, "type": typ, "provider": ""}
            on_event(
                EngineEvent.from_json({"sequence": 2 * seq, "timestamp": 0, "resourcePreEvent": {"metadata": meta}})
            )
            on_event(
                EngineEvent.from_json({"sequence": 2 * seq + 1, "timestamp": 0, "resOutputsEvent": {"metadata": meta}})
            )

    # ------------------------------------------------------------ what the engine calls

    def preview(self, on_event: Callable[[EngineEvent], None], color: str) -> _Result:
        registered, _ = self._run(preview=True)
        counts, steps = self._plan(registered)
        before = self.load()["resources"] if self.exists() else {}
        self._events(on_event, steps, {**before, **registered})
        return _Result(change_summary=counts)

    def up(self, on_event: Callable[[EngineEvent], None], color: str) -> _Result:
        registered, outputs = self._run(preview=False)
        counts, steps = self._plan(registered)
        before = self.load()["resources"] if self.exists() else {}
        self._events(on_event, steps, {**before, **registered})
        self.save({"resources": registered, "outputs": outputs})
        return _Result(outputs={k: _Output(v) for k, v in outputs.items()}, summary=_Summary(counts))

    def destroy(self, on_event: Callable[[EngineEvent], None], color: str, remove: bool) -> _Result:
        before: dict[str, Any] = self.load()["resources"]
        steps = [("delete", urn) for urn in reversed(list(before))]
        self._events(on_event, steps, before)
        self.state_file.unlink()
        return _Result(summary=_Summary({"delete": len(steps)} if steps else {}))

    def outputs(self) -> dict[str, _Output]:
        return {k: _Output(v) for k, v in self.load()["outputs"].items()}


@dataclass
class MockedPulumi:
    """What the ``mocked_pulumi`` fixture installs; ``mocks`` makes the Mocks each run answers with."""

    mocks: Callable[[], Any] = EchoMocks
    #: Stack config each open set (what the real engine passes to ``set_all_config``), by stack name.
    config: dict[str, dict[str, str]] = field(default_factory=dict)

    def state_file(self, engine: DeployEngine, stack: Stack) -> Path:
        return Path(engine.backend_url(stack).removeprefix("file://")) / ".mocked" / f"{stack.name}.json"

    def open_stack(
        self, engine: DeployEngine, stack: Stack, command: str, *, create: bool, configure: bool = True
    ) -> MockedStack:
        cloud = cloud_for(stack.cloud)
        engine.workspace_options(stack)  # the work directory, backend directory and passphrase, as for real
        mocked = MockedStack(self.state_file(engine, stack), stack.name, cloud.program(stack), self.mocks)
        with engine._errors(stack, command):
            if not create and not mocked.exists():
                raise StackNotFoundError(
                    CommandResult(stdout="", stderr=f"no stack named '{stack.name}' found", code=255)
                )
        if configure:
            self.config[stack.name] = cloud.config(stack)
        return mocked


@pytest.fixture
def mocked_pulumi(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> MockedPulumi:
    """``mayfly deploy | preview | destroy | outputs`` run the cloud's program under Pulumi's mocks.

    A stand-in ``pulumi`` executable is put on PATH only so the engine's "is the CLI installed" check
    passes; nothing calls it.
    """
    mocked = MockedPulumi()
    bin_dir = tmp_path / "pulumi-bin"
    bin_dir.mkdir()
    script = bin_dir / "pulumi"
    script.write_text("#!/bin/sh\necho 'the mocked deploy never runs the Pulumi CLI' >&2\nexit 99\n")
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")

    def open_stack(
        engine: DeployEngine, stack: Stack, command: str, *, create: bool, configure: bool = True
    ) -> MockedStack:
        return mocked.open_stack(engine, stack, command, create=create, configure=configure)

    monkeypatch.setattr(DeployEngine, "open_stack", open_stack)
    return mocked


@pytest.fixture
def mocked_aws(mocked_pulumi: MockedPulumi) -> MockedPulumi:
    """``mocked_pulumi`` answering with :class:`RecordingMocks` (AWS resource shapes and invokes)."""
    mocked_pulumi.mocks = RecordingMocks
    return mocked_pulumi


# ---------------------------------------------------------------- Azure (pulumi-azure-native)

AZURE_SUBSCRIPTION = "00000000-1111-2222-3333-444444444444"
AZURE_TENANT = "99999999-8888-7777-6666-555555555555"


def _guid(*parts: str) -> str:
    import uuid

    return str(uuid.uuid5(uuid.NAMESPACE_URL, "/".join(parts)))


class AzureMocks(RecordingMocks):
    """Outputs shaped as Azure Resource Manager returns them: resource ids from the inputs, identities'
    client and principal ids, the registry's login server; every resource recorded.

    A container group's identity is a list of identity ids as an input and a map id -> {clientId,
    principalId} as an output: echoing the input would break the SDK's output types, so it is converted.
    """

    subscription = AZURE_SUBSCRIPTION

    def new_resource(self, args: MockResourceArgs) -> tuple[str | None, dict[str, Any]]:
        self.resources.append(args)
        i = args.inputs
        state: dict[str, Any] = dict(i)
        sub = f"/subscriptions/{AZURE_SUBSCRIPTION}"
        rg = f"{sub}/resourceGroups/{i.get('resourceGroupName')}"
        account = f"{rg}/providers/Microsoft.Storage/storageAccounts/{i.get('accountName')}"
        if not args.typ.startswith("azure-native:"):
            return f"{args.name}-id", state  # the component itself
        typ = args.typ.removeprefix("azure-native:")
        if typ == "resources:ResourceGroup":
            rid, name = f"{sub}/resourceGroups/{i['resourceGroupName']}", i["resourceGroupName"]
        elif typ == "storage:StorageAccount":
            rid, name = account, i["accountName"]
            state["primaryEndpoints"] = {
                kind: f"https://{name}.{kind}.core.windows.net/" for kind in ("blob", "queue", "table", "file")
            }
        elif typ == "storage:BlobContainer":
            rid, name = f"{account}/blobServices/default/containers/{i['containerName']}", i["containerName"]
        elif typ == "storage:Queue":
            rid, name = f"{account}/queueServices/default/queues/{i['queueName']}", i["queueName"]
        elif typ == "storage:ManagementPolicy":
            rid, name = f"{account}/managementPolicies/default", "DefaultManagementPolicy"
        elif typ == "containerregistry:Registry":
            name = i["registryName"]
            rid = f"{rg}/providers/Microsoft.ContainerRegistry/registries/{name}"
            state["loginServer"] = f"{name.lower()}.azurecr.io"
        elif typ == "managedidentity:UserAssignedIdentity":
            name = i["resourceName"]
            rid = f"{rg}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{name}"
            state |= {"clientId": _guid("client", rid), "principalId": _guid("principal", rid)}
            state["tenantId"] = AZURE_TENANT
        elif typ == "authorization:RoleDefinition":
            name = i["roleDefinitionId"]
            rid = f"{sub}/providers/Microsoft.Authorization/roleDefinitions/{name}"
        elif typ == "authorization:RoleAssignment":
            name = _guid(args.name)
            rid = f"{i['scope']}/providers/Microsoft.Authorization/roleAssignments/{name}"
        elif typ == "containerinstance:ContainerGroup":
            name = i["containerGroupName"]
            rid = f"{rg}/providers/Microsoft.ContainerInstance/containerGroups/{name}"
            identity = dict(i.get("identity") or {})
            ids = identity.get("userAssignedIdentities") or []
            identity["userAssignedIdentities"] = {
                uid: {"clientId": _guid("client", uid), "principalId": _guid("principal", uid)} for uid in ids
            }
            state["identity"] = identity
        else:
            raise AssertionError(f"unexpected resource type {args.typ}")
        state |= {"name": name, "id": rid}
        return rid, state

    def call(self, args: MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append(args)
        raise AssertionError(f"unexpected invoke {args.token}")


@pytest.fixture
def azure_mocks() -> tuple[AzureMocks, RecordingMonitor]:
    """Fresh Azure mocks installed in the Pulumi runtime (a real deployment, not a preview)."""
    recording = AzureMocks()
    monitor = RecordingMonitor(recording)
    pulumi.runtime.set_mocks(recording, project=PROJECT, stack=STACK, preview=False, monitor=monitor)
    return recording, monitor


@pytest.fixture
def build_azure(azure_mocks: tuple[AzureMocks, RecordingMonitor]) -> Callable[..., Built]:
    """Build ``AzureTarget(name, args)`` under the Azure mocks; returns once every registration has finished."""
    from mayfly.infra.clouds.azure.component import AzureTarget

    def run(name: str, args: Any) -> Built:
        built = Built(*azure_mocks)

        @pulumi.runtime.test  # type: ignore[untyped-decorator]  # pulumi's test helper is untyped
        def program() -> pulumi.Output[Any]:
            target = AzureTarget(name, args)
            resolved = pulumi.Output.all(settings=target.settings_outputs(), outputs=target.outputs())
            return resolved.apply(lambda v: (built.settings.update(v["settings"]), built.outputs.update(v["outputs"])))

        program()
        return built

    return run


@pytest.fixture
def mocked_azure(mocked_pulumi: MockedPulumi) -> MockedPulumi:
    """``mocked_pulumi`` answering with :class:`AzureMocks` (Azure resource shapes)."""
    mocked_pulumi.mocks = AzureMocks
    return mocked_pulumi
