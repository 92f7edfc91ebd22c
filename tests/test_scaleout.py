"""Scale-out (issue 19): Dramatiq workers over a real Redis, the history in SQLite or a real
PostgreSQL, three fixture municipalities on 127.0.0.x, real worker processes.

The integration test drives the run with gates, not time: a site's slow page is held by
the fixture server (``tests.watch_site.GatedSite``) until the test opens its gate, so an
audit is known to be mid-crawl when the server has seen the request, and a worker is
SIGKILLed exactly then. Every wait is a bounded poll of the history, the servers or the
workers' logs; nothing asserts on elapsed time.
"""

from __future__ import annotations

import collections
import datetime as dt
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.config import load_config
from tests.redis_server import RedisServer, redis_server
from tests.smtp_server import SmtpTestServer
from tests.watch_site import ED, KARIN, WEBB, GatedSite, cli_env, wait_for

pytestmark = pytest.mark.scaleout

SITES = {"kommun-a": "127.0.0.2", "kommun-b": "127.0.0.3", "kommun-c": "127.0.0.4"}


@pytest.fixture(scope="session")
def redis() -> Iterator[RedisServer]:
    with redis_server() as server:
        yield server


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def history_table(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The ``[history]`` table of the deployment: a SQLite file or a PostgreSQL database."""
    if request.param == "sqlite":
        return f'db = "{tmp_path / "var" / "history.db"}"'
    return f'url = "{request.getfixturevalue("pg_url")}"'


@pytest.fixture
def sites() -> Iterator[dict[str, GatedSite]]:
    servers = {sid: GatedSite(host) for sid, host in SITES.items()}
    for s in servers.values():
        s.__enter__()
    try:
        yield servers
    finally:
        for s in servers.values():
            s.__exit__(None, None, None)


@pytest.fixture
def smtp(tmp_path: Path) -> Iterator[SmtpTestServer]:
    with SmtpTestServer(tmp_path) as server:
        yield server


def write_deployment(
    tmp: Path,
    sites: dict[str, GatedSite],
    *,
    history: str,
    redis: RedisServer,
    smtp: SmtpTestServer | None,
    name: str = "deploy.toml",
    extra: str = "",
) -> Path:
    """A deployment config and one site file per site (``sites/<id>.toml``)."""
    site_dir = tmp / "sites"
    site_dir.mkdir(exist_ok=True)
    for sid, site in sites.items():
        base = site.server.base_url
        (site_dir / f"{sid}.toml").write_text(
            f"""[site]
name = "{sid}"
start_urls = ["{site.start_url}"]

[crawl]
user_agent = "sw-{sid}"

[report]
out_dir = "{tmp / "out" / sid}"

[[owners]]
match = ["{base}/sv/"]
name = "Karin"
emails = ["{KARIN}"]

[[owners]]
match = ["{base}/en/"]
name = "Ed"
emails = ["{ED}"]
language = "en"
""",
            encoding="utf-8",
        )
    smtp_table = (
        f'[email.smtp]\nhost = "{smtp.host}"\nport = {smtp.port}\nsecurity = "none"\n'
        if smtp
        else ""
    )
    path = tmp / name
    path.write_text(
        f"""[schedule]
backend = "dramatiq"
sites = ["sites/*.toml"]
{extra}

[worker]
redis_url = "{redis.url()}"
queue = "q{os.getpid()}x{abs(hash(str(tmp))) % 10**8}"
heartbeat_timeout = 3
busy_delay = 1

[crawl]
timeout = 120
retries = 0
check_external = false

[report]
formats = ["json"]

[history]
{history}

[email]
from_addr = "sitewatch@kommun.example"
fallback_to = "{WEBB}"
outbox = "{tmp / "outbox"}"
send_all_clear = true

{smtp_table}""",
        encoding="utf-8",
    )
    return path


class Worker:
    """``sitewatch worker --config FILE`` as a process of its own, its log in a file."""

    def __init__(self, name: str, config: Path, tmp: Path) -> None:
        self.name = name
        self.log_path = tmp / f"{name}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "crawler.app.cli", "worker", "--config", str(config)],
            cwd=tmp,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def audits(self) -> list[tuple[str, str]]:
        """(site, "started"/"finished") in the order this worker logged them."""
        return re.findall(r"sitewatch\.worker: (\S+) \S+: audit (started|finished)", self.log())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


def store_for(config: Path, site: str | None = None):  # -> Store
    from crawler.app.sites import load_site
    from crawler.history.runs import open_store

    cfg = load_site(str(config), site) if site else load_config(config)
    return open_store(cfg)


def runs_of(config: Path, site: str) -> list:  # RunRow
    with store_for(config) as store:
        return store.runs(site, limit=20)


def finding_keys(config: Path, site: str, run_id: int) -> set[tuple[str, str, str]]:
    with store_for(config) as store:
        return {f.key for f in store.findings(run_id)}


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def running_audit_pid(tmp_db_config: Path, site: str) -> int | None:
    """The pid of the process that owns ``site``'s running run (read as an admin would)."""
    from sqlalchemy import text

    with store_for(tmp_db_config) as store, store.engine.connect() as conn:
        row = conn.execute(
            text("SELECT owner_pid FROM runs WHERE site = :s AND status = 'running'"), {"s": site}
        ).first()
    return None if row is None or row[0] is None else int(row[0])


def baseline(tmp: Path, sites: dict[str, GatedSite], redis: RedisServer) -> dict[str, set]:
    """The single-machine audit of each site: plain ``sitewatch audit`` on a SQLite history."""
    single = write_deployment(
        tmp,
        sites,
        history=f'db = "{tmp / "single.db"}"',
        redis=redis,
        smtp=None,
        name="single.toml",
    )
    keys = {}
    for sid in sites:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "crawler.app.cli",
                "audit",
                "--config",
                str(single),
                "--site",
                sid,
            ],
            cwd=tmp,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode in (0, 1), done.stderr
        (run,) = runs_of(single, sid)
        assert run.status == "complete"
        keys[sid] = finding_keys(single, sid, run.id)
        assert keys[sid], "the fixture sites have findings (broken links)"
    return keys


