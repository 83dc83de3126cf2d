"""The stack file, ``stacks/NAME.yaml``: one deployable target, validated before anything runs.

A stack file names the cloud, the stack and target, the region, the target's
capacity, the optional always-on runner and the cloud's own options::

    cloud: aws                 # which component builds it (gcp and azure add their own models)
    name: aws-dev              # Pulumi stack name; also the target name unless `target` is set
    region: eu-west-1
    capacity: 10               # most tasks preparing or running at once on the target
    backend: s3://my-state     # optional: any Pulumi backend (default file://$MAYFLY_HOME/pulumi)
    tags: {team: data}
    runner: {enabled: false}   # or an image + cpu/memory for an always-on runner service
    aws: {capacity_provider: FARGATE_SPOT, log_retention_days: 30}

Unknown keys, wrong types and out-of-range values are rejected with one line
per problem, each starting with the file name (:class:`InvalidStackFile`). Values
are not coerced: ``capacity: "10"`` is an error, not 10. ``stacks/aws-example.yaml``
documents every key.

Each cloud is one pydantic model with a ``cloud: Literal[...]`` tag; :data:`StackFile`
is the discriminated union of them, so adding GCP is one more model in the union.
"""

from __future__ import annotations

import difflib
import importlib
import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator, model_validator

from mayfly.core.errors import MissingDependency
from mayfly.core.targets import NAME as TARGET_NAME
from mayfly.infra.errors import DEPLOY_EXTRAS, InvalidStackFile

