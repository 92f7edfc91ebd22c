"""Delivery faults through the real ``sitewatch send --config F`` (a child process).

One real audit of the fixture site (``tests/watch_site.py``) makes a run with three
recipients (Karin, Ed and the fallback address); each test gets its own copy of that
history and a mail server that misbehaves in one way: nothing listening, a 4xx, a 5xx for
one recipient, no STARTTLS, TLS against a plain server, an untrusted certificate, implicit
TLS where STARTTLS was configured, wrong credentials. Then the server (or the config) is
put right and ``send`` runs again: in every case each owner ends up with exactly one email
for the run, and a further ``send`` sends nothing.

Exit codes of ``send``: 0 everything delivered (or already), 1 some deliveries failed or
are unconfirmed (the next ``send`` retries the failures), 2 configuration error (nothing
is attempted). Failures are reported on stderr, stored on the delivery row and in the
delivery log, and listed by ``sitewatch history``. The existing library-level tests
(``tests/test_delivery.py``: backoff, lost reply after DATA, crash between sends, outbox)
are not repeated here.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from crawler.history import Store
from tests.cli_runner import CliResult, sitewatch
from tests.raw_smtp import RawSmtpServer, Script, closed_port
from tests.smtp_server import Handler, SmtpTestServer
from tests.watch_site import AS_OF, ED, KARIN, WEBB, GatedSite, site_config, start_cli

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

# Non-ASCII on purpose: smtplib sent AUTH as ASCII and crashed on "ä" (fixed: UTF-8).
USER, PASSWORD = "sitewatch", "Rätt-lösen-2026"
PW_ENV = "SW_FAULTS_SMTP_PW"
ALL = {KARIN: 1, ED: 1, WEBB: 1}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatedSite, Path]]:
    """The fixture site and a history holding one finished run (run 1) of it."""
    base = tmp_path_factory.mktemp("delivery-faults")
    with GatedSite() as site:
        cfg = site_config(
            base / "audit.toml",
            start_url=site.start_url,
            base_url=site.server.base_url,
            db=base / "var" / "sw.db",
            out=base / "out",
        )
        r = sitewatch("audit", "--config", str(cfg), "--as-of", AS_OF, cwd=base, timeout=180)
        assert r.code == 1 and "history: run 1 — 2 new" in r.stdout, r.stdout + r.stderr
        yield site, base / "var" / "sw.db"


class Case:
    """One test's copy of the history and its config (rewritten as the fault is fixed)."""

    def __init__(self, tmp_path: Path, world: tuple[GatedSite, Path]) -> None:
        self.dir = tmp_path
        self.site, template = world
        self.db = tmp_path / "var" / "sw.db"
        self.db.parent.mkdir(parents=True)
        src, dst = sqlite3.connect(template), sqlite3.connect(self.db)
        src.backup(dst)
        src.close()
        dst.close()
        self.cfg = tmp_path / "site.toml"

    def smtp(self, body: str) -> Case:
        site_config(
            self.cfg,
            start_url=self.site.start_url,
            base_url=self.site.server.base_url,
            db=self.db,
            out=self.dir / "out",
            smtp=body,
        )
        return self

    def send(self, *args: str, password: str | None = PASSWORD) -> CliResult:
        env = {PW_ENV: password} if password is not None else {}
        return sitewatch("send", "--config", str(self.cfg), *args, cwd=self.dir, env=env)

    def history(self) -> CliResult:
        return sitewatch("history", "--config", str(self.cfg), cwd=self.dir)

    def states(self) -> dict[str, str]:
        with Store(self.db) as s:
            return {d.recipient: d.state for d in s.deliveries(1)}

    def log(self, recipient: str) -> list[tuple[str, str]]:
        with Store(self.db) as s:
            return [(e.state, e.detail) for e in reversed(s.delivery_log(1, recipient))]


def plain(port: int, **extra: object) -> str:
    lines = ['host = "127.0.0.1"', f"port = {port}", 'security = "none"', "retries = 0"]
    lines += [f"{k} = {v!r}".replace("'", '"') for k, v in extra.items()]
    return "\n".join(lines)


