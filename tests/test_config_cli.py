"""Bad configuration and bad invocations through the real CLI: exit 2, a message naming the
file, the key and the reason, never a traceback. Also: an audit that cannot run at all
(every start URL unreachable) exits 2 with a clear message.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from demo.server import Route, SiteServer
from tests.cli_runner import CliResult, sitewatch, write_config
from tests.faults import never_answers

AS_OF = ("--as-of", "2026-11-26")
START = 'start_urls = ["http://127.0.0.1:9/"]'


def run(tmp_path: Path, *args: str, timeout: float = 60) -> CliResult:
    return sitewatch(*args, cwd=tmp_path, timeout=timeout)


def assert_usage_error(r: CliResult, *fragments: str) -> str:
    assert r.code == 2, (r.code, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    message = r.stderr.strip()
    assert message.startswith("sitewatch: ") or message.startswith("Usage:"), message
    assert len(message.splitlines()) <= 4, message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert not (r.out_dir / "report.json").exists()
    return message


# (config text, fragments the message must contain besides the file name)
BAD_CONFIGS: dict[str, tuple[str, tuple[str, ...]]] = {
    "invalid_toml": (f"[site]\n{START}\n[crawl\ntimeout = 3\n", ("invalid TOML", "line 3")),
    "duplicate_key": (f"[site]\n{START}\n{START}\n", ("invalid TOML",)),
    "unknown_key": (
        f"[site]\n{START}\n[crawl]\nconcurency = 4\n",
        ("crawl.concurency", "unknown key", "did you mean 'concurrency'"),
    ),
    "unknown_table": (f"[site]\n{START}\n[crawler]\ntimeout = 3\n", ("crawler", "unknown key")),
    "wrong_type_number": (
        f'[site]\n{START}\n[crawl]\ntimeout = "fast"\n',
        ("crawl.timeout", "expected a number", "'fast'"),
    ),
    "wrong_type_list": (
        '[site]\nstart_urls = "http://127.0.0.1:9/"\n',
        ("site.start_urls", "expected a list"),
    ),
    "wrong_type_bool": (
        f'[site]\n{START}\n[crawl]\nobey_robots = "yes"\n',
        ("crawl.obey_robots", "expected true or false"),
    ),
    "negative": (
        f"[site]\n{START}\n[crawl]\nmax_pages = -5\n",
        ("crawl.max_pages", "must be at least 1"),
    ),
    "nan": (f"[site]\n{START}\n[crawl]\ndelay = nan\n", ("crawl.delay", "finite")),
    "invalid_cron_hour": (
        f'[site]\n{START}\n[schedule]\nhour = "25"\n',
        ("schedule.hour", "invalid cron value"),
    ),
    "invalid_cron_day": (
        f'[site]\n{START}\n[schedule]\nday_of_week = "funday"\n',
        ("schedule.day_of_week", "invalid cron value"),
    ),
    "invalid_timezone": (
        f'[site]\n{START}\n[schedule]\ntimezone = "Europe/Umeå"\n',
        ("schedule.timezone", "unknown time zone"),
    ),
    "url_without_scheme": (
        '[site]\nstart_urls = ["www.umea.se/internationellt/"]\n',
        ("site.start_urls[0]", "http(s) URL"),
    ),
    "url_bad_scheme": (
        '[site]\nstart_urls = ["ftp://umea.se/"]\n',
        ("site.start_urls[0]", "http(s) URL"),
    ),
    "url_bad_port": (
        '[site]\nstart_urls = ["http://umea.se:99999/"]\n',
        ("site.start_urls[0]", "not a valid URL"),
    ),
    "url_bad_ipv6": ('[site]\nstart_urls = ["http://[::1/"]\n', ("site.start_urls[0]",)),
    "url_with_space": (
        '[site]\nstart_urls = ["http://umea.se/inter nationellt/"]\n',
        ("site.start_urls[0]", "without spaces"),
    ),
    "bad_regex": (
        f'[site]\n{START}\nexclude = ["ok", "(unclosed"]\n',
        ("site.exclude[1]", "invalid regular expression"),
    ),
    "bad_format": (
        f'[site]\n{START}\n[report]\nformats = ["html", "pdf"]\n',
        ("report.formats[1]", "'pdf'"),
    ),
    "password": (
        f'[site]\n{START}\n[email.smtp]\npassword = "hunter2"\n',
        ("email.smtp.password", "environment variable"),
    ),
    "owner_without_emails": (
        f'[site]\n{START}\n[[owners]]\nmatch = "http://127.0.0.1:9/"\nname = "Karin"\n',
        ("owners[0].emails", "missing"),
    ),
    "deep_nesting": (f"[site]\n{START}\n[crawl]\nx = " + "[" * 5000 + "]" * 5000 + "\n", ()),
    "no_start_url": ("[site]\nname = 'x'\n", ("site.start_urls", "no start URL")),
}


@pytest.mark.parametrize("name", list(BAD_CONFIGS))
def test_bad_config_exits_2_naming_file_key_reason(tmp_path: Path, name: str) -> None:
    text, fragments = BAD_CONFIGS[name]
    cfg = write_config(tmp_path / "site.toml", text)
    r = run(tmp_path, "audit", "--config", str(cfg), *AS_OF)
    message = assert_usage_error(r, str(cfg), *fragments)
    print(f"{name}: {message}")


def test_not_utf8(tmp_path: Path) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_bytes(b'[site]\nname = "Ume\xe5"\n')
    r = run(tmp_path, "audit", "--config", str(cfg), *AS_OF)
    assert_usage_error(r, str(cfg), "not UTF-8", "line 2")


def test_binary_file(tmp_path: Path) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_bytes(bytes(range(256)) * 10)
    r = run(tmp_path, "audit", "--config", str(cfg), *AS_OF)
    assert_usage_error(r, str(cfg))


@pytest.mark.parametrize("kind", ["missing", "directory", "below_a_file", "unreadable"])
def test_unreadable_paths(tmp_path: Path, kind: str) -> None:
    cfg = tmp_path / "site.toml"
    expected = {
        "missing": "no such file",
        "directory": "is a directory",
        "below_a_file": "cannot read the file",
        "unreadable": "permission denied",
    }[kind]
    if kind == "directory":
        cfg.mkdir()
    elif kind == "below_a_file":
        write_config(tmp_path / "file", "")
        cfg = tmp_path / "file" / "site.toml"
    elif kind == "unreadable":
        if os.geteuid() == 0:
            pytest.skip("running as root: every file is readable")
        write_config(cfg, f"[site]\n{START}\n")
        cfg.chmod(0)
    try:
        r = run(tmp_path, "audit", "--config", str(cfg), *AS_OF)
    finally:
        if kind == "unreadable":
            cfg.chmod(0o600)
    assert_usage_error(r, str(cfg), expected)


def test_unwritable_out_dir(tmp_path: Path) -> None:
    server = SiteServer("127.0.0.1", name="tiny")
    server.add_route("/s/index.html", Route(body="<title>x</title><p>Senast granskad: 2026-10-01"))
    blocker = write_config(tmp_path / "blocker", "a file where the out dir should be")
    with server:
        r = run(tmp_path, "audit", server.url("/s/index.html"), "--out", str(blocker), *AS_OF)
    assert_usage_error(r, "cannot write reports", str(blocker))


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("--as-of", "2026-13-45"), ("--as-of", "YYYY-MM-DD", "2026-13-45")),
        (("--as-of", "tomorrow"), ("--as-of", "'tomorrow'")),
        (("--format", "html,pdf"), ("<command line>", "report.formats", "'pdf'")),
        (("--fail-on", "everything"), ("<command line>", "report.fail_on", "'everything'")),
        (("--max-pages", "0"), ("<command line>", "crawl.max_pages", "at least 1")),
        (("--max-pages", "many"), ("--max-pages", "'many'")),
        (("--exclude", "(x"), ("<command line>", "site.exclude[0]", "regular expression")),
        (("--scope", "umea.se"), ("<command line>", "site.scopes[0]")),
        (("--concurrency", "-1"), ("<command line>", "crawl.concurrency")),
    ],
)
def test_bad_command_line_values(tmp_path: Path, args: tuple[str, ...], fragments) -> None:
    r = run(tmp_path, "audit", "http://127.0.0.1:9/", *AS_OF, *args)
    assert_usage_error(r, *fragments)


def test_bad_start_url_on_command_line(tmp_path: Path) -> None:
    r = run(tmp_path, "audit", "umea.se/internationellt", *AS_OF)
    assert_usage_error(r, "<command line>", "site.start_urls[0]", "http(s) URL")


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.mark.parametrize("kind", ["refused", "dns", "timeout", "http_404"])
def test_unreachable_start_url_exits_2(tmp_path: Path, kind: str) -> None:
    server = SiteServer("127.0.0.1", name="unreachable")
    server.add_route("/hangs/", Route(handler=never_answers))
    with server:
        url = {
            "refused": f"http://127.0.0.1:{_closed_port()}/sektion/",
            "dns": "http://kommunen-finns-inte.invalid/sektion/",
            "timeout": server.url("/hangs/"),
            "http_404": server.url("/missing/"),
        }[kind]
        cfg = write_config(
            tmp_path / "site.toml",
            f'[site]\nstart_urls = ["{url}"]\n[crawl]\ntimeout = 2\nretries = 0\n',
        )
        r = run(tmp_path, "audit", "--config", str(cfg), *AS_OF, timeout=60)
    detail = "HTTP 404" if kind == "http_404" else kind
    assert_usage_error(r, "the audit could not run", "start URL unreachable", url, detail)
