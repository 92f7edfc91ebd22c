"""Delivery against a real aiosmtpd server and real SQLite: TLS, AUTH, failures, idempotency."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from checks.models import Check, Finding, Page, Report, RunInfo, Severity
from crawler.app.email_setup import setup_from_config
from crawler.config import load_config
from crawler.history import Store
from reports.delivery import (
    EmailSetup,
    Outbox,
    SmtpDelivery,
    SmtpSettings,
    deliver_run,
    make_transport,
    messages_for_run,
)
from tests.smtp_server import Handler, SmtpTestServer

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ROOT = Path(__file__).resolve().parent.parent
SITE = "https://www.umea.se"
T0 = dt.datetime(2024, 11, 25, 6, 0, tzinfo=dt.UTC)
USER, PASSWORD = "sitewatch", "s3cret-Pa55word"
ANNA, BEN, WEBB = "anna@umea.se", "ben@umea.se", "webb@umea.se"

CONFIG = {
    "site": {"name": "umea.se/internationellt", "start_urls": [f"{SITE}/internationellt/"]},
    "owners": [
        {
            "match": [f"{SITE}/internationellt/"],
            "name": "Anna Andersson",
            "emails": [ANNA],
            "language": "sv",
            "edit_url": "https://cms.umea.se/edit?url={url}",
        },
        {
            "match": [f"{SITE}/internationellt/english/"],
            "name": "Ben Brown",
            "emails": [BEN],
            "language": "en",
        },
    ],
    "email": {"fallback_to": WEBB, "from_addr": "sitewatch@umea.se"},
}


def finding(page: str, target: str) -> Finding:
    return Finding(Check.BROKEN_LINK, Severity.ERROR, page, target, "http_404", link_text="Läs")


def audit(store: Store, at: dt.datetime, findings: list[Finding]) -> int:
    rid = store.begin_run("umea", at, [f"{SITE}/internationellt/"])
    pages = tuple(Page(f.page, 200, f"Titel {f.page[-1]}") for f in findings)
    info = RunInfo(
        started_at=at,
        finished_at=at,
        as_of=at.date(),
        start_urls=(f"{SITE}/internationellt/",),
        scopes=(),
        complete=True,
        pages_crawled=len(pages),
        links_checked=len(findings),
        site="umea",
    )
    store.finish_run(rid, Report(info, pages, (), tuple(findings)))
    return rid


@pytest.fixture
def setup() -> EmailSetup:
    return setup_from_config(load_config(None, CONFIG))


@pytest.fixture
def store(history_url: str) -> Iterator[Store]:
    """The history on SQLite, then on PostgreSQL (``history_url``)."""
    with Store(history_url) as s:
        yield s


@pytest.fixture
def run_msgs(store: Store, setup: EmailSetup) -> tuple[int, dict[str, EmailMessage]]:
    rid = audit(
        store,
        T0,
        [
            finding(f"{SITE}/internationellt/a", "https://ext.se/1"),
            finding(f"{SITE}/internationellt/english/b", "https://ext.se/2"),
            finding(f"{SITE}/kontakt/c", "https://ext.se/3"),
        ],
    )
    msgs = messages_for_run(store, rid, setup)
    assert list(msgs) == [ANNA, BEN, WEBB]
    return rid, msgs


def smtp(srv: SmtpTestServer, **kw: object) -> SmtpSettings:
    base: dict[str, object] = {
        "host": srv.host,
        "port": srv.port,
        "security": "starttls",
        "user": USER,
        "ca_file": str(srv.cafile),
        "timeout": 10.0,
        "retries": 2,
        "backoff": 0.01,
    }
    base.update(kw)
    return SmtpSettings(**base)  # type: ignore[arg-type]


def test_starttls_auth_one_message_per_owner(tmp_path, store, run_msgs) -> None:
    rid, msgs = run_msgs
    with SmtpTestServer(tmp_path, tls=True, auth=(USER, PASSWORD)) as srv:
        result = deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv), PASSWORD))
        assert result.ok and result.sent == [ANNA, BEN, WEBB]
        assert srv.handler.received_by() == {ANNA: 1, BEN: 1, WEBB: 1}
        got = {m.rcpt_tos[0]: m.message for m in srv.messages}
    assert all(m.mail_from == "sitewatch@umea.se" for m in srv.messages)
    for rcpt, m in got.items():
        assert m["To"].addresses[0].addr_spec == rcpt
        assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
    anna = got[ANNA].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    ben = got[BEN].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert got[ANNA]["Subject"] == "1 nytt fel – umea.se/internationellt v.48"
    assert got[BEN]["Subject"] == "1 new problem – umea.se/internationellt week 48"
    assert "https://ext.se/1" in anna and "https://ext.se/2" not in anna
    assert "Sidan som länken pekar på finns inte (404)" in anna and "Redigera sidan" in anna
    assert "https://ext.se/2" in ben and "does not exist (404)" in ben
    assert "https://ext.se/3" in got[WEBB].get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert [d.state for d in store.deliveries(rid)] == ["sent", "sent", "sent"]
    assert store.delivery(rid, ANNA).message_id == got[ANNA]["Message-ID"]  # type: ignore[union-attr]


def test_implicit_tls(tmp_path, store, run_msgs) -> None:
    rid, msgs = run_msgs
    with SmtpTestServer(tmp_path, implicit_tls=True) as srv:
        t = SmtpDelivery(smtp(srv, security="ssl", user=""))
        assert deliver_run(store, rid, msgs, t).sent == [ANNA, BEN, WEBB]
        assert len(srv.messages) == 3


def test_deliver_twice_sends_once(tmp_path, store, run_msgs, setup) -> None:
    rid, msgs = run_msgs
    with SmtpTestServer(tmp_path, tls=True, auth=(USER, PASSWORD)) as srv:
        deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv), PASSWORD))
        again = messages_for_run(store, rid, setup)  # rebuilt: same recipients and IDs
        assert {k: m["Message-ID"] for k, m in again.items()} == {
            k: m["Message-ID"] for k, m in msgs.items()
        }
        second = deliver_run(store, rid, again, SmtpDelivery(smtp(srv), PASSWORD))
        assert second.sent == [] and second.already_sent == [ANNA, BEN, WEBB]
        assert srv.handler.received_by() == {ANNA: 1, BEN: 1, WEBB: 1}


def test_wrong_password_is_recorded_and_retried_later(tmp_path, store, run_msgs) -> None:
    rid, msgs = run_msgs
    with SmtpTestServer(tmp_path, tls=True, auth=(USER, PASSWORD)) as srv:
        wrong = "wrong-" + PASSWORD
        result = deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv), wrong))
        assert "authentication failed: 535" in result.fatal
        assert set(result.failed) == {ANNA, BEN, WEBB} and srv.messages == []
        rows = store.deliveries(rid)
        assert [d.state for d in rows] == ["failed"] * 3
        assert "535" in rows[0].last_error and "not attempted" in rows[1].last_error
        logged = " ".join(e.detail for e in store.delivery_log(rid))
        assert wrong not in logged and wrong not in repr(SmtpDelivery(smtp(srv), wrong))
        # the next send (right password) retries the failed ones
        result = deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv), PASSWORD))
        assert result.sent == [ANNA, BEN, WEBB]
        assert srv.handler.received_by() == {ANNA: 1, BEN: 1, WEBB: 1}


def test_untrusted_certificate_fails_without_plaintext_fallback(tmp_path, store, run_msgs):
    rid, msgs = run_msgs
    with SmtpTestServer(tmp_path, tls=True, auth=(USER, PASSWORD)) as srv:
        result = deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv, ca_file=""), PASSWORD))
        assert "TLS failed" in result.fatal and "CERTIFICATE_VERIFY_FAILED" in result.fatal
        assert srv.messages == [] and srv.handler.rcpt_attempts == []
        assert [d.state for d in store.deliveries(rid)] == ["failed"] * 3


def test_server_without_starttls_is_refused(tmp_path, store, run_msgs) -> None:
    rid, msgs = run_msgs
    with SmtpTestServer(tmp_path) as srv:  # plain server, no STARTTLS offered
        result = deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv, user="")))
        assert "does not offer STARTTLS" in result.fatal and srv.messages == []


def test_5xx_for_one_recipient_others_still_receive(tmp_path, store, run_msgs) -> None:
    rid, msgs = run_msgs
    handler = Handler(reject={BEN: "550 5.1.1 No such user"})
    with SmtpTestServer(tmp_path, tls=True, auth=(USER, PASSWORD), handler=handler) as srv:
        result = deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv), PASSWORD))
        assert result.sent == [ANNA, WEBB] and not result.fatal
        assert "550" in result.failed[BEN]
        assert handler.rcpt_attempts.count(BEN) == 1  # a 5xx is not retried
        assert srv.handler.received_by() == {ANNA: 1, WEBB: 1}
        d = store.delivery(rid, BEN)
        assert d is not None and d.state == "failed" and "permanent" in d.last_error


def test_4xx_is_retried_with_backoff(tmp_path, store, run_msgs) -> None:
    rid, msgs = run_msgs
    handler = Handler(tempfail={ANNA: 2})
    sleeps: list[float] = []
    with SmtpTestServer(tmp_path, tls=True, auth=(USER, PASSWORD), handler=handler) as srv:
        t = SmtpDelivery(smtp(srv, backoff=1.5), PASSWORD, sleep=sleeps.append)
        result = deliver_run(store, rid, msgs, t)
        assert result.sent == [ANNA, BEN, WEBB] and sleeps == [1.5, 3.0]
        assert handler.rcpt_attempts.count(ANNA) == 3
        # more 4xx than retries: failed for now, retried by the next send
        handler.tempfail[ANNA] = 10
        rid2 = audit(store, T0 + dt.timedelta(days=7), [finding(f"{SITE}/internationellt/a", "x")])
        one = {ANNA: msgs[ANNA]}
        t = SmtpDelivery(smtp(srv, retries=1), PASSWORD, sleep=sleeps.append)
        result = deliver_run(store, rid2, one, t)
        assert "451" in result.failed[ANNA] and not result.fatal
        assert store.pending_deliveries(rid2)[0].state == "failed"


def test_connection_refused_stops_the_run(tmp_path, store, run_msgs) -> None:
    rid, msgs = run_msgs
    from tests.smtp_server import free_port

    sleeps: list[float] = []
    settings = SmtpSettings(
        host="127.0.0.1", port=free_port(), security="none", retries=2, backoff=0.5, timeout=2
    )
    result = deliver_run(store, rid, msgs, SmtpDelivery(settings, sleep=sleeps.append))
    assert "connection" in result.fatal and sleeps == [0.5, 1.0]  # retried, then given up
    assert set(result.failed) == {ANNA, BEN, WEBB}


def test_security_none_only_for_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        SmtpSettings(host="smtp.umea.se", port=25, security="none")
    SmtpSettings(host="localhost", security="none")
    SmtpSettings(host="::1", security="none")
    with pytest.raises(ValueError):
        SmtpSettings(host="smtp.umea.se", security="tls-maybe")
    with pytest.raises(ValueError, match="password"):
        SmtpDelivery(SmtpSettings(host="smtp.umea.se", user="u"), None)


def test_reply_lost_after_data_is_not_resent(tmp_path, store, run_msgs) -> None:
    """The server stores BEN's message but never answers: outcome unknown, never re-sent."""
    rid, msgs = run_msgs
    handler = Handler(block_on={2})
    with SmtpTestServer(tmp_path, tls=True, auth=(USER, PASSWORD), handler=handler) as srv:
        t = SmtpDelivery(smtp(srv, timeout=1.0), PASSWORD)
        result = deliver_run(store, rid, msgs, t)
        handler.release.set()
        assert result.sent == [ANNA, WEBB] and result.unconfirmed == [BEN]
        assert store.delivery(rid, BEN).state == "sending"  # type: ignore[union-attr]
        assert "outcome unknown" in store.delivery(rid, BEN).last_error  # type: ignore[union-attr]
        result = deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv), PASSWORD))
        assert result.unconfirmed == [BEN] and result.sent == []
        assert srv.handler.received_by() == {ANNA: 1, BEN: 1, WEBB: 1}
        # the admin may decide to resend (same Message-ID)
        assert store.release_delivery(rid, BEN)
        assert deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv), PASSWORD)).sent == [BEN]
        assert srv.handler.received_by()[BEN] == 2
        ids = {m.message["Message-ID"] for m in srv.messages if m.rcpt_tos == [BEN]}
        assert len(ids) == 1


