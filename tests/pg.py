"""A real PostgreSQL for the tests: one server per test session in a temporary directory,
listening on 127.0.0.1 only, and a fresh database per test (``CREATE DATABASE ... TEMPLATE``).

The server is Debian's (``postgresql`` package; ``PG_BIN`` names another bin directory).
Run as root, ``initdb``/``pg_ctl`` run as the ``postgres`` user (PostgreSQL refuses root).
TCP logins need a password (scram-sha-256): the tests pass it the way sitewatch takes it,
in ``SITEWATCH_DB_PASSWORD``. Tests that need it are skipped, with the reason, when the
binaries are missing.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PG_BIN = Path(os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin"))
USER = "sitewatch"
#: A database migrated to the newest revision, copied for each test.
TEMPLATE = "sw_template"


@dataclass
class PgServer:
    port: int
    password: str
    _counter: itertools.count[int]

    def url(self, database: str) -> str:
        """A history URL without password (sitewatch reads it from the environment)."""
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def admin(self, sql: str) -> None:
        """Run ``sql`` (autocommit) in the ``postgres`` database."""
        import psycopg

        with psycopg.connect(
            host="127.0.0.1",
            port=self.port,
            user=USER,
            password=self.password,
            dbname="postgres",
            autocommit=True,
        ) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def new_database(self, template: str = "template0") -> str:
        name = f"t{next(self._counter)}"
        self.admin(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        return name


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _runner() -> list[str]:
    """Prefix that runs a command as a non-root user (PostgreSQL refuses root)."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.skip("running as root and there is no 'postgres' user to run PostgreSQL as")
    tool = shutil.which("runuser") or shutil.which("setpriv")
    if tool is None:
        pytest.skip("running as root without runuser to start PostgreSQL as 'postgres'")
    return [tool, "-u", "postgres", "--"]


@contextlib.contextmanager
def pg_server() -> Iterator[PgServer]:
    if not (PG_BIN / "initdb").exists() or not (PG_BIN / "pg_ctl").exists():
        pytest.skip(f"PostgreSQL binaries not found in {PG_BIN} (apt-get install postgresql)")
    as_user = _runner()
    root = Path(tempfile.mkdtemp(prefix="sw-pg-"))
    password = secrets.token_urlsafe(16)
    data, pwfile = root / "data", root / "pw"
    pwfile.write_text(password)
    if as_user:
        postgres = pwd.getpwnam("postgres")
        for p in (root, pwfile):
            os.chown(p, postgres.pw_uid, postgres.pw_gid)
    port = _free_port()
    run = [*as_user]
    subprocess.run(
        [*run, str(PG_BIN / "initdb"), "-D", str(data), "-U", USER, f"--pwfile={pwfile}",
         "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    opts = f"-h 127.0.0.1 -p {port} -k {root} -F -c max_connections=60"
    subprocess.run(
        [*run, str(PG_BIN / "pg_ctl"), "-D", str(data), "-l", str(root / "log"), "-w",
         "-o", opts, "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        server = PgServer(port, password, itertools.count(1))
        server.admin(f"CREATE DATABASE {TEMPLATE}")
        _migrate_template(server)
        yield server
    finally:
        subprocess.run(
            [*run, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def _migrate_template(server: PgServer) -> None:
    from crawler.history import Store

    os.environ["SITEWATCH_DB_PASSWORD"] = server.password
    Store(server.url(TEMPLATE)).close()
