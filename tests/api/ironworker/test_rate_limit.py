"""IronWorker's API spends the same per-project request budget as /v1: 429 with Retry-After, then served again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx


def test_a_project_over_its_rate_gets_429_then_is_served(tmp_path: Path, start_server: Any) -> None:
    with start_server(tmp_path, "limited", env={"MAYFLY_API_RATE": "0.2", "MAYFLY_API_BURST": "3"}) as srv:
        answers = [httpx.get(srv.path("codes"), headers=srv.auth) for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        refused = answers[-1]
        assert refused.json()["msg"].startswith("Too many requests for this project")
        wait = int(refused.headers["Retry-After"])
        assert 1 <= wait <= 5
        # The native API draws from the same budget.
        assert httpx.get(f"{srv.url}/v1/codes", headers=srv.bearer).status_code == 429
        # A bad token is refused as unauthenticated before any budget is looked at.
        assert httpx.get(srv.path("codes"), headers={"Authorization": "OAuth nope"}).status_code == 401
