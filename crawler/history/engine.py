"""Where the history lives: a SQLite file (the default) or a PostgreSQL database.

``history.url`` empty: the SQLite file ``history.db`` (relative to the working directory),
as before. ``history.url = "postgresql://user@host:5432/db"`` (or ``postgresql+psycopg://``)
switches to PostgreSQL through psycopg 3; its password is never in the URL or a file but in
the environment variable named by ``history.password_env``. Every message that may show the
URL shows it masked (:func:`masked`).

SQLite connections get the settings the store relies on, on connect: WAL (set once, it is a
property of the file), ``busy_timeout``, ``synchronous = NORMAL``, ``foreign_keys = ON``;
the driver's own transaction handling is off, SQLAlchemy's ``begin`` emits ``BEGIN`` (or
``BEGIN IMMEDIATE`` for a connection with the ``sqlite_immediate`` execution option: the
write lock is taken up front, so two writers queue on ``busy_timeout`` instead of failing
on an upgrade from a read lock).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DEFAULT_PASSWORD_ENV = "SITEWATCH_DB_PASSWORD"
_PG_DRIVERS = {"postgresql", "postgres", "postgresql+psycopg"}


class HistoryURLError(ValueError):
    """``history.url`` cannot be used (unknown scheme, a password in it, ...)."""


@dataclass(frozen=True, slots=True)
class Target:
    """A resolved history location: the SQLAlchemy URL (with the password, if any, from
    the environment) and, for SQLite, the file."""

    url: URL
    path: Path | None

    @property
    def dialect(self) -> str:
        return self.url.get_backend_name()

    @property
    def shown(self) -> str:
        """The URL for messages: password masked; a SQLite file as its path."""
        return str(self.path) if self.path is not None else masked(self.url)


def masked(url: URL | str) -> str:
    """``url`` with its password replaced by ``***``."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except ArgumentError:
            return str(url)
    return url.render_as_string(hide_password=True)


def scrub(message: str, target: Target | None) -> str:
    """``message`` with the target's password (if any) replaced by ``***``."""
    password = None if target is None else target.url.password
    if password:
        message = message.replace(str(password), "***")
    return message


def resolve(where: str | Path | URL, password_env: str = DEFAULT_PASSWORD_ENV) -> Target:
    """A history location: a path (SQLite file), ``sqlite:///path``, or a PostgreSQL URL."""
    if isinstance(where, Path) or (isinstance(where, str) and "://" not in where):
        return _sqlite(Path(where))
    try:
        url = make_url(where)
    except ArgumentError as e:
        raise HistoryURLError(f"history.url {masked(str(where))!r} is not a URL: {e}") from None
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite(Path(url.database or ":memory:"))
    if url.drivername not in _PG_DRIVERS:
        raise HistoryURLError(
            f"history.url {masked(url)!r}: unknown database {url.drivername!r} "
            "(use a SQLite file, or postgresql://user@host/db)"
        )
    if url.password is not None:
        raise HistoryURLError(
            f"history.url {masked(url)!r} holds a password: put it in the environment "
            f"variable named by history.password_env ({password_env}) instead"
        )
    url = url.set(drivername="postgresql+psycopg")
    password = os.environ.get(password_env) if password_env else None
    if password:
        url = url.set(password=password)
    return Target(url, None)


def _sqlite(path: Path) -> Target:
    return Target(
        URL.create("sqlite", database=str(path)), None if str(path) == ":memory:" else path
    )


def create(target: Target, *, timeout: float = 30.0, **options: Any) -> Engine:
    """An engine for ``target`` (SQLite: the pragmas above, on every new connection)."""
    if target.dialect == "sqlite":
        return _sqlite_engine(target, timeout, **options)
    connect_args = {"connect_timeout": max(1, int(timeout)), "application_name": "sitewatch"}
    return create_engine(target.url, connect_args=connect_args, pool_pre_ping=True, **options)


def _sqlite_engine(target: Target, timeout: float, **options: Any) -> Engine:
    if target.path is not None:
        target.path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        target.url,
        # check_same_thread=False: a store's connection may be closed by a thread of its
        # own (``Store.close_in_background``); nothing else shares it.
        connect_args={"timeout": timeout, "check_same_thread": False},
        **options,
    )
    in_memory = target.path is None

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we say BEGIN (below), not the driver
        cur = dbapi_conn.cursor()
        cur.execute(f"PRAGMA busy_timeout = {int(timeout * 1000)}")
        mode = cur.execute("PRAGMA journal_mode").fetchone()[0]
        if str(mode).lower() != "wal" and not in_memory:
            cur.execute("PRAGMA journal_mode = WAL")
        cur.execute("PRAGMA synchronous = NORMAL")
        cur.execute("PRAGMA foreign_keys = ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine
