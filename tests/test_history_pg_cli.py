"""The real ``sitewatch`` command with its history in PostgreSQL (``history.url``), the
password from the environment: the same findings as with the default SQLite file, the
re-run cache and the replay of an unchanged site working from PostgreSQL, ``sitewatch
history`` listing the runs, and a database that cannot be reached a clear error (exit 2)
that never shows the password."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from crawler.history import Store
from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config

pytestmark = pytest.mark.postgres


def page(title: str, body: str) -> str:
    head = f"<!doctype html><html lang=sv><head><title>{title}</title></head>"
    return f"{head}<body>{body}</body></html>"


def findings(r: CliResult) -> list[tuple[Any, ...]]:
    return sorted((f["check"], f["page"], f["target"], f["detail"]) for f in r.report["findings"])


def config(tmp: Path, name: str, start: str, history: str) -> Path:
    return write_config(
        tmp / f"{name}.toml",
        f'[site]\nname = "pgsite"\nstart_urls = ["{start}"]\n[crawl]\nobey_robots = false\n'
        f"[history]\n{history}\n",
    )


def audit(cfg: Path, tmp: Path, n: str) -> CliResult:
    r = sitewatch(
        "audit", "--config", str(cfg), "--out", str(tmp / f"out-{n}"), "--as-of", "2026-11-27",
        "-q", "--format", "json", cwd=tmp,
    )  # fmt: skip
    assert r.code in (0, 1) and "Traceback" not in r.stderr, r.stderr
    return r


def test_audits_with_the_history_in_postgres(tmp_path: Path, pg_url: str) -> None:
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text(
        page("Start", '<a href="a.html">A</a> <a href="gone.html">Borta</a>'), encoding="utf-8"
    )
    (www / "a.html").write_text(page("A", '<a href="index.html">Start</a>'), encoding="utf-8")
    with SiteServer("127.0.0.1", root=www, name="kommun", validators=True) as site:
        start = site.url("/index.html")
        on_sqlite = audit(config(tmp_path, "sqlite", start, 'db = "var/sw.db"'), tmp_path, "lite")
        pg_cfg = config(tmp_path, "pg", start, f'url = "{pg_url}"')
        first = audit(pg_cfg, tmp_path, "1")
        second = audit(pg_cfg, tmp_path, "2")
        site.add_route("/gone.html", Route(body=page("Tillbaka", "<p>här</p>")))
        third = audit(pg_cfg, tmp_path, "3")
    assert findings(first) == findings(on_sqlite) and findings(first)
    assert findings(second) == findings(first)
    assert second.report["run"]["stats"]["replayed_from_run"] == 1  # from PostgreSQL's rows
    broken = [f for f in findings(first) if f[0] == "broken_link"]
    assert [f[2] for f in broken] == [site.url("/gone.html")]
    assert not [f for f in findings(third) if f[0] == "broken_link"]  # fixed
    with Store(pg_url) as s:
        rows = s.runs("pgsite")
        assert [(r.id, r.status) for r in rows] == [
            (3, "complete"),
            (2, "complete"),
            (1, "complete"),
        ]
        assert rows[0].changes["fixed"] == 1 and rows[1].changes["new"] == 0
    listed = sitewatch("history", "--config", str(pg_cfg), cwd=tmp_path)
    assert listed.code == 0, listed.stdout + listed.stderr
    lines = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [(cols[0], cols[3]) for cols in lines] == [
        ("3", "complete"),
        ("2", "complete"),
        ("1", "complete"),
    ]


def test_an_unreachable_postgres_is_a_clear_error_without_the_password(
    tmp_path: Path, pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SITEWATCH_DB_PASSWORD", "Not-The-Password-93")
    cfg = config(tmp_path, "pg", "http://127.0.0.1:9/", f'url = "{pg_url}"')
    r = sitewatch("audit", "--config", str(cfg), "-q", cwd=tmp_path)
    assert r.code == 2 and "Traceback" not in r.stderr, r.stderr
    assert "history database postgresql+psycopg://sitewatch:***@127.0.0.1" in r.stderr
    assert "password authentication failed" in r.stderr
    assert "Not-The-Password-93" not in r.stdout + r.stderr
