"""Names the ecs provider gives things in ECS: handles, startedBy, clientToken, tags."""

from __future__ import annotations

import re

import pytest

from mayfly.core.errors import InvalidInput
from mayfly.core.messages import container_name
from mayfly.providers.ecs.naming import (
    attempt_of,
    client_token,
    make_handle,
    make_tags,
    parse_handle,
    started_by,
    tags_of,
)

ARN = "arn:aws:ecs:eu-west-1:123456789012:task/mayfly-test/4c1f0b8e9d2a47f6b3e5a7c9d1f2e3a4"


def test_handles_are_cluster_colon_colon_task_arn() -> None:
    handle = make_handle("mayfly-test", ARN)
    assert handle == f"mayfly-test::{ARN}"
    assert parse_handle(handle, "default") == ("mayfly-test", ARN)
    # A cluster given as an ARN has colons of its own.
    cluster_arn = "arn:aws:ecs:eu-west-1:123456789012:cluster/mayfly-test"
    assert parse_handle(make_handle(cluster_arn, ARN), "default") == (cluster_arn, ARN)
    assert parse_handle(ARN, "default") == ("default", ARN)


@pytest.mark.parametrize("bad", ["", "mayfly-test::", "::" + ARN, "mayfly-test::not-an-arn", "container-id"])
def test_malformed_handles_are_refused(bad: str) -> None:
    with pytest.raises(InvalidInput, match="cluster::taskArn"):
        parse_handle(bad, "" if bad.startswith("::") else "default")


def test_started_by_identifies_the_attempt_within_36_characters() -> None:
    name = container_name("665f0c2a1b3d4e5f6a7b8c9d", 123456789)
    assert started_by(name) == "m-665f0c2a1b3d4e5f6a7b8c9d-123456789"
    assert len(started_by(name)) == 36
    # Anything else is hashed into the allowed alphabet and length.
    for other in (container_name("665f0c2a1b3d4e5f6a7b8c9d", 1234567890), "some name", "mayfly-ünïcode-1"):
        value = started_by(other)
        assert re.fullmatch(r"h-[0-9a-f]{34}", value)
        assert started_by(other) == value


def test_the_client_token_is_deterministic_per_home_target_and_attempt() -> None:
    name = container_name("665f0c2a1b3d4e5f6a7b8c9d", 1)
    token = client_token("home-a", "aws-dev", name)
    assert len(token) <= 64
    assert token.isascii()
    assert client_token("home-a", "aws-dev", name) == token
    assert client_token("home-b", "aws-dev", name) != token
    assert client_token("home-a", "aws-prod", name) != token
    assert client_token("home-a", "aws-dev", container_name("665f0c2a1b3d4e5f6a7b8c9d", 2)) != token


def test_tags_keep_ours_first_and_clean_the_labels() -> None:
    ours = {"mayfly.task": "t1", "mayfly.attempt": "1"}
    labels = {"mayfly.task": "spoofed", "aws:reserved": "x", "team": "data eng (ß)", "k" * 200: "v" * 300}
    tags = make_tags(ours, labels)
    as_dict = {t["key"]: t["value"] for t in tags}
    assert as_dict["mayfly.task"] == "t1"
    assert "aws:reserved" not in as_dict
    assert as_dict["team"] == "data eng _ß_"  # UTF-8 letters are allowed, parentheses are not
    assert all(len(t["key"]) <= 128 and len(t["value"]) <= 256 for t in tags)
    many = make_tags(ours, {f"label{i}": "x" for i in range(80)})
    assert len(many) == 50
    assert many[0] == {"key": "mayfly.task", "value": "t1"}


def test_the_attempt_is_read_back_from_tags() -> None:
    task = {"tags": [{"key": "mayfly.task", "value": "t1"}, {"key": "mayfly.attempt", "value": "3"}]}
    assert attempt_of(tags_of(task)) == ("t1", 3)
    assert attempt_of(tags_of({"tags": [{"key": "mayfly.task", "value": "t1"}]})) is None
    assert attempt_of(tags_of({})) is None