def enqueue(config: Path, period: str) -> tuple[list[str], object]:
    from crawler.worker.actor import declare
    from crawler.worker.broker import make_broker
    from crawler.worker.enqueue import enqueue_period

    cfg = load_config(config)
    actor = declare(make_broker(cfg), str(config), cfg)
    with store_for(config) as store:
        sent = enqueue_period(str(config), period, lambda s, p: actor.send(s, p), store)
        again = enqueue_period(str(config), period, lambda s, p: actor.send(s, p), store)
    assert again == [], "claim_period makes the enqueue idempotent"
    return sent, actor


def test_two_workers_three_sites_a_duplicate_and_a_killed_worker(
    tmp_path: Path,
    sites: dict[str, GatedSite],
    redis: RedisServer,
    smtp: SmtpTestServer,
    history_table: str,
) -> None:
    a, b, c = sorted(sites)
    expected = baseline(tmp_path, sites, redis)
    config = write_deployment(tmp_path, sites, history=history_table, redis=redis, smtp=smtp)
    gate_a, gate_c = sites[a].gate(f"sw-{a}"), sites[c].gate(f"sw-{c}")  # both closed
    seen_a, seen_c = sites[a].arrived(f"sw-{a}"), sites[c].arrived(f"sw-{c}")  # the baseline's
    period = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat(timespec="seconds")
    sent, actor = enqueue(config, period)
    assert sent == [a, b, c]
    actor.send(a, period)  # the fourth message: a duplicate of the first
    workers: list[Worker] = []
    try:
        w1 = Worker("w1", config, tmp_path)
        workers.append(w1)
        wait_for(lambda: sites[a].arrived(f"sw-{a}") > seen_a, what="w1 auditing a, mid-crawl")
        w2 = Worker("w2", config, tmp_path)
        workers.append(w2)
        wait_for(lambda: sites[c].arrived(f"sw-{c}") > seen_c, what="w2 auditing c after b")
        assert w2.audits()[:3] == [(b, "started"), (b, "finished"), (c, "started")]
        assert w1.audits() == [(a, "started")]
        killed = running_audit_pid(config, c)
        assert killed is not None
        w2.proc.send_signal(signal.SIGKILL)  # mid-crawl of c
        w2.proc.wait()
        wait_for(lambda: not pid_alive(killed), what="c's audit process to die with its worker")
        gate_c.set()
        w3 = Worker("w3", config, tmp_path)  # what systemd's Restart= would do
        workers.append(w3)
        wait_for(lambda: f"{a} {period}: busy (site '{a}'" in w3.log(), what="the duplicate of a")
        wait_for(
            lambda: [r.status for r in runs_of(config, c)] == ["complete", "crashed"],
            seconds=120,
            what="c redelivered and audited",
        )
        gate_a.set()
        wait_for(
            lambda: any(f"{a} {period}: already audited" in w.log() for w in (w1, w3)),
            seconds=120,
            what="the duplicate dropped once a's period was done",
        )
        wait_for(lambda: _all_sent(config, sites), seconds=120, what="every email sent")
    finally:
        gate_a.set()
        gate_c.set()
        for w in workers:
            w.stop()
    logs = "\n".join(w.log() for w in workers)
    assert "Traceback" not in logs, logs[-3000:]
    # Both workers did work; w2 ran two audits back to back; c was finished by w3.
    assert w1.audits() == [(a, "started"), (a, "finished")]
    assert (c, "started") in w3.audits() and (c, "finished") in w3.audits()
    # The duplicate never ran: a has one run, audited once (so never overlapping its twin).
    assert [r.status for r in runs_of(config, a)] == ["complete"]
    assert sum(w.audits().count((a, "started")) for w in workers) == 1
    assert [r.status for r in runs_of(config, b)] == ["complete"]
    # The killed run stays crashed (never complete, never marking anything fixed).
    (_, crashed_c) = runs_of(config, c)
    assert crashed_c.status == "crashed" and crashed_c.changes.get("fixed", 0) == 0
    # The findings equal the single-machine audit's.
    for sid in sites:
        (run,) = [r for r in runs_of(config, sid) if r.status == "complete"]
        assert finding_keys(config, sid, run.id) == expected[sid], sid
    # Emails: exactly once per (run, recipient), for each site's complete run.
    got = collections.Counter(
        (m.message["X-Sitewatch-Run"], rcpt) for m in smtp.handler.messages for rcpt in m.rcpt_tos
    )
    assert got and set(got.values()) == {1}, got
    complete = {str(r.id) for sid in sites for r in runs_of(config, sid) if r.complete}
    assert {run for run, _ in got} == complete


