"""The SMTP password never leaves the environment variable that holds it.

It is set (``email.smtp.password_env``) for every command below, all run as the real CLI:
``audit --verbose``, ``send`` that succeeds, ``send`` against a server that echoes the
AUTH attempt (PLAIN and LOGIN, encoded and decoded) in its 535 reply, ``send`` that
cannot connect or cannot verify TLS, ``send`` to the outbox, ``history`` (which lists
failed deliveries with their errors) and config-load errors, including the password
pasted into the config by mistake. Then every artefact is searched for the password in
every form a leak would take: as is (UTF-8 and Latin-1), JSON/Python/URL/HTML-escaped,
base64 of the password (AUTH LOGIN) and of ``\\0user\\0password`` (AUTH PLAIN). The
artefacts: each command's stdout and stderr, every file under the test directory (reports,
the SQLite database and its WAL, .eml files, certificates), and every message the SMTP
server received (raw and with its MIME parts decoded).
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Iterator
from email import message_from_bytes, policy
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from tests.cli_runner import CliResult, sitewatch
from tests.raw_smtp import RawSmtpServer, Script, closed_port
from tests.smtp_server import SmtpTestServer
from tests.watch_site import AS_OF, GatedSite, site_config

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

USER = "sitewatch"
SECRET = "Hemlig-Lösen!42"  # not a valid variable name, non-ASCII: every encoding differs
PW_ENV = "SW_SECRETS_TEST_PW"
ENV = {PW_ENV: SECRET}


def b64(data: bytes) -> bytes:
    return base64.b64encode(data)


FORMS: dict[str, bytes] = {
    "plain": SECRET.encode(),
    "latin-1": SECRET.encode("latin-1"),
    "json": json.dumps(SECRET).strip('"').encode(),
    "python-escape": SECRET.encode("unicode_escape"),
    "bytes-repr": repr(SECRET.encode())[2:-1].encode(),
    "url": quote(SECRET).encode(),
    "url-plus": quote_plus(SECRET).encode(),
    "html": html.escape(SECRET).encode(),
    "base64 (AUTH LOGIN)": b64(SECRET.encode()),
    "base64 latin-1": b64(SECRET.encode("latin-1")),
    "base64 (AUTH PLAIN)": b64(f"\0{USER}\0{SECRET}".encode()),
    "base64 (PLAIN, no authzid)": b64(f"{USER}\0{SECRET}".encode()),
    "base64 (PLAIN, padding stripped)": b64(f"\0{USER}\0{SECRET}".encode()).rstrip(b"="),
}


def leaks_in(name: str, data: bytes | str) -> list[str]:
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    return [f"{name}: {form}" for form, needle in FORMS.items() if needle in raw]


class Artefacts:
    """Everything the commands left behind, searched at the end."""

    def __init__(self) -> None:
        self.outputs: list[tuple[str, str]] = []

    def run(self, label: str, result: CliResult) -> CliResult:
        self.outputs.append((f"{label} stdout", result.stdout))
        self.outputs.append((f"{label} stderr", result.stderr))
        return result

    def leaks(self, root: Path, received: list[bytes], exclude: set[Path]) -> list[str]:
        found: list[str] = []
        for name, text in self.outputs:
            found += leaks_in(name, text)
        for path in sorted(p for p in root.rglob("*") if p.is_file() and p not in exclude):
            found += leaks_in(str(path.relative_to(root)), path.read_bytes())
        for i, content in enumerate(received):
            found += leaks_in(f"received message {i} (raw)", content)
            msg = message_from_bytes(content, policy=policy.default)
            for key, value in msg.items():
                found += leaks_in(f"received message {i} header {key}", str(value))
            for part in msg.walk():
                if not part.is_multipart():
                    found += leaks_in(f"received message {i} part", str(part.get_content()))
        return found


@pytest.fixture
def site() -> Iterator[GatedSite]:
    with GatedSite() as s:
        yield s


def test_the_password_never_appears_in_any_artefact(tmp_path: Path, site: GatedSite) -> None:
    art = Artefacts()
    db = tmp_path / "var" / "sw.db"
    cfg = tmp_path / "site.toml"
    received: list[bytes] = []

    def configure(smtp: str) -> None:
        site_config(
            cfg,
            start_url=site.start_url,
            base_url=site.server.base_url,
            db=db,
            out=tmp_path / "out",
            smtp=smtp,
        )

    def smtp_body(port: int, security: str, ca: Path | None) -> str:
        lines = [
            'host = "127.0.0.1"',
            f"port = {port}",
            f'security = "{security}"',
            f'user = "{USER}"',
            f'password_env = "{PW_ENV}"',
            "retries = 0",
            "timeout = 10",
        ]
        if ca is not None:
            lines.append(f'ca_file = "{ca}"')
        return "\n".join(lines)

    def cli(label: str, *args: str) -> CliResult:
        return art.run(label, sitewatch(*args, cwd=tmp_path, env=ENV, timeout=180))

    with SmtpTestServer(tmp_path / "certs", tls=True, auth=(USER, SECRET)) as good:
        configure(smtp_body(good.port, "starttls", good.cafile))
        audit = cli("audit --verbose", "audit", "--config", str(cfg), "--as-of", AS_OF, "-v")
        assert audit.code == 1, audit.stderr
        assert "[scrapy" in audit.stderr or "scrapy" in audit.stderr.lower()  # verbose log on
        sent = cli("send (ok)", "send", "--config", str(cfg))
        assert sent.code == 0 and "3 sent" in sent.stdout, sent.stdout + sent.stderr
        received += [m.content for m in good.messages]
        assert len(received) == 3

        second = cli("audit 2", "audit", "--config", str(cfg), "--as-of", AS_OF)
        assert "history: run 2" in second.stdout

        # wrong server: 535 replies that echo the AUTH data, encoded and decoded
        with RawSmtpServer(Script(echo_auth=True)) as echo:
            configure(smtp_body(echo.port, "none", None))
            failed = cli("send (echoing 535)", "send", "--config", str(cfg))
            wire = echo.data
        assert failed.code == 1 and "authentication failed: 535" in failed.stderr
        # the server really did carry the secret back in both mechanisms' replies ...
        assert b"AUTH PLAIN " + FORMS["base64 (AUTH PLAIN)"] in wire
        assert FORMS["base64 (AUTH LOGIN)"] in wire
        # ... and the client scrubbed it: what the admin sees is "***"
        assert "***" in failed.stderr

        configure(smtp_body(closed_port(), "starttls", good.cafile))
        refused = cli("send (refused)", "send", "--config", str(cfg))
        assert refused.code == 1 and "connection" in refused.stderr

        configure(smtp_body(good.port, "starttls", None))  # certificate not trusted
        untrusted = cli("send (untrusted cert)", "send", "--config", str(cfg))
        assert untrusted.code == 1 and "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr

        hist = cli("history", "history", "--config", str(cfg))
        assert hist.code == 0 and "not delivered to" in hist.stdout, hist.stdout

    configure("")  # no SMTP host: the outbox
    outbox = cli("send (outbox)", "send", "--config", str(cfg))
    assert outbox.code == 0 and "3 sent to" in outbox.stdout, outbox.stdout + outbox.stderr
    assert len(list((tmp_path / "out" / "outbox").glob("*.eml"))) == 3
    cli("history (all)", "history", "--config", str(cfg), "--all-sites")

    # config-load errors, two of them with the password pasted into the file by mistake
    mistakes = {
        "typo.toml": "[email.smtp]\nhots = 'smtp.kommun.example'\n",
        "pasted-into-password-env.toml": f'[email.smtp]\npassword_env = "{SECRET}"\n',
        "pasted-as-password.toml": f'[email.smtp]\npassword = "{SECRET}"\n',
        "pasted-broken-toml.toml": f'[email.smtp]\npassword_env = "{SECRET}\n',
    }
    pasted = set()
    for name, text in mistakes.items():
        path = tmp_path / name
        path.write_text(f'[site]\nstart_urls = ["{site.start_url}"]\n{text}', encoding="utf-8")
        if SECRET in text:
            pasted.add(path)
        for command in ("audit", "send", "history"):
            r = cli(f"{command} --config {name}", command, "--config", str(path))
            assert r.code == 2 and "config error" in r.stderr, r.stderr
            assert "Traceback" not in r.stderr

    assert db.exists() and (tmp_path / "out" / "report.json").exists()
    # the scanner itself finds the password where it is (the pasted configs)
    assert all(leaks_in(p.name, p.read_bytes()) for p in pasted)
    assert art.leaks(tmp_path, received, exclude=pasted) == []
