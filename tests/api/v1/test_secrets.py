"""``secrets`` in the ``/v1`` bodies: write-only, names in every response, per project, bad input refused.

Issue 13 item 6. In-process app (no runner): the end-to-end run is test_secrets_docker.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

VALUE = "v1-secret-5e0c93aa"


def _clean(response: Any) -> Any:
    assert VALUE.encode() not in response.content
    return response


@pytest.fixture
def code(two: Any, zip_of: Callable[[dict[str, str]], bytes]) -> str:
    data = {"name": "up", "runtime": "any", "secrets": {"DB": VALUE, "OTHER": "x"}}
    made = _clean(
        two.client.post(
            "/v1/codes",
            headers=two.as_a,
            files={"file": ("c.zip", zip_of({"main.sh": "true"}), "application/zip")},
            data={"data": json.dumps(data)},
        )
    )
    assert made.status_code == 201, made.text
    assert made.json()["latest"]["secrets"] == ["DB", "OTHER"]
    return "up"


def test_upload_register_keep_replace(two: Any, code: str, zip_of: Callable[[dict[str, str]], bytes]) -> None:
    got = _clean(two.client.get(f"/v1/codes/{code}", headers=two.as_a)).json()
    assert got["latest"]["secrets"] == ["DB", "OTHER"]
    # A JSON re-registration without secrets keeps them; replace_secrets drops them first.
    kept = _clean(two.client.post("/v1/codes", headers=two.as_a, json={"name": code, "image": "img:1"})).json()
    assert kept["latest"]["secrets"] == ["DB", "OTHER"]
    body = {"name": code, "image": "img:1", "replace_secrets": True, "secrets": {"NEW": VALUE}}
    replaced = _clean(two.client.post("/v1/codes", headers=two.as_a, json=body)).json()
    assert replaced["latest"]["secrets"] == ["NEW"]
    revs = _clean(two.client.get(f"/v1/codes/{code}/revisions", headers=two.as_a)).json()["revisions"]
    assert [r["secrets"] for r in revs] == [["NEW"], ["DB", "OTHER"], ["DB", "OTHER"]]
    _clean(two.client.get("/v1/codes", headers=two.as_a))
    # Another project sees no such code at all.
    assert two.client.get(f"/v1/codes/{code}", headers=two.as_b).status_code == 404


def test_tasks_and_bulk_carry_names_only(two: Any, code: str) -> None:
    one = _clean(two.client.post("/v1/tasks", headers=two.as_a, json={"code_name": code, "secrets": {"T": VALUE}}))
    assert one.status_code == 201, one.text
    assert one.json()["secrets"] == ["T"]
    bulk = _clean(
        two.client.post(
            "/v1/tasks/bulk", headers=two.as_a, json={"code_name": code, "payloads": [{}, {}], "secrets": {"B": VALUE}}
        )
    )
    assert [t["secrets"] for t in bulk.json()["tasks"]] == [["B"], ["B"]]
    _clean(two.client.get(f"/v1/tasks/{one.json()['id']}", headers=two.as_a))
    _clean(two.client.get("/v1/tasks", headers=two.as_a))


@pytest.mark.parametrize(
    ("secrets", "message"),
    [
        ({"9BAD": VALUE}, "invalid secret name '9BAD': use letters, digits and '_', not starting with a digit"),
        ({"MAYFLY_X": VALUE}, "secret name 'MAYFLY_X' is reserved (MAYFLY_* is Mayfly's)"),
        ({"BIG": "x" * (64 * 1024 + 1)}, "secret 'BIG' is 65537 bytes; the limit is 65536"),
        ({"N": 5}, "secrets.N: Input should be a valid string"),
    ],
)
def test_bad_secrets_are_400_and_store_nothing(two: Any, code: str, secrets: Any, message: str) -> None:
    r = _clean(two.client.post("/v1/tasks", headers=two.as_a, json={"code_name": code, "secrets": secrets}))
    assert (r.status_code, r.json()["message"]) == (400, message)
    assert two.client.get("/v1/tasks", headers=two.as_a).json()["tasks"] == []
    body = {"name": code, "image": "img:1", "secrets": secrets}
    r = _clean(two.client.post("/v1/codes", headers=two.as_a, json=body))
    assert (r.status_code, r.json()["message"]) == (400, message)
    assert two.client.get(f"/v1/codes/{code}", headers=two.as_a).json()["rev"] == 1
