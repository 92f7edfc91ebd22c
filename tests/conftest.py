"""Shared fixtures: the history on both backends (``history_url``: a SQLite file, or a fresh
PostgreSQL database on a server started for the session; see ``tests/pg.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.pg import TEMPLATE, PgServer, pg_server


@pytest.fixture(scope="session")
def pg() -> Iterator[PgServer]:
    with pg_server() as server:
        yield server


@pytest.fixture
def pg_url(pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh PostgreSQL history (migrated), its password in SITEWATCH_DB_PASSWORD."""
    monkeypatch.setenv("SITEWATCH_DB_PASSWORD", pg.password)
    return pg.url(pg.new_database(TEMPLATE))


@pytest.fixture
def pg_empty_url(pg: PgServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty PostgreSQL database (nothing migrated yet)."""
    monkeypatch.setenv("SITEWATCH_DB_PASSWORD", pg.password)
    return pg.url(pg.new_database())


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def history_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Where a test's history lives: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return str(tmp_path / "h.db")
    return str(request.getfixturevalue("pg_url"))
