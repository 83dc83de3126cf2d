"""Key rotation: re-encrypt every stored secret value with the primary key.

``mayfly secret-key rotate`` puts a new key first in the key file and calls
:func:`reseal`; ``mayfly secret-key prune`` drops the old keys once no task
message sealed with them can still be waiting (:func:`launching_with_secrets`).
"""

from __future__ import annotations

from sqlalchemy import or_, select, update

from mayfly.core.models import TaskStatus
from mayfly.core.secrets import SecretBox, dump_sealed, load_sealed
from mayfly.core.store import Store
from mayfly.core.store import schema as s


def reseal(store: Store, box: SecretBox) -> int:
    """Re-encrypt the secrets of every code revision and task with the primary key; returns how many values."""
    count = 0
    with store.write() as conn:
        for table in (s.code_revisions, s.tasks):
            rows = conn.execute(select(table.c.id, table.c.secrets).where(table.c.secrets.is_not(None))).all()
            for row_id, sealed in rows:
                tokens = load_sealed(sealed)
                conn.execute(update(table).where(table.c.id == row_id).values(secrets=dump_sealed(box.rotate(tokens))))
                count += len(tokens)
    return count


def any_sealed(store: Store) -> bool:
    """True when some code revision or task holds a sealed secret (a lost key must not be replaced silently)."""
    with store.read() as conn:
        for table in (s.code_revisions, s.tasks):
            if conn.execute(select(table.c.id).where(table.c.secrets.is_not(None)).limit(1)).first() is not None:
                return True
    return False


def launching_with_secrets(store: Store) -> int:
    """Tasks with secrets whose message is out (``preparing``): it carries tokens sealed when it was sent."""
    with store.read() as conn:
        return len(
            conn.execute(
                select(s.tasks.c.id)
                .join(s.code_revisions, s.code_revisions.c.id == s.tasks.c.revision_id)
                .where(
                    s.tasks.c.status == TaskStatus.PREPARING.value,
                    or_(s.tasks.c.secrets.is_not(None), s.code_revisions.c.secrets.is_not(None)),
                )
            ).all()
        )