#: Backend URL schemes Pulumi understands (DIY backends and Pulumi Cloud).
BACKEND_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "https://", "http://")
#: Retention periods CloudWatch Logs accepts (0 = never expire).
LOG_RETENTION_DAYS = (
    0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
)  # fmt: skip
#: Fargate's valid task sizes: cpu units -> allowed memory (MiB).
FARGATE_SIZES: dict[int, range] = {
    256: range(512, 2049, 512),
    512: range(1024, 4097, 1024),
    1024: range(2048, 8193, 1024),
    2048: range(4096, 16385, 1024),
    4096: range(8192, 30721, 1024),
    8192: range(16384, 61441, 4096),
    16384: range(32768, 122881, 8192),
}
AWS_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d{1,2}$")
#: AWS names are built from the stack name plus a suffix (``-execution-1a2b3c4``); IAM role names stop at 64.
AWS_MAX_NAME = 32


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RunnerSection(_Model):
    """The optional always-on runner, deployed with the stack as a service (ECS on AWS)."""

    enabled: bool = Field(default=False, description="Deploy a runner that serves the target's queue in the cloud.")
    image: str | None = Field(
        default=None,
        description="Image with Mayfly installed (`pip install 'mayfly-tasks[aws]'`) and `sh`; required when enabled.",
    )
    cpu: int = Field(default=512, description="Runner cpu units (Fargate sizes: 256, 512, 1024, ...).")
    memory: int = Field(default=1024, description="Runner memory in MiB (a valid Fargate size for its cpu).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``runner: true`` / ``runner: false`` are short for ``runner: {enabled: ...}``."""
        return {"enabled": value} if isinstance(value, bool) else value

    @model_validator(mode="after")
    def _check(self) -> RunnerSection:
        problems = [fargate_size_problem(self.cpu, self.memory)]
        if self.enabled and not self.image:
            problems.insert(0, "image is required when the runner is enabled (an image with Mayfly installed)")
        if any(problems):
            raise ValueError("; ".join(p for p in problems if p))
        return self


class AwsSection(_Model):
    """Options of the AWS component (``mayfly:aws:Target``); every key has a default."""

    capacity_provider: Literal["FARGATE", "FARGATE_SPOT"] = Field(
        default="FARGATE", description="FARGATE_SPOT is cheaper and may interrupt tasks."
    )
    vpc_id: str | None = Field(default=None, description="VPC of the tasks (default: the account's default VPC).")
    subnet_ids: list[str] | None = Field(
        default=None, min_length=1, description="Subnets of the tasks (default: the VPC's default subnets)."
    )
    assign_public_ip: bool = Field(
        default=True, description="Public IPs for tasks (needed to pull images in public subnets without NAT)."
    )
    container_insights: bool = Field(default=False, description="ECS Container Insights on the cluster (billed).")
    log_retention_days: int = Field(default=14, description="CloudWatch Logs retention of task logs.")
    message_retention_seconds: int = Field(
        default=4 * 86400, ge=60, le=14 * 86400, description="How long a queued message waits before SQS drops it."
    )
    visibility_timeout_seconds: int = Field(
        default=60, ge=0, le=43200, description="SQS visibility timeout; the runner extends it while a task runs."
    )
    max_receive_count: int = Field(
        default=5, ge=1, le=1000, description="Deliveries of one message before it moves to the dead-letter queue."
    )
    runs_expiry_days: int = Field(default=30, ge=1, description="Days before payloads and results (runs/) expire.")
    logs_expiry_days: int = Field(default=30, ge=1, description="Days before task logs (logs/) expire in the bucket.")
    keep_images: int = Field(default=100, ge=1, le=10000, description="Images kept in the ECR repository.")
    immutable_tags: bool = Field(default=False, description="Make ECR tags immutable (a rebuilt runtime then fails).")
    force_destroy: bool = Field(
        default=True, description="`mayfly destroy` also deletes the bucket's objects and the repository's images."
    )

    @field_validator("log_retention_days")
    @classmethod
    def _retention(cls, value: int) -> int:
        if value not in LOG_RETENTION_DAYS:
            raise ValueError(f"must be one of {', '.join(map(str, LOG_RETENTION_DAYS))} (0 = never expire)")
        return value


class StackBase(_Model):
    """What every cloud's stack file has."""

    name: str = Field(description="Pulumi stack name; also the target name unless `target` is set.")
    target: str | None = Field(default=None, description="Name of the Mayfly target the deploy records.")
    region: str = Field(description="Region of every resource of the stack.")
    capacity: int = Field(default=10, ge=1, le=100_000, description="Most tasks preparing or running at once.")
    backend: str | None = Field(
        default=None, description="Pulumi backend URL (default: file://$MAYFLY_HOME/pulumi, a local file backend)."
    )
    tags: dict[str, str] = Field(default_factory=dict, description="Tags on every resource that takes tags.")
    runner: RunnerSection = Field(default_factory=RunnerSection, description="The optional always-on runner.")

    @field_validator("name", "target")
    @classmethod
    def _names(cls, value: str | None) -> str | None:
        if value is not None and not TARGET_NAME.match(value):
            raise ValueError(
                f"{value!r} is not a valid name (lowercase letters, digits and '-', starting with a letter)"
            )
        return value

    @field_validator("backend")
    @classmethod
    def _backend(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(BACKEND_SCHEMES):
            raise ValueError(f"{value!r} is not a Pulumi backend URL (file://, s3://, gs://, azblob:// or https://)")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if key.lower().startswith("aws:") or not 1 <= len(key) <= 128:
                raise ValueError(f"invalid tag key {key!r} (1-128 characters, not starting with 'aws:')")
        return value

    @property
    def target_name(self) -> str:
        """The target this stack's deploy records."""
        return self.target or self.name


class AwsStack(StackBase):
    """A stack on AWS: ECS Fargate, SQS, S3, ECR, CloudWatch Logs (built by :class:`mayfly.infra.aws.AwsTarget`)."""

    cloud: Literal["aws"]
    aws: AwsSection = Field(default_factory=AwsSection, description="AWS options.")

    @field_validator("region")
    @classmethod
    def _region(cls, value: str) -> str:
        if not AWS_REGION.match(value):
            raise ValueError(f"{value!r} is not an AWS region (like eu-west-1)")
        return value

    @field_validator("name", "target")
    @classmethod
    def _aws_name_length(cls, value: str | None) -> str | None:
        if value is not None and len(value) > AWS_MAX_NAME:
            raise ValueError(f"at most {AWS_MAX_NAME} characters on aws (AWS name limits)")
        return value


#: Every cloud's stack model, told apart by ``cloud``. GCP and Azure join this union.
StackFile = Annotated[AwsStack, Field(discriminator="cloud")]
#: The parsed stack of any cloud.
Stack = AwsStack
CLOUDS = ("aws",)
_ADAPTER: TypeAdapter[Stack] = TypeAdapter(StackFile)


def fargate_size_problem(cpu: int, memory: int) -> str | None:
    """Why (cpu, memory) is not a Fargate task size, or None when it is one."""
    if cpu not in FARGATE_SIZES:
        return f"cpu {cpu} is not a Fargate size (one of {', '.join(map(str, FARGATE_SIZES))})"
    allowed = FARGATE_SIZES[cpu]
    if memory not in allowed:
        low, high = allowed.start, allowed.stop - 1
        return f"memory {memory} does not fit cpu {cpu} (Fargate: {low}-{high} MiB in steps of {allowed.step})"
    return None


def parse_stack(data: object, source: str) -> Stack:
    """Validate a stack document (a mapping); :class:`InvalidStackFile` lists every problem, a line each."""
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        raise InvalidStackFile(f"{source}: expected a mapping of keys (cloud, name, region, ...), got {kind}")
    try:
        return _ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise InvalidStackFile("\n".join(f"{source}: {line}" for line in _problems(exc))) from None


def load_stack_file(path: Path) -> Stack:
    """Read and validate ``path`` (YAML; JSON is YAML too)."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InvalidStackFile(f"{source}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidStackFile(f"{source}: cannot read it ({exc})") from None
    return parse_stack(_load_yaml(text, source), source)


def stack_to_json(stack: Stack) -> str:
    """The validated stack as JSON (how a deploy keeps it under ``$MAYFLY_HOME``)."""
    return json.dumps(stack.model_dump(mode="json", exclude_defaults=False), indent=2, sort_keys=True)


# ---------------------------------------------------------------- YAML


def _load_yaml(text: str, source: str) -> object:
    # PyYAML ships no type information (and the types-PyYAML stubs are not a dependency): use it as Any.
    try:
        yaml: Any = importlib.import_module("yaml")
    except ImportError:
        raise MissingDependency(f"reading stack files needs PyYAML: {DEPLOY_EXTRAS}") from None

    def mapping(loader: Any, node: Any) -> dict[Any, Any]:
        # PyYAML keeps the last of two equal keys silently; in a stack file that is always a mistake.
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return dict(loader.construct_mapping(node))

    loader: Any = type("UniqueKeyLoader", (yaml.SafeLoader,), {})
    loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(text, Loader=loader)  # a SafeLoader subclass: no arbitrary objects
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise InvalidStackFile(f"{source}: {where}{exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise InvalidStackFile(f"{source}: not valid YAML ({exc})") from None


# ---------------------------------------------------------------- error lines


def _problems(exc: ValidationError) -> list[str]:
    """One line per pydantic error, in the file's own words (keys as dotted paths)."""
    lines: list[str] = []
    for err in exc.errors():
        loc = err["loc"]
        # Errors inside a union member start with the member's tag ('aws'): the file does not have that key.
        parts = [str(p) for p in loc[1:]] if loc else []
        where = ".".join(parts)
        kind = err["type"]
        value = err.get("input")
        if kind == "union_tag_invalid":
            lines.append(f"cloud: unknown cloud {value.get('cloud')!r} (supported: {', '.join(CLOUDS)})")
        elif kind == "union_tag_not_found":
            lines.append(f"cloud: missing (required; one of: {', '.join(CLOUDS)})")
        elif kind == "missing":
            lines.append(f"{where}: missing (required)")
        elif kind == "extra_forbidden":
            hint = _did_you_mean(parts)
            lines.append(f"{where}: unknown key{hint}")
        else:
            message = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
            scalar = isinstance(value, str | int | float | bool)
            got = f", got {json.dumps(value)}" if scalar and kind != "value_error" else ""
            lines.append(f"{where or 'stack'}: {message}{got}")
    return lines


def _did_you_mean(parts: list[str]) -> str:
    model: type[BaseModel] = AwsStack
    for part in parts[:-1]:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(parts[-1], list(model.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
