"""Pulumi mocks that record what the component asks for, and a helper that builds it under them.

``RecordingMocks`` answers every resource with plausible ids, ARNs, URLs and names
(as AWS would shape them) and keeps every ``MockResourceArgs``; ``RecordingMonitor``
also keeps the parent URN of each registration and the outputs the component
registers. Tests assert on those recorded inputs, never on values the mocks invent.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pytest
from pulumi.runtime import rpc
from pulumi.runtime.mocks import MockCallArgs, MockMonitor, MockResourceArgs

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