def _all_sent(config: Path, sites: dict[str, GatedSite]) -> bool:
    with store_for(config) as store:
        for sid in sites:
            runs = [r for r in store.runs(sid, limit=20) if r.complete]
            if not runs or set(runs[0].deliveries) != {"sent"}:
                return False
    return True


def _queued(config: Path, redis: RedisServer) -> list[tuple[str, str]]:
    """(site, period) of every message waiting in the deployment's queue."""
    import json

    q = load_config(config).worker.queue
    raw = redis.client().hgetall(f"sitewatch-{q}:{q}.msgs")  # type: ignore[attr-defined]
    return sorted(tuple(json.loads(v)["args"]) for v in raw.values())


def _claims(config: Path) -> list[tuple[str, str]]:
    from sqlalchemy import text

    with store_for(config) as store, store.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text("SELECT site, period FROM claims")))


def test_one_scheduler_enqueues_each_site_once_per_period(
    tmp_path: Path, sites: dict[str, GatedSite], redis: RedisServer, history_table: str
) -> None:
    every_minute = 'day_of_week = "mon-sun"\nhour = "*"\nminute = "*"'
    config = write_deployment(
        tmp_path, sites, history=history_table, redis=redis, smtp=None, extra=every_minute
    )

    def scheduler(name: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = tmp_path / f"{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "crawler.app.cli", "schedule", "--config", str(config)],
                cwd=tmp_path,
                env=cli_env(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        return proc, log

    first, first_log = scheduler("s1")
    try:
        wait_for(lambda: "scheduler started" in first_log.read_text(), what="the scheduler")
        queued = _queued(config, redis)
        # The catch-up at start: the current minute's period, once per site.
        assert sorted({s for s, _ in queued}) == sorted(sites)
        second, second_log = scheduler("s2")
        assert second.wait(timeout=120) == 0
        assert "another scheduler is running" in second_log.read_text()
        assert "enqueued" not in second_log.read_text()
        first.send_signal(signal.SIGTERM)
        assert first.wait(timeout=120) == 0
        # Started again: the periods already claimed are not enqueued again.
        third, third_log = scheduler("s3")
        wait_for(lambda: "scheduler started" in third_log.read_text(), what="the restart")
        third.send_signal(signal.SIGTERM)
        assert third.wait(timeout=120) == 0
    finally:
        for proc in (first,):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    queued = _queued(config, redis)
    assert len(queued) == len(set(queued)), "one message per site and period"
    assert queued == _claims(config)
    assert "Traceback" not in first_log.read_text() + third_log.read_text()


def test_two_sites_on_one_host_are_not_crawled_at_once(
    tmp_path: Path, redis: RedisServer, smtp: SmtpTestServer
) -> None:
    """Per-host politeness across workers: while one worker crawls a site, the host's lock
    (``host:NAME``) keeps another worker from crawling a second site on that host (its
    message is looked at again later)."""
    history = f'db = "{tmp_path / "var" / "history.db"}"'
    config = write_deployment(tmp_path, {}, history=history, redis=redis, smtp=smtp)
    held, other = "a-sv", "b-en"
    with GatedSite("127.0.0.5") as site:
        for sid, section in ((held, "sv"), (other, "en")):
            start = site.server.url(f"/{section}/index.html")
            (tmp_path / "sites" / f"{sid}.toml").write_text(
                f'[site]\nname = "{sid}"\nstart_urls = ["{start}"]\n'
                f'[crawl]\nuser_agent = "sw-{sid}"\n[report]\nout_dir = "{tmp_path / sid}"\n',
                encoding="utf-8",
            )
        gate = site.gate(f"sw-{held}")
        period = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat(timespec="seconds")
        assert enqueue(config, period)[0] == [held, other]
        workers: list[Worker] = []
        try:
            workers.append(Worker("w1", config, tmp_path))
            wait_for(lambda: site.arrived(f"sw-{held}") >= 1, what="w1 crawling a-sv, held")
            workers.append(Worker("w2", config, tmp_path))
            wait_for(
                lambda: f"{other} {period}: busy (site 'host:127.0.0.5'" in workers[1].log(),
                what="w2 waiting for the host",
            )
            gate.set()
            wait_for(
                lambda: (
                    [r.status for s in (held, other) for r in runs_of(config, s)]
                    == ["complete", "complete"]
                ),
                seconds=120,
                what="both sites audited",
            )
        finally:
            gate.set()
            for w in workers:
                w.stop()
    (first,) = runs_of(config, held)
    (second,) = runs_of(config, other)
    assert first.finished_at is not None and first.finished_at <= second.started_at


def test_an_audit_over_the_time_limit_is_stopped_and_recorded_crashed(
    tmp_path: Path, redis: RedisServer
) -> None:
    history = f'db = "{tmp_path / "var" / "history.db"}"'
    with GatedSite("127.0.0.6") as site:
        sites = {"held": site}
        config = write_deployment(tmp_path, sites, history=history, redis=redis, smtp=None)
        # Long enough for the audit to begin its run and reach the held page, which it then
        # never gets past.
        text = config.read_text().replace("heartbeat_timeout = 3", "time_limit = 15")
        config.write_text(text, encoding="utf-8")
        site.gate("sw-held")  # closed for good: the crawl cannot finish
        period = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat(timespec="seconds")
        assert enqueue(config, period)[0] == ["held"]
        worker = Worker("w", config, tmp_path)
        try:
            wait_for(lambda: site.arrived("sw-held") >= 1, what="the audit at the held page")
            assert "audit failed" not in worker.log()
            wait_for(
                lambda: (
                    "held " + period + ": audit failed (stopped after worker.time_limit)"
                    in worker.log()
                ),
                what="the time limit",
            )
            wait_for(lambda: "send exit" in worker.log(), what="the send after it")
        finally:
            site.gate("sw-held").set()
            worker.stop()
    assert [r.status for r in runs_of(config, "held")] == ["crashed"]
    assert worker.audits() == [("held", "started"), ("held", "finished")]  # not retried


def test_worker_processes_are_supervised_and_stop_on_sigterm(
    tmp_path: Path, redis: RedisServer
) -> None:
    history = f'db = "{tmp_path / "h.db"}"'
    config = write_deployment(tmp_path, {}, history=history, redis=redis, smtp=None)
    (tmp_path / "sites" / "x.toml").write_text('[site]\nstart_urls = ["http://127.0.0.9/"]\n')
    log = tmp_path / "workers.log"
    cmd = [sys.executable, "-m", "crawler.app.cli", "worker", "--config", str(config)]
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--processes", "2"],
            cwd=tmp_path,
            env=cli_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = lambda: re.findall(r"worker ready: .* pid (\d+)", log.read_text())  # noqa: E731
        wait_for(lambda: len(ready()) == 2, what="two worker processes")
        first, second = (int(p) for p in ready())
        assert first != second and proc.pid not in (first, second)
        os.kill(first, signal.SIGKILL)  # one dies: the supervisor starts another
        wait_for(lambda: len(ready()) == 3, what="a replacement")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    pids = [int(p) for p in ready()]
    assert not any(pid_alive(p) for p in pids)
    assert log.read_text().count("worker stopped") == 2


@pytest.mark.postgres
def test_history_copied_from_sqlite_to_postgresql(tmp_path: Path, pg_url: str) -> None:
    """``sitewatch history --copy-to``: the PostgreSQL history then goes on where the
    SQLite one stopped (the next run compares with the copied one: nothing new)."""
    from tests.watch_site import site_config

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "crawler.app.cli", *args],
            cwd=tmp_path,
            env=cli_env(),
            capture_output=True,
            text=True,
            timeout=300,
        )

    with GatedSite("127.0.0.7") as site:
        base = site.server.base_url
        sqlite_cfg = site_config(
            tmp_path / "old.toml",
            start_url=site.start_url,
            base_url=base,
            db=tmp_path / "old.db",
            out=tmp_path / "out",
        )
        assert cli("audit", "--config", str(sqlite_cfg)).returncode == 1
        assert cli("send", "--config", str(sqlite_cfg)).returncode == 0
        copied = cli("history", "--config", str(sqlite_cfg), "--copy-to", pg_url)
        assert copied.returncode == 0, copied.stderr
        assert re.search(r"runs +1 rows", copied.stdout) and "password" not in copied.stdout
        again = cli("history", "--config", str(sqlite_cfg), "--copy-to", pg_url)
        assert again.returncode == 2 and "already has runs" in again.stderr
        pg_cfg = tmp_path / "new.toml"
        pg_cfg.write_text(
            sqlite_cfg.read_text().replace(f'db = "{tmp_path / "old.db"}"', f'url = "{pg_url}"')
        )
        (old,) = runs_of(sqlite_cfg, "kommun")
        (copy,) = runs_of(pg_cfg, "kommun")
        assert (copy.id, copy.status, copy.counts, copy.deliveries) == (
            old.id,
            old.status,
            old.counts,
            old.deliveries,
        )
        assert finding_keys(pg_cfg, "kommun", copy.id) == finding_keys(sqlite_cfg, "kommun", old.id)
        assert cli("audit", "--config", str(pg_cfg)).returncode == 1
    new, _ = runs_of(pg_cfg, "kommun")
    assert new.id == old.id + 1 and new.changes.get("new", 0) == 0, new
    assert new.changes.get("still_open", 0) == sum(old.counts.values())


