"""Stack files are validated before anything runs: one exact line per problem, each naming the file."""

from __future__ import annotations

from pathlib import Path

import pytest

from mayfly.infra.cloud import cloud_names
from mayfly.infra.clouds.aws.component import AwsTargetArgs
from mayfly.infra.clouds.aws.stack import AwsStack
from mayfly.infra.errors import InvalidStackFile
from mayfly.infra.stackfile import load_stack_file, parse_stack, stack_to_json

ROOT = Path(__file__).resolve().parents[2]
GOOD = "cloud: aws\nname: aws-dev\nregion: eu-west-1\n"
#: The clouds this installation registers (aws, gcp, ...), as the errors list them.
INSTALLED = ", ".join(cloud_names())


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
    stack = load_stack_file(ROOT / "stacks" / "aws-example.yaml")
    assert (stack.cloud, stack.name, stack.target_name, stack.region) == ("aws", "aws-dev", "aws-dev", "eu-west-1")
    assert stack.runner.enabled is False
    args = AwsTargetArgs.from_stack(stack)
    assert args.target == "aws-dev"
    assert args.capacity_provider == "FARGATE"
    assert args.tags == {"team": "data"}
    assert args.runner is False


def test_minimal_stack_file_gets_defaults(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text(GOOD)
    stack = load_stack_file(path)
    assert stack.capacity == 10
    assert stack.backend is None
    assert stack.aws.max_receive_count == 5
    assert stack.aws.log_retention_days == 14
    # The saved copy parses back to the same stack.
    import json

    assert parse_stack(json.loads(stack_to_json(stack)), "copy") == stack


def test_runner_shorthand_and_sizes(tmp_path: Path) -> None:
    on = parse_stack(
        {**_good(), "runner": {"enabled": True, "image": "r:1", "cpu": 1024, "memory": 3072}, "capacity": 3}, "s"
    )
    args = AwsTargetArgs.from_stack(on)
    assert (args.runner, args.runner_image, args.runner_cpu, args.runner_memory) == (True, "r:1", 1024, 3072)
    assert args.runner_capacity == 3
    assert parse_stack({**_good(), "runner": False}, "s").runner.enabled is False


def _good() -> dict[str, object]:
    return {"cloud": "aws", "name": "aws-dev", "region": "eu-west-1"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ["expected a mapping of keys (cloud, name, region, ...), got nothing"]),
        ("- a\n- b\n", ["expected a mapping of keys (cloud, name, region, ...), got list"]),
        ("cloud: aws\nname: [\n", ["line 3: expected the node content, but found '<stream end>'"]),
        (GOOD + "region: us-east-1\n", ["line 4: duplicate key 'region'"]),
        ("name: x\nregion: eu-west-1\n", [f"cloud: missing (required; one of: {INSTALLED})"]),
        ("cloud: oracle\nname: x\n", [f"cloud: unknown cloud 'oracle' (supported: {INSTALLED})"]),
        ("cloud: aws\nname: aws-dev\n", ["region: missing (required)"]),
        (GOOD + "regoin: eu-west-2\n", ["regoin: unknown key (did you mean 'region'?)"]),
        (GOOD + "aws:\n  subnets: [a]\n", ["aws.subnets: unknown key (did you mean 'subnet_ids'?)"]),
        (GOOD + "flavor: blue\n", ["flavor: unknown key"]),
        (GOOD.replace("eu-west-1", "mars"), ["region: 'mars' is not an AWS region (like eu-west-1)"]),
        (
            GOOD.replace("aws-dev", "Aws_Dev"),
            ["name: 'Aws_Dev' is not a valid name (lowercase letters, digits and '-', starting with a letter)"],
        ),
        (
            GOOD.replace("aws-dev", "a-very-long-stack-name-for-aws-limits"),
            ["name: at most 32 characters on aws (AWS name limits)"],
        ),
        (GOOD + 'capacity: "10"\n', ['capacity: must be a valid integer, got "10"']),
        (GOOD + "capacity: 0\n", ["capacity: must be greater than or equal to 1, got 0"]),
        (GOOD + "tags: {team: 7}\n", ["tags.team: must be a valid string, got 7"]),
        (GOOD + "tags: {'aws:x': y}\n", ["tags: invalid tag key 'aws:x' (1-128 characters, not starting with 'aws:')"]),
        (
            GOOD + "backend: ftp://state\n",
            ["backend: 'ftp://state' is not a Pulumi backend URL (file://, s3://, gs://, azblob:// or https://)"],
        ),
        (
            GOOD + "aws: {capacity_provider: EC2}\n",
            ["aws.capacity_provider: must be 'FARGATE' or 'FARGATE_SPOT', got \"EC2\""],
        ),
        (
            GOOD + "aws: {log_retention_days: 15}\n",
            [
                "aws.log_retention_days: must be one of 0, 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, "
                "545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 (0 = never expire)"
            ],
        ),
        (GOOD + "aws: {max_receive_count: 0}\n", ["aws.max_receive_count: must be greater than or equal to 1, got 0"]),
        (
            GOOD + "aws: {message_retention_seconds: 2000000}\n",
            ["aws.message_retention_seconds: must be less than or equal to 1209600, got 2000000"],
        ),
        (GOOD + "aws: {assign_public_ip: maybe}\n", ['aws.assign_public_ip: must be a valid boolean, got "maybe"']),
        (
            GOOD + "aws: {subnet_ids: []}\n",
            ["aws.subnet_ids: List should have at least 1 item after validation, not 0"],
        ),
        (
            GOOD + "runner: {enabled: true}\n",
            ["runner: image is required when the runner is enabled (an image with Mayfly installed)"],
        ),
        (
            GOOD + "runner: {cpu: 256, memory: 4096}\n",
            ["runner: memory 4096 does not fit cpu 256 (Fargate: 512-2048 MiB in steps of 512)"],
        ),
        (
            GOOD + "runner: {cpu: 300}\n",
            ["runner: cpu 300 is not a Fargate size (one of 256, 512, 1024, 2048, 4096, 8192, 16384)"],
        ),
    ],
)
def test_bad_stack_file_is_one_line_per_problem(tmp_path: Path, text: str, expected: list[str]) -> None:
    assert problems(tmp_path, text) == expected


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = "cloud: aws\nname: Bad\ncapacity: -1\naws: {keep_images: 0, colour: red}\n"
    assert problems(tmp_path, text) == [
        "name: 'Bad' is not a valid name (lowercase letters, digits and '-', starting with a letter)",
        "region: missing (required)",
        "capacity: must be greater than or equal to 1, got -1",
        "aws.keep_images: must be greater than or equal to 1, got 0",
        "aws.colour: unknown key",
    ]


def test_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidStackFile, match=r"^.*/nope\.yaml: no such file$"):
        load_stack_file(tmp_path / "nope.yaml")


def test_the_model_is_tagged_by_cloud() -> None:
    # GCP and Azure join by registering their own model through their deploy plug-in; the tag is required.
    assert AwsStack.model_fields["cloud"].is_required()
