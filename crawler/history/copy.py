"""Copy a whole history into an empty one: ``sitewatch history --copy-to URL`` (moving from
the SQLite file to PostgreSQL, docs/scaling.md).

Both ends are opened as ``Store``s, so both are migrated to the newest schema first (the
SQLite file upgraded in place, the target's tables created by Alembic). The target must
have no runs. Every table of the schema is copied in dependency order (``runs`` before
the rows that name a run), in batches, in one transaction on the target: a failure leaves
it empty. Not copied: ``site_leases`` (locks of processes that ran on the source). On
PostgreSQL the id sequences are then moved past the copied ids.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sqlalchemy import Connection, Table, func, select, text

from crawler.history.schema import metadata, runs
from crawler.history.store import Store

#: Rows per INSERT batch.
BATCH = 2000
#: Tables left out of a copy.
SKIP = frozenset({"site_leases"})


class CopyError(RuntimeError):
    """The history cannot be copied there (the target already has runs)."""


def copy_history(source: Store, target: Store) -> dict[str, int]:
    """Copy every row of ``source`` into the empty ``target``; rows copied per table."""
    counts: dict[str, int] = {}
    with source.engine.connect() as src, target.engine.begin() as dst:
        if dst.execute(select(func.count()).select_from(runs)).scalar():
            raise CopyError(f"{target.shown} already has runs: copy only into an empty history")
        for table in metadata.sorted_tables:
            if table.name in SKIP:
                continue
            counts[table.name] = 0
            for batch in _batches(src, table):
                dst.execute(table.insert(), batch)
                counts[table.name] += len(batch)
        if dst.dialect.name == "postgresql":
            _move_sequences(dst)
    return counts


def _batches(src: Connection, table: Table) -> Iterator[list[dict[str, Any]]]:
    result = src.execution_options(stream_results=True).execute(select(table))
    for rows in result.mappings().partitions(BATCH):
        yield [dict(r) for r in rows]


def _move_sequences(dst: Connection) -> None:
    for table in metadata.sorted_tables:
        if "id" not in table.c or not table.c.id.autoincrement or table.name in SKIP:
            continue
        dst.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                f"COALESCE((SELECT max(id) FROM {table.name}), 0) + 1, false)"
            )
        )
