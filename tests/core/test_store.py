"""The store: migrations produce exactly the schema the code uses, on SQLite and on PostgreSQL.

SQLite runs in WAL mode and migrates a home when it opens it; a PostgreSQL database is
migrated by ``mayfly db upgrade`` only, and a store whose schema is behind or ahead, or
a server that does not answer, is refused with one typed line.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from mayfly.core.errors import SchemaAhead, SchemaBehind, StoreUnavailable
from mayfly.core.store import HEAD, Store
from mayfly.core.store.schema import metadata
from mayfly.testing.postgres import TempCluster


def test_migrations_match_the_schema(db_url: str) -> None:
    store = Store(db_url)
    with store.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    store.close()
    assert diff == []


def test_migrations_run_from_empty_and_down_again(postgres: TempCluster) -> None:
    """Every migration (and its downgrade) runs on PostgreSQL, not only on SQLite."""
    from alembic import command

    from mayfly.core.store import _alembic_config

    store = Store(postgres.create_database("from_empty"), migrate=False)
    assert store.schema_version() is None
    assert store.migrate() is True
    assert store.schema_version() == HEAD
    with store.engine.connect() as conn:
        cfg = _alembic_config()
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
        conn.commit()
    assert store.schema_version() is None
    store.close()


def test_sqlite_uses_wal_and_a_busy_timeout(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'm.db'}")
    with store.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 15000


def test_postgres_has_a_statement_timeout_and_a_pool(pg_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAYFLY_STATEMENT_TIMEOUT", "0.2")
    monkeypatch.setenv("MAYFLY_DATABASE_POOL_SIZE", "3")
    store = Store(pg_url)
    with store.read() as conn:
        assert conn.execute(text("SHOW statement_timeout")).scalar() == "200ms"
    assert store.engine.pool.size() == 3  # type: ignore[attr-defined]
    with (
        pytest.raises(StoreUnavailable, match=r"statement timeout.*MAYFLY_STATEMENT_TIMEOUT=0\.2s"),
        store.read() as conn,
    ):
        conn.execute(text("SELECT pg_sleep(2)"))
    store.close()


def test_opening_twice_migrates_once(db_url: str) -> None:
    Store(db_url).close()
    store = Store(db_url)
    with store.read() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == HEAD
    assert store.migrate() is False
    store.close()


def test_head_constant_is_the_newest_migration() -> None:
    from alembic.script import ScriptDirectory

    from mayfly.core.store import _alembic_config

    assert ScriptDirectory.from_config(_alembic_config()).get_current_head() == HEAD


def test_a_schema_ahead_is_refused_on_both_dialects(db_url: str) -> None:
    store = Store(db_url)
    with store.write() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    store.close()
    with pytest.raises(SchemaAhead, match="revision 9999, newer than this Mayfly's"):
        Store(db_url)


def _mayfly(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mayfly.cli", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_db_upgrade_and_status_through_the_cli(postgres: TempCluster, tmp_path: Path) -> None:
    """An empty database: refused with one line naming the fix; upgraded once; a second upgrade changes nothing."""
    env = {"MAYFLY_HOME": str(tmp_path / "home"), "MAYFLY_DATABASE_URL": postgres.create_database("cli_db")}

    refused = _mayfly(env, "task", "list")
    assert refused.returncode == SchemaBehind.exit_code
    assert refused.stderr.strip().splitlines() == [
        f"Error: the store at {postgres.url('cli_db').replace('postgresql://', 'postgresql+psycopg://')} "
        f"is empty, this Mayfly needs revision {HEAD}: run mayfly db upgrade"
    ]
    status = _mayfly(env, "db", "status")
    assert status.returncode == 5
    assert "empty" in status.stdout
    assert "run mayfly db upgrade" in status.stderr

    first = _mayfly(env, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    assert f"upgraded from revision - to {HEAD}" in first.stdout
    again = _mayfly(env, "db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert f"already at revision {HEAD}" in again.stdout

    status = _mayfly(env, "db", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert '"state": "up to date"' in status.stdout
    assert '"dialect": "postgresql"' in status.stdout
    listed = _mayfly(env, "task", "list")
    assert listed.returncode == 0, listed.stderr


def test_an_unreachable_database_is_one_line(tmp_path: Path) -> None:
    env = {"MAYFLY_HOME": str(tmp_path / "home"), "MAYFLY_DATABASE_URL": "postgresql://mayfly@127.0.0.1:1/mayfly"}
    done = _mayfly(env, "task", "list")
    assert done.returncode == StoreUnavailable.exit_code
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("Error: store unavailable:")
    assert "Connection refused" in lines[0]
    assert "Traceback" not in done.stderr