def test_a_stopped_worker_stops_its_audit(tmp_path: Path, redis: RedisServer) -> None:
    """SIGTERM to a worker mid-crawl: the audit is stopped and recorded crashed, no audit
    process is left, the message is retried later, no failure mail, the worker exits 0."""
    history = f'db = "{tmp_path / "var" / "history.db"}"'
    with GatedSite("127.0.0.8") as site:
        config = write_deployment(
            tmp_path, {"stopped": site}, history=history, redis=redis, smtp=None
        )
        site.gate("sw-stopped")
        period = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat(timespec="seconds")
        assert enqueue(config, period)[0] == ["stopped"]
        worker = Worker("w", config, tmp_path)
        try:
            wait_for(lambda: site.arrived("sw-stopped") >= 1, what="the audit mid-crawl")
            audit = running_audit_pid(config, "stopped")
            assert audit is not None
            worker.proc.send_signal(signal.SIGTERM)
            assert worker.proc.wait(timeout=120) == 0
        finally:
            site.gate("sw-stopped").set()
            worker.stop()
    assert not pid_alive(audit)
    assert [r.status for r in runs_of(config, "stopped")] == ["crashed"]
    log = worker.log()
    assert "audit stopped with its worker; the message is retried" in log, log[-3000:]
    assert "send exit" not in log and not (tmp_path / "outbox").exists()  # no failure mail
    # The message went back to Redis (Dramatiq's retry, delayed): a later worker audits it.
    q = load_config(config).worker.queue
    assert redis.client().hlen(f"sitewatch-{q}:{q}.DQ.msgs") == 1  # type: ignore[attr-defined]


def test_the_redis_password_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from crawler.worker.actor import declare
    from crawler.worker.broker import make_broker

    with redis_server("--requirepass", "s3cret-pw") as server:
        path = tmp_path / "w.toml"
        path.write_text(f'[worker]\nredis_url = "{server.url()}"\nqueue = "pw"\n')
        cfg = load_config(path)
        monkeypatch.setenv("SITEWATCH_REDIS_PASSWORD", "s3cret-pw")
        declare(make_broker(cfg), str(path), cfg).send("site", "2026-12-07T06:00:00+00:00")
        import redis as redis_client

        client = redis_client.Redis(host="127.0.0.1", port=server.port, password="s3cret-pw")
        assert client.hlen("sitewatch-pw:pw.msgs") == 1
        monkeypatch.delenv("SITEWATCH_REDIS_PASSWORD")
        with pytest.raises(redis_client.AuthenticationError):
            declare(make_broker(cfg), str(path), cfg).send("site", "2026-12-07T06:00:00+00:00")
