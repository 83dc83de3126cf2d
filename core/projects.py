"""Projects: the tenants. Every code, task and schedule belongs to one."""

from __future__ import annotations

import re

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from mayfly.core.errors import Conflict, InvalidInput, NotFound
from mayfly.core.ids import new_id
from mayfly.core.records import Project
from mayfly.core.store import Store, now
from mayfly.core.store import schema as s

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")


class ProjectService:
    """Create and look up projects."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def ensure(self, name: str) -> Project:
        """The project called ``name``, created if missing (race-safe)."""
        if not NAME.match(name):
            raise InvalidInput(f"invalid project name {name!r}")
        with self.store.read() as conn:
            row = conn.execute(select(s.projects).where(s.projects.c.name == name)).mappings().first()
        if row:
            return Project.from_row(row)
        try:
            with self.store.write() as conn:
                conn.execute(insert(s.projects).values(id=new_id(), name=name, created_at=now()))
        except IntegrityError:
            pass  # created by a concurrent process
        return self.get(name)

    def create(self, name: str) -> Project:
        """A new project; an existing name is a conflict."""
        if not NAME.match(name):
            raise InvalidInput(f"invalid project name {name!r}: letters, digits, '.', '_' and '-'")
        try:
            with self.store.write() as conn:
                conn.execute(insert(s.projects).values(id=new_id(), name=name, created_at=now()))
        except IntegrityError:
            raise Conflict(f"project {name!r} already exists") from None
        return self.get(name)

    def by_id(self, project_id: str) -> Project:
        with self.store.read() as conn:
            row = conn.execute(select(s.projects).where(s.projects.c.id == project_id)).mappings().first()
        if row is None:
            raise NotFound(f"unknown project {project_id!r}")
        return Project.from_row(row)

    def get(self, name: str) -> Project:
        with self.store.read() as conn:
            row = conn.execute(select(s.projects).where(s.projects.c.name == name)).mappings().first()
        if row is None:
            raise NotFound(f"unknown project {name!r}")
        return Project.from_row(row)

    def list(self) -> list[Project]:
        with self.store.read() as conn:
            return [
                Project.from_row(r) for r in conn.execute(select(s.projects).order_by(s.projects.c.name)).mappings()
            ]