def tls(
    port: int,
    *,
    security: str = "starttls",
    ca_file: Path | None,
    user: str = USER,
    timeout: float = 10,
) -> str:
    lines = [
        'host = "127.0.0.1"',
        f"port = {port}",
        f'security = "{security}"',
        f'user = "{user}"',
        f'password_env = "{PW_ENV}"',
        "retries = 0",
        f"timeout = {timeout}",
    ]
    if ca_file is not None:
        lines.append(f'ca_file = "{ca_file}"')
    return "\n".join(lines)


def assert_delivered_once_then_idle(case: Case, server: SmtpTestServer, **send_kw: object) -> None:
    """After the fix: every owner has exactly one email; another send sends nothing."""
    done = case.send(**send_kw)  # type: ignore[arg-type]
    assert done.code == 0, done.stdout + done.stderr
    assert server.handler.received_by() == ALL
    assert case.states() == {KARIN: "sent", ED: "sent", WEBB: "sent"}
    idle = case.send(**send_kw)  # type: ignore[arg-type]
    assert idle.code == 0 and "0 sent" in idle.stdout and "3 already sent" in idle.stdout
    assert server.handler.received_by() == ALL
    ids = [m.message["Message-ID"] for m in server.messages]
    assert len(ids) == len(set(ids)) == 3


# --- the faults --------------------------------------------------------------------------


def test_connection_refused_then_server_up(tmp_path: Path, world) -> None:
    case = Case(tmp_path, world)
    server = SmtpTestServer(tmp_path / "certs")  # built (port chosen) but not listening yet
    case.smtp(plain(server.port))
    first = case.send()
    assert first.code == 1
    assert f"failed: {KARIN}: connection to 127.0.0.1:{server.port} failed" in first.stderr
    assert "refused" in first.stderr.lower()
    assert f"failed: {ED}: not attempted" in first.stderr  # the run stops at the first
    assert case.states() == {KARIN: "failed", ED: "failed", WEBB: "failed"}
    hist = case.history()
    assert hist.code == 0 and "3 failed" in hist.stdout
    assert f"{KARIN}: fatal: connection to 127.0.0.1:{server.port} failed" in hist.stdout
    with server:
        assert_delivered_once_then_idle(case, server)


def test_4xx_for_one_recipient_is_retried_by_the_next_send(tmp_path: Path, world) -> None:
    case = Case(tmp_path, world)
    with SmtpTestServer(tmp_path / "certs", handler=Handler(tempfail={ED: 1})) as server:
        case.smtp(plain(server.port))
        first = case.send()
        assert first.code == 1, first.stdout + first.stderr
        assert "run 1: 2 sent, 0 already sent, 1 failed" in first.stdout
        assert f"failed: {ED}: recipient refused: 451" in first.stderr
        assert server.handler.received_by() == {KARIN: 1, WEBB: 1}
        assert case.states()[ED] == "failed"
        assert ("failed", "temporary: recipient refused: 451 4.3.0 Try again later") in case.log(ED)
        # the server is fine now: only Ed's email goes out
        second = case.send()
        assert second.code == 0 and "run 1: 1 sent, 2 already sent, 0 failed" in second.stdout
        assert server.handler.received_by() == ALL
        assert_delivered_once_then_idle(case, server)


def test_4xx_greeting_fails_the_run_for_now(tmp_path: Path, world) -> None:
    """A server that answers every connection "421 too busy": nothing sent, retried later."""
    case = Case(tmp_path, world)
    with RawSmtpServer(Script(greeting="421 4.3.2 Too busy, try later")) as busy:
        case.smtp(plain(busy.port))
        first = case.send()
        assert first.code == 1 and "421" in first.stderr, first.stderr
        assert b"MAIL FROM" not in busy.data and busy.messages == []
    assert case.states() == {KARIN: "failed", ED: "failed", WEBB: "failed"}
    with SmtpTestServer(tmp_path / "certs") as server:
        case.smtp(plain(server.port))
        assert_delivered_once_then_idle(case, server)


