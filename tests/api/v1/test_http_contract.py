"""The OpenAPI document tells the truth about a real ``mayfly server``.

``schemathesis`` reads ``/openapi.json`` from the running server and sends each
operation generated requests, valid and invalid: no answer may be a 5xx, every
status must be one the document declares for the operation, and every body,
content type and header must match what it declares. The examples are few and
derandomised, so CI repeats the same few hundred requests.

Nothing here needs a container to run: a task a fuzzed request manages to queue
names an image that is not there (the Docker provider never pulls), so it fails
at launch without the test waiting for it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from mayfly.core.models import TaskStatus
from mayfly.core.schedules import MISSED

pytestmark = [pytest.mark.slow, pytest.mark.docker]

#: The checks every generated request must pass (the contract, not guesses about business rules).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory, start_server: Any) -> Iterator[Any]:
    """One server for the module, with a rate high enough not to throttle the fuzzer."""
    env = {"MAYFLY_API_RATE": "100000", "MAYFLY_API_BURST": "100000"}
    with start_server(tmp_path_factory.mktemp("openapi"), "fuzz", env) as srv:
        yield srv


@pytest.fixture(scope="module")
def known(fuzzed: Any) -> dict[str, str]:
    """Objects the fuzzer also calls by id: a paused image code (nothing launches), a queued task, a schedule."""
    with httpx.Client(base_url=fuzzed.url, headers=fuzzed.bearer, timeout=30) as client:
        client.post("/v1/codes", json={"name": "fuzz", "image": "mayfly-test/absent:latest"}).raise_for_status()
        client.post("/v1/codes/fuzz/pause").raise_for_status()
        task = client.post("/v1/tasks", json={"code_name": "fuzz", "label": "fuzz"}).json()
        schedule = client.post("/v1/schedules", json={"code_name": "fuzz", "every": "1h"}).json()
    return {"name": "fuzz", "task_id": task["id"], "schedule_id": schedule["id"]}


#: Generated requests per operation and mode (valid, invalid, valid on a real object): ~500 requests in all.
EXAMPLES = 8


def _path_parameters(path: str, known: dict[str, str]) -> dict[str, str]:
    found = {key: value for key, value in known.items() if "{" + key + "}" in path}
    if path.startswith("/v1/targets/"):
        found["name"] = "local"
    return found


def test_every_operation_answers_as_documented(fuzzed: Any, known: dict[str, str]) -> None:
    # Unknown query parameters are ignored (as most HTTP APIs do; docs/decisions.md), so the fuzzer
    # does not count one as invalid data the server should have refused.
    config = schemathesis.Config.from_dict({"generation": {"allow-extra-parameters": False}})
    schema = schemathesis.openapi.from_url(f"{fuzzed.url}/openapi.json", config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    failures: list[str] = []
    sent = 0
    for operation in operations:
        real = _path_parameters(operation.path, known)
        runs: list[tuple[GenerationMode, dict[str, str]]] = [(GenerationMode.POSITIVE, {})]
        if len(operation.query) or len(operation.body):  # string path parameters have no invalid value
            runs.append((GenerationMode.NEGATIVE, {}))
        if real:
            runs.append((GenerationMode.POSITIVE, real))
        for mode, fixed in runs:
            # The token is fixed: a case "without Authorization" would still be sent with it.
            strategy = operation.as_strategy(mode, headers=fuzzed.bearer, path_parameters=fixed or None)

            @given(case=strategy)
            @settings(
                max_examples=EXAMPLES,
                derandomize=True,
                deadline=None,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def call(case: Any) -> None:
                nonlocal sent
                sent += 1
                case.call_and_validate(headers=fuzzed.bearer, checks=CHECKS, timeout=30)

            try:
                call()
            except Exception as exc:  # each run's first failure, all reported at the end
                what = f"{operation.method.upper()} {operation.path} ({mode.value}{', real ids' if fixed else ''})"
                failures.append(f"{what}: {exc}")
    assert sent > 100, "schemathesis generated almost nothing: the run proves little"
    assert not failures, "\n\n".join(failures)


def test_the_document_declares_errors_and_bounds_and_no_422(fuzzed: Any) -> None:
    doc = httpx.get(f"{fuzzed.url}/openapi.json").json()
    operations = [(p, m, op) for p, ops in doc["paths"].items() for m, op in ops.items()]
    assert operations
    assert not [p for p, _, _ in operations if p.startswith("/2/")]
    assert not [(m, p) for p, m, op in operations if "422" in op["responses"]]
    assert "HTTPValidationError" not in doc["components"]["schemas"]
    for path, method, op in operations:
        for status in ("401", "413", "429", "503"):
            body = op["responses"][status]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    assert "Retry-After" in doc["paths"]["/v1/tasks"]["get"]["responses"]["429"]["headers"]
    assert {"404", "409"} <= set(doc["paths"]["/v1/tasks/{task_id}/cancel"]["post"]["responses"])
    limit = next(p for p in doc["paths"]["/v1/tasks"]["get"]["parameters"] if p["name"] == "limit")
    assert (limit["schema"]["minimum"], limit["schema"]["maximum"]) == (1, 1000)
    task = doc["components"]["schemas"]["TaskCreate"]["properties"]
    assert (task["priority"]["minimum"], task["priority"]["maximum"]) == (0, 2)
    status = next(p for p in doc["paths"]["/v1/tasks"]["get"]["parameters"] if p["name"] == "status")
    assert set(status["schema"]["items"]["enum"]) == {s.value for s in TaskStatus}
    missed = doc["components"]["schemas"]["ScheduleCreate"]["properties"]["missed"]
    assert missed["enum"] == list(MISSED)


def test_a_request_the_document_calls_invalid_is_refused_in_its_error_shape(fuzzed: Any) -> None:
    answer = httpx.get(f"{fuzzed.url}/v1/tasks", params={"limit": 0}, headers=fuzzed.bearer)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_input"
    assert answer.json()["message"] == "limit must be between 1 and 1000"


# ---------------------------------------------------------------- 405 and Allow, on every path of both APIs

PROBED = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")


def _concrete_paths(project_id: str) -> list[str]:
    """One URL per route of /v1 and /2, from the routers' own table (every parameter given a plain value)."""
    import re

    from mayfly.api import ironworker, v1
    from mayfly.api.methods import leaf_routes

    paths = {r.path for r in leaf_routes([*v1.router.routes, *ironworker.router.routes]) if r.path}
    concrete = {re.sub(r"\{[^}]+\}", "x", p.replace("{project_id}", project_id)) for p in paths}
    return sorted(concrete)