CHILD = r"""
import os, sys
from email import message_from_bytes, policy
from pathlib import Path
from crawler.history import Store
from reports.delivery import SmtpDelivery, SmtpSettings, deliver_run

db, port, cafile, msgdir, run_id = sys.argv[1:6]
msgs = {}
for p in sorted(Path(msgdir).glob("*.eml")):
    msgs[p.stem.split("-", 1)[1]] = message_from_bytes(p.read_bytes(), policy=policy.default)
settings = SmtpSettings(host="127.0.0.1", port=int(port), user="sitewatch", ca_file=cafile,
                        timeout=120)
with Store(db) as store:
    deliver_run(store, int(run_id), msgs, SmtpDelivery(settings, os.environ["SW_TEST_PW"]))
"""


def test_crash_between_sends_every_owner_gets_exactly_one(tmp_path, store, run_msgs) -> None:
    rid, msgs = run_msgs
    msgdir = tmp_path / "msgs"
    msgdir.mkdir()
    for i, (rcpt, m) in enumerate(msgs.items()):
        (msgdir / f"{i:02d}-{rcpt}.eml").write_bytes(m.as_bytes())
    handler = Handler(block_on={2})  # store BEN's message, then hang until the child is dead
    with SmtpTestServer(tmp_path, tls=True, auth=(USER, PASSWORD), handler=handler) as srv:
        child = subprocess.Popen(
            [
                sys.executable,
                "-c",
                CHILD,
                store.where,
                str(srv.port),
                str(srv.cafile),
                str(msgdir),
                str(rid),
            ],
            cwd=ROOT,
            env={**os.environ, "SW_TEST_PW": PASSWORD},
        )
        try:
            assert handler.blocked.wait(60), "the child never reached the second message"
        finally:
            os.kill(child.pid, signal.SIGKILL)
            child.wait(30)
        assert child.returncode == -signal.SIGKILL
        handler.release.set()
        assert {d.recipient: d.state for d in store.deliveries(rid)} == {
            ANNA: "sent",
            BEN: "sending",
            WEBB: "pending",
        }
        # restart: the rest is sent, the interrupted one is not sent again
        result = deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv), PASSWORD))
        assert result.sent == [WEBB] and result.already_sent == [ANNA]
        assert result.unconfirmed == [BEN]
        assert srv.handler.received_by() == {ANNA: 1, BEN: 1, WEBB: 1}
        assert [d.recipient for d in store.unconfirmed_deliveries()] == [BEN]
        deliver_run(store, rid, msgs, SmtpDelivery(smtp(srv), PASSWORD))
        assert srv.handler.received_by() == {ANNA: 1, BEN: 1, WEBB: 1}