def test_5xx_for_one_recipient_others_still_get_theirs(tmp_path: Path, world) -> None:
    case = Case(tmp_path, world)
    handler = Handler(reject={ED: "550 5.1.1 <ed@kommun.example>: no such user"})
    with SmtpTestServer(tmp_path / "certs", handler=handler) as server:
        case.smtp(plain(server.port))
        first = case.send()
        assert first.code == 1
        assert "run 1: 2 sent, 0 already sent, 1 failed, 0 unconfirmed" in first.stdout
        assert f"failed: {ED}: recipient refused: 550 5.1.1" in first.stderr
        assert server.handler.received_by() == {KARIN: 1, WEBB: 1}
        assert handler.rcpt_attempts.count(ED) == 1  # a 5xx is not retried within the send
        assert case.states() == {KARIN: "sent", ED: "failed", WEBB: "sent"}
        assert any(s == "failed" and "permanent" in d and "550" in d for s, d in case.log(ED))
        hist = case.history()
        assert hist.code == 0 and "1 failed, 2 sent" in hist.stdout
        assert f"{ED}: permanent: recipient refused: 550 5.1.1" in hist.stdout
        # the mailbox is created: the next send delivers Ed's, and only Ed's
        handler.reject.clear()
        assert_delivered_once_then_idle(case, server)
        assert handler.rcpt_attempts.count(KARIN) == 1


def test_starttls_not_offered_no_plaintext_fallback(tmp_path: Path, world) -> None:
    """The server offers AUTH but no STARTTLS: the client says EHLO and leaves. No AUTH,
    no password, no MAIL FROM ever goes over the plain connection."""
    case = Case(tmp_path, world)
    with RawSmtpServer(Script(extensions=("AUTH PLAIN LOGIN", "8BITMIME"))) as srv:
        case.smtp(tls(srv.port, ca_file=None))
        first = case.send()
        assert first.code == 1 and "does not offer STARTTLS" in first.stderr, first.stderr
        sent = srv.data
    verbs = [ln.split(b" ")[0].upper() for ln in sent.splitlines() if ln]
    assert set(verbs) <= {b"EHLO", b"QUIT"}, sent
    assert b"AUTH" not in sent and b"MAIL" not in sent and PASSWORD.encode() not in sent
    assert case.states() == {KARIN: "failed", ED: "failed", WEBB: "failed"}
    with SmtpTestServer(tmp_path / "certs", tls=True, auth=(USER, PASSWORD)) as server:
        case.smtp(tls(server.port, ca_file=server.cafile))
        assert_delivered_once_then_idle(case, server)


def test_implicit_tls_against_a_plain_server_fails_the_handshake(tmp_path: Path, world) -> None:
    case = Case(tmp_path, world)
    with RawSmtpServer() as srv:
        case.smtp(tls(srv.port, security="ssl", ca_file=None))
        first = case.send()
        assert first.code == 1, first.stdout + first.stderr
        assert f"TLS failed with 127.0.0.1:{srv.port}" in first.stderr
        sent = srv.data
    assert sent.startswith(b"\x16\x03")  # a TLS ClientHello, nothing in plain text
    assert b"EHLO" not in sent and b"MAIL" not in sent and srv.messages == []
    # (aiosmtpd offers AUTH only after STARTTLS, so the implicit-TLS server takes no AUTH)
    with SmtpTestServer(tmp_path / "certs", implicit_tls=True) as server:
        case.smtp(tls(server.port, security="ssl", ca_file=server.cafile, user=""))
        assert_delivered_once_then_idle(case, server)


def test_untrusted_certificate_then_trusted(tmp_path: Path, world) -> None:
    case = Case(tmp_path, world)
    with SmtpTestServer(tmp_path / "certs", tls=True, auth=(USER, PASSWORD)) as server:
        case.smtp(tls(server.port, ca_file=None))  # self-signed, not in the system store
        first = case.send()
        assert first.code == 1 and "CERTIFICATE_VERIFY_FAILED" in first.stderr
        assert server.messages == [] and server.handler.rcpt_attempts == []
        assert case.states() == {KARIN: "failed", ED: "failed", WEBB: "failed"}
        case.smtp(tls(server.port, ca_file=server.cafile))  # the admin trusts its CA
        assert_delivered_once_then_idle(case, server)


def test_starttls_configured_but_server_speaks_implicit_tls(tmp_path: Path, world) -> None:
    """Port 465 with security = "starttls": the client waits for a greeting that never
    comes in plain text; it gives up after the timeout without sending anything."""
    case = Case(tmp_path, world)
    with SmtpTestServer(tmp_path / "certs", implicit_tls=True) as server:
        case.smtp(tls(server.port, ca_file=server.cafile, user="", timeout=2))
        first = case.send()
        assert first.code == 1 and "timed out" in first.stderr, first.stderr
        assert server.messages == [] and server.handler.rcpt_attempts == []
        case.smtp(tls(server.port, security="ssl", ca_file=server.cafile, user=""))
        assert_delivered_once_then_idle(case, server)