def test_a_405_allows_every_method_the_path_serves(fuzzed: Any) -> None:
    paths = _concrete_paths(fuzzed.project_id)
    assert any(p.startswith("/v1/") for p in paths)
    assert any(p.startswith("/2/") for p in paths)
    problems = []
    with httpx.Client(base_url=fuzzed.url, headers=fuzzed.bearer, timeout=30) as client:
        for path in paths:
            answers = {m: client.request(m, path) for m in PROBED}
            served = {m for m, a in answers.items() if a.status_code != 405}
            assert served, f"no method is served on {path}"
            for method, answer in answers.items():
                if answer.status_code != 405:
                    continue
                allow = {m.strip() for m in answer.headers.get("allow", "").split(",") if m.strip()}
                if allow != served:
                    problems.append(f"{method} {path}: Allow {sorted(allow)}, served {sorted(served)}")
    assert not problems, "\n".join(problems)


def test_put_on_v1_codes_names_get_and_post(fuzzed: Any) -> None:
    answer = httpx.put(f"{fuzzed.url}/v1/codes", headers=fuzzed.bearer)
    assert answer.status_code == 405
    assert answer.headers["allow"] == "GET, POST"
    assert answer.json() == {"code": "method_not_allowed", "message": "method PUT is not allowed on /v1/codes"}


# ---------------------------------------------------------------- malformed JSON, said in words


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        (
            "/v1/tasks",
            b'{"code_name": "hello" "payload": {}}',
            "body: invalid JSON at line 1, column 23: expecting ',' delimiter",
        ),
        (
            "/v1/schedules",
            b'{\n  "code_name": "hello",\n  "every":\n}',
            "body: invalid JSON at line 4, column 1: expecting value",
        ),
        (
            "/v1/codes",
            b'{"name": "hello", "image": busybox}',
            "body: invalid JSON at line 1, column 28: expecting value",
        ),
    ],
)
def test_malformed_json_is_described_in_words(fuzzed: Any, path: str, body: bytes, message: str) -> None:
    headers = {**fuzzed.bearer, "Content-Type": "application/json"}
    answer = httpx.post(f"{fuzzed.url}{path}", content=body, headers=headers)
    assert answer.status_code == 400
    assert answer.json() == {"code": "invalid_input", "message": message}