def test_outbox_is_idempotent_and_resolves_interruptions(tmp_path, store, run_msgs) -> None:
    rid, msgs = run_msgs
    box = Outbox(tmp_path / "outbox")
    # simulate a crash after claiming ANNA but before writing, and after writing BEN
    assert store.claim_delivery(rid, ANNA)
    assert store.claim_delivery(rid, BEN)
    box.send(rid, BEN, msgs[BEN])
    result = deliver_run(store, rid, msgs, box)
    assert result.sent == [ANNA, WEBB] and result.already_sent == [BEN] and result.ok
    files = sorted(p.name for p in (tmp_path / "outbox").iterdir())
    assert files == [f"run{rid:06d}-{r}.eml" for r in sorted([ANNA, BEN, WEBB])]
    result = deliver_run(store, rid, msgs, box)
    assert result.already_sent == [ANNA, BEN, WEBB]
    assert len(list((tmp_path / "outbox").iterdir())) == 3
    eml = message_from_bytes(box.path_for(rid, ANNA).read_bytes(), policy=policy.default)
    assert eml["Message-ID"] == msgs[ANNA]["Message-ID"]
    assert box.path_for(rid, "../../etc/passwd@x").parent == tmp_path / "outbox"


def test_make_transport_from_config(tmp_path, setup) -> None:
    assert isinstance(make_transport(setup), Outbox)
    cfg = load_config(
        None,
        {
            **CONFIG,
            "email": {"smtp": {"host": "smtp.umea.se", "user": "u", "password_env": "SW_PW_TEST"}},
        },
    )
    s = setup_from_config(cfg)
    assert s.email.from_addr == "sitewatch@www.umea.se" and s.fallback is None
    with pytest.raises(ValueError, match="SW_PW_TEST"):
        make_transport(s, environ={})
    t = make_transport(s, environ={"SW_PW_TEST": "hunter2"})
    assert isinstance(t, SmtpDelivery) and "hunter2" not in repr(t)
    assert s.flaky.runs == 2 and s.flaky.hours == 24