def test_wrong_credentials_then_right_ones(tmp_path: Path, world) -> None:
    case = Case(tmp_path, world)
    with SmtpTestServer(tmp_path / "certs", tls=True, auth=(USER, PASSWORD)) as server:
        case.smtp(tls(server.port, ca_file=server.cafile))
        first = case.send(password="fel-lösen")
        assert first.code == 1 and "authentication failed: 535" in first.stderr, first.stderr
        assert server.messages == [] and server.handler.rcpt_attempts == []
        assert case.states() == {KARIN: "failed", ED: "failed", WEBB: "failed"}
        hist = case.history()
        assert "3 failed" in hist.stdout and "authentication failed: 535" in hist.stdout
        assert_delivered_once_then_idle(case, server)


def test_two_sends_at_once_never_duplicate(tmp_path: Path, world) -> None:
    """Two ``send`` processes overlap (cron and an admin): the first is held inside the
    SMTP transaction of Karin's email while the second runs. Nobody gets two emails."""
    case = Case(tmp_path, world)
    handler = Handler(block_on={1})
    with SmtpTestServer(tmp_path / "certs", handler=handler) as server:
        case.smtp(plain(server.port, timeout=120))
        first = start_cli("send", "--config", str(case.cfg), cwd=tmp_path)
        try:
            assert handler.blocked.wait(60), "the first send never reached the server"
            second = case.send()
            # Karin's row belongs to the first send: not re-sent, reported unconfirmed
            assert second.code == 1 and f"unconfirmed (not re-sent): {KARIN}" in second.stderr
            assert "run 1: 2 sent" in second.stdout
        finally:
            handler.release.set()
            out, err = first.communicate(timeout=60)
        assert first.returncode == 0, out + err
        assert "run 1: 1 sent, 2 already sent" in out
        assert server.handler.received_by() == ALL
        assert_delivered_once_then_idle(case, server)


# --- configuration errors: exit 2, nothing attempted -------------------------------------


@pytest.mark.parametrize(
    ("smtp_body", "password", "message"),
    [
        (
            'host = "smtp.kommun.example"\nsecurity = "none"',
            PASSWORD,
            'email.smtp.security = "none" is only allowed for loopback hosts',
        ),
        (
            'host = "127.0.0.1"\nsecurity = "tls-maybe"',
            PASSWORD,
            "email.smtp.security: expected one of",
        ),
        (
            f'host = "127.0.0.1"\nuser = "{USER}"\npassword_env = "{PW_ENV}"',
            None,
            f"the environment variable {PW_ENV} is empty",
        ),
        (
            'host = "127.0.0.1"\nsecurity = "ssl"\nca_file = "/nonexistent/ca.pem"',
            PASSWORD,
            "email.smtp.ca_file",
        ),
        ('host = "127.0.0.1"\nport = 0', PASSWORD, "email.smtp.port"),
    ],
    ids=["none-not-loopback", "unknown-security", "no-password", "missing-ca-file", "port-0"],
)
def test_config_errors_exit_2_and_send_nothing(
    tmp_path: Path, world, smtp_body: str, password: str | None, message: str
) -> None:
    case = Case(tmp_path, world).smtp(smtp_body)
    result = case.send(password=password)
    assert result.code == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert case.states() == {}  # no delivery was even registered


def test_unknown_or_unfinished_run_is_a_usage_error(tmp_path: Path, world) -> None:
    case = Case(tmp_path, world).smtp(plain(closed_port()))
    result = case.send("--run", "99")
    assert result.code == 2 and "no run 99" in result.stderr
    assert case.states() == {}


def test_exit_codes_are_documented() -> None:
    from tests.cli_runner import ROOT

    doc = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
    for line in (
        "| 0 | every email of the run delivered (now or earlier)",
        "| 1 | some emails failed or are unconfirmed",
        "| 2 | configuration or usage error",
    ):
        assert line in doc, line
