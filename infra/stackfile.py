"""The stack file, ``stacks/NAME.yaml``: one deployable target, validated before anything runs.

A stack file names the cloud, the stack and target, the region, the target's
capacity, the optional always-on runner and the cloud's own options::

    cloud: aws                 # which deploy plug-in builds it (`mayfly plugins` lists them)
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

Each cloud's deploy plug-in (:class:`mayfly.infra.cloud.Cloud`) brings its own model,
a subclass of :class:`StackBase` with its section (``aws:``) and its own rules (region
format, name lengths, runner sizes); ``cloud`` picks the model. This module names no
cloud: an unknown or missing ``cloud`` lists the registered ones.
"""

from __future__ import annotations

import difflib
import importlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mayfly.core.errors import MissingDependency
from mayfly.core.targets import NAME as TARGET_NAME
from mayfly.infra.cloud import cloud_names, find_cloud
from mayfly.infra.errors import DEPLOY_EXTRAS, InvalidStackFile

#: Backend URL schemes Pulumi understands (DIY backends and Pulumi Cloud).
BACKEND_SCHEMES = ("file://", "s3://", "gs://", "azblob://", "https://", "http://")


class StrictModel(BaseModel):
    """Base of stack-file models: unknown keys refused, no coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class RunnerSection(StrictModel):
    """The optional always-on runner, deployed with the stack as a service (ECS on AWS).

    A cloud whose runner service has fixed sizes subclasses it and overrides
    :meth:`size_problem` (AWS: Fargate's cpu/memory pairs).
    """

    enabled: bool = Field(default=False, description="Deploy a runner that serves the target's queue in the cloud.")
    image: str | None = Field(
        default=None,
        description="Image with Mayfly installed (`pip install 'mayfly-tasks[aws]'`) and `sh`; required when enabled.",
    )
    cpu: int = Field(default=512, description="Runner cpu units (1024 = one vCPU; AWS: a Fargate size).")
    memory: int = Field(default=1024, description="Runner memory in MiB (AWS: a valid Fargate size for its cpu).")

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        """``runner: true`` / ``runner: false`` are short for ``runner: {enabled: ...}``."""
        return {"enabled": value} if isinstance(value, bool) else value

    def size_problem(self) -> str | None:
        """Why (cpu, memory) is not a size the cloud runs, or None; each cloud's runner section overrides it."""
        return None

    @model_validator(mode="after")
    def _check(self) -> RunnerSection:
        problems = [self.size_problem()]
        if self.enabled and not self.image:
            problems.insert(0, "image is required when the runner is enabled (an image with Mayfly installed)")
        if any(problems):
            raise ValueError("; ".join(p for p in problems if p))
        return self


class StackBase(StrictModel):
    """What every cloud's stack file has; each cloud's model subclasses it and adds its section."""

    cloud: str = Field(description="Which cloud's deploy plug-in builds the stack (`mayfly plugins` lists them).")
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


#: The parsed stack of any cloud (the cloud's own model, a subclass).
Stack = StackBase


def parse_stack(data: object, source: str) -> Stack:
    """Validate a stack document (a mapping) with its cloud's model; :class:`InvalidStackFile` lists every
    problem, a line each. ``cloud`` picks the model among the registered deploy plug-ins."""
    if not isinstance(data, dict):
        kind = "nothing" if data is None else type(data).__name__
        raise InvalidStackFile(f"{source}: expected a mapping of keys (cloud, name, region, ...), got {kind}")
    known = ", ".join(cloud_names()) or "none installed"
    name = data.get("cloud")
    if name is None:
        raise InvalidStackFile(f"{source}: cloud: missing (required; one of: {known})")
    cloud = find_cloud(name) if isinstance(name, str) else None
    if cloud is None:
        raise InvalidStackFile(f"{source}: cloud: unknown cloud {name!r} (supported: {known})")
    model = cloud.stack_model
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidStackFile("\n".join(f"{source}: {line}" for line in _problems(exc, model))) from None


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


def _problems(exc: ValidationError, model: type[BaseModel]) -> list[str]:
    """One line per pydantic error, in the file's own words (keys as dotted paths)."""
    lines: list[str] = []
    for err in exc.errors():
        parts = [str(p) for p in err["loc"]]
        where = ".".join(parts)
        kind = err["type"]
        value = err.get("input")
        if kind == "missing":
            lines.append(f"{where}: missing (required)")
        elif kind == "extra_forbidden":
            hint = _did_you_mean(model, parts)
            lines.append(f"{where}: unknown key{hint}")
        else:
            message = str(err["msg"]).removeprefix("Value error, ").replace("Input should be", "must be")
            scalar = isinstance(value, str | int | float | bool)
            got = f", got {json.dumps(value)}" if scalar and kind != "value_error" else ""
            lines.append(f"{where or 'stack'}: {message}{got}")
    return lines


def _did_you_mean(model: type[BaseModel], parts: list[str]) -> str:
    for part in parts[:-1]:
        field = model.model_fields.get(part)
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return ""
        model = annotation
    close = difflib.get_close_matches(parts[-1], list(model.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""
