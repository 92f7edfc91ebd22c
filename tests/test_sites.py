"""Deployments of several sites (``schedule.sites``), ``--site``, and the ``[worker]`` keys."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from crawler.app.sites import load_site, load_sites
from crawler.config import ConfigError, load_config
from crawler.worker.broker import MAINTENANCE_SCALE, broker_options, maintenance_chance
from tests.watch_site import cli_env


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def deployment(tmp_path: Path) -> Path:
    _write(
        tmp_path / "sites" / "a.toml",
        '[site]\nname = "kommun-a"\nstart_urls = ["http://127.0.0.2/"]\n'
        '[crawl]\nmax_pages = 10\n[[owners]]\nmatch = ["http://127.0.0.2/"]\n'
        'name = "A"\nemails = ["a@kommun.example"]\n',
    )
    _write(tmp_path / "sites" / "b.toml", '[site]\nstart_urls = ["http://127.0.0.3/sv/"]\n')
    return _write(
        tmp_path / "deploy.toml",
        '[schedule]\nbackend = "dramatiq"\nsites = ["sites/*.toml"]\n'
        '[crawl]\nmax_pages = 99\ndelay = 0.5\n[history]\ndb = "var/h.db"\n',
    )


def test_site_files_are_merged_over_the_deployment(deployment: Path) -> None:
    sites = load_sites(deployment)
    assert list(sites) == ["kommun-a", "127.0.0.3/sv"]  # site.name, else host + path
    a, b = sites["kommun-a"].cfg, sites["127.0.0.3/sv"].cfg
    assert (a.crawl.max_pages, a.crawl.delay) == (10, 0.5)  # its own, then the shared one
    assert (b.crawl.max_pages, b.history.db) == (99, "var/h.db")
    assert [o.name for o in a.owners] == ["A"] and b.owners == ()
    assert load_site(deployment, "kommun-a") == a


def test_a_single_site_config_is_its_own_one_site(tmp_path: Path) -> None:
    cfg = _write(tmp_path / "one.toml", '[site]\nstart_urls = ["http://127.0.0.2/x/"]\n')
    assert list(load_sites(cfg)) == ["127.0.0.2/x"]
    assert load_config(cfg).schedule.backend == "local"


@pytest.mark.parametrize(
    ("site_text", "deploy_sites", "message"),
    [
        ("[history]\ndb = 'x.db'\n", '["sites/*.toml"]', "history: a site file may not set"),
        ("[worker]\nqueue = 'x'\n", '["sites/*.toml"]', "worker: a site file may not set"),
        ("[site]\nname = 'a'\n", '["sites/a.toml", "sites/nope.toml"]', "no such file"),
        ("[site]\nname = 'a'\n", '["sites/a.toml", "sites/b.toml"]', "also defined by"),
        ("[crawl]\nmax_pages = 0\n", '["sites/a.toml"]', "a.toml: crawl.max_pages"),
        ("[site]\nname = 'a'\n", '["nothing/*.toml"]', "no site file matches"),
    ],
)
def test_bad_site_lists_are_clear_config_errors(
    tmp_path: Path, site_text: str, deploy_sites: str, message: str
) -> None:
    _write(tmp_path / "sites" / "a.toml", site_text)
    _write(tmp_path / "sites" / "b.toml", site_text)
    deploy = _write(tmp_path / "deploy.toml", f"[schedule]\nsites = {deploy_sites}\n")
    with pytest.raises(ConfigError) as err:
        load_sites(deploy)
    assert message in str(err.value)


def test_unknown_site_on_the_command_line(deployment: Path, tmp_path: Path) -> None:
    for cmd in (["audit", "--site", "nope"], ["send", "--site", "nope"]):
        done = subprocess.run(
            [sys.executable, "-m", "crawler.app.cli", *cmd, "--config", str(deployment)],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, done.stderr
        assert "no site 'nope' (known: 'kommun-a', '127.0.0.3/sv')" in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('redis_url = "redis://:hunter2@127.0.0.1:6379/0"', "holds a password"),
        ('redis_url = "http://127.0.0.1/"', "expected a redis://"),
        ('queue = "a b"', "expected a queue name"),
        ("max_retries = -1", "worker.max_retries"),
        ('password_env = "hunter 2"', "name of an environment variable"),
    ],
)
def test_bad_worker_settings(tmp_path: Path, table: str, message: str) -> None:
    path = _write(tmp_path / "w.toml", f"[worker]\n{table}\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert "hunter" not in str(err.value)


def test_several_sites_need_the_dramatiq_backend(deployment: Path, tmp_path: Path) -> None:
    local = _write(tmp_path / "local.toml", '[schedule]\nsites = ["sites/*.toml"]\n')
    done = subprocess.run(
        [sys.executable, "-m", "crawler.app.cli", "schedule", "--config", str(local)],
        cwd=tmp_path,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2 and 'schedule.backend = "dramatiq"' in done.stderr


def test_broker_options(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _write(
        tmp_path / "w.toml",
        '[worker]\nredis_url = "redis://10.0.0.5:6380/2"\nheartbeat_timeout = 5\n'
        'password_env = "MY_REDIS_PW"\n',
    )
    monkeypatch.setenv("MY_REDIS_PW", "s3cret")
    opts = broker_options(load_config(path))
    assert opts["url"] == "redis://10.0.0.5:6380/2" and opts["password"] == "s3cret"
    assert opts["heartbeat_timeout"] == 5000
    monkeypatch.delenv("MY_REDIS_PW")
    assert "password" not in broker_options(load_config(path))
    # An idle worker looks for dead workers' messages about once per heartbeat timeout.
    assert maintenance_chance(1) == MAINTENANCE_SCALE
    assert maintenance_chance(60) == MAINTENANCE_SCALE // 60
    assert maintenance_chance(10**7) == 1_000  # never below Dramatiq's default


def test_bad_site_file_stops_worker_and_scheduler_with_a_message(tmp_path: Path) -> None:
    _write(tmp_path / "sites" / "a.toml", "[crawl]\nmax_pages = 0\n")
    deploy = _write(
        tmp_path / "deploy.toml", '[schedule]\nbackend = "dramatiq"\nsites = ["sites/*.toml"]\n'
    )
    for cmd in ("worker", "schedule"):
        done = subprocess.run(
            [sys.executable, "-m", "crawler.app.cli", cmd, "--config", str(deploy)],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 2, (cmd, done.stderr)
        assert "a.toml: crawl.max_pages" in done.stderr and "Traceback" not in done.stderr
