"""``make demo``: serve the bundled sample site on loopback, audit it, send the editors'
emails to the outbox, and print how to open the editors' workspace.

The servers listen on fixed ports (``--port``, default 8160 on 127.0.0.1-3), so the
addresses stay the same from run to run and the history compares like with like. If the
port is taken, free ports are used instead, with a warning: the addresses then differ from
the last run, so every finding would look new and every old one fixed.

Weeks (``demo/weeks.py``): the first run is week 1; once week 1 is in the demo's history
(``var/demo.db``), ``make demo`` runs week 2 (one problem fixed, one new); ``--week N``
chooses. Delete ``var/demo.db`` to start over.

The planted problems (demo/PLANTED.md) are the expected output, so this exits 0 when the
audit ran (``sitewatch audit`` itself exits 1 on them) and 2 when it could not.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sqlite3
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from demo.routes import DemoServers, start_demo_servers
from demo.weeks import AS_OF_BY_WEEK, week2

AS_OF = AS_OF_BY_WEEK[1].isoformat()
OUT = Path("out")
HISTORY = Path("var/demo.db")
DEMO_PORT = 8160
WEB_PORT = 8150
SECRET_ENV = "SITEWATCH_WEB_SECRET"
SITE = "umea.se/internationellt (demo)"


def sitewatch(*args: str) -> int:
    return subprocess.call([sys.executable, "-m", "crawler.app.cli", *args])


def weeks_done(db: Path = HISTORY) -> set[str]:
    """The as-of dates of the demo site's finished runs in the history."""
    if not db.exists():
        return set()
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        try:
            rows = con.execute(
                "SELECT as_of FROM runs WHERE site = ? AND status IN ('complete', 'incomplete')",
                (SITE,),
            ).fetchall()
        finally:
            con.close()
    except sqlite3.Error:
        return set()
    return {str(r[0]) for r in rows if r[0]}


def pick_week(asked: int | None) -> int:
    if asked is not None:
        return asked
    return 2 if AS_OF in weeks_done() else 1


def start(port: int) -> DemoServers:
    """The servers on ``port``; on free ports, with a clear warning, if it is taken."""
    try:
        return start_demo_servers(port)
    except OSError as e:
        print(
            f"sitewatch demo: WARNING: port {port} is taken ({e.strerror or e}); using free "
            "ports instead. The addresses differ from other runs, so the history will see "
            "every finding as new (use --port to pick another fixed port).",
            file=sys.stderr,
        )
        return start_demo_servers(0)


def secret() -> tuple[str, bool]:
    """The workspace key: ``$SITEWATCH_WEB_SECRET``, or a new one made for this demo (then
    True: the demo prints it in the command, since nothing else knows it)."""
    value = os.environ.get(SECRET_ENV, "")
    if len(value) >= 32:
        return value, False
    value = secrets.token_urlsafe(48)
    os.environ[SECRET_ENV] = value  # for the `send` child: it signs the email links
    return value, True


def print_workspace(config: Path, key: str, made_here: bool) -> None:
    from crawler.web.tokens import Signing

    token = Signing(key).owner_token("Karin Nyström", SITE)
    base = f"http://127.0.0.1:{WEB_PORT}"
    print("\nsitewatch demo: the editors' workspace (acknowledge, dismiss, snooze):")
    command = f"{sys.executable} -m crawler.app.cli web --config {config} --admin-open"
    if made_here:  # a throwaway key of this demo run (a real one is never printed)
        print(f"  start it:  {SECRET_ENV}={key} \\")
        print(f"             {command}")
    else:
        print(f"  start it ({SECRET_ENV} as in your environment):")
        print(f"             {command}")
    print(f"  editor (Karin Nyström): {base}/o/{token}")
    print(f"  admin:                  {base}/admin")
    print("  (the same links are in the emails in the outbox; they work while the key is the same)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.run", description=__doc__.split("\n")[0])
    parser.add_argument("--week", type=int, choices=sorted(AS_OF_BY_WEEK), help="1 or 2")
    parser.add_argument("--port", type=int, default=DEMO_PORT, help="port of the demo servers")
    args = parser.parse_args(argv)
    week = pick_week(args.week)
    as_of = AS_OF_BY_WEEK[week].isoformat()
    OUT.mkdir(exist_ok=True)
    config = OUT / "demo-config.toml"
    key, made_here = secret()
    with start(args.port) as demo:
        if week == 2:
            week2(demo)
        demo.write_config(config)
        print(
            f"sitewatch demo: week {week} (as of {as_of}): serving the sample site at "
            f"{demo.start_url}"
        )
        print(f"sitewatch demo: config written to {config}")
        code = sitewatch("audit", "--config", str(config), "--as-of", as_of)
    if code not in (0, 1):
        print(f"sitewatch demo: the audit failed (exit {code})", file=sys.stderr)
        return code
    print()
    if sitewatch("send", "--config", str(config)) not in (0, 1):
        return 2
    print(f"\nsitewatch demo: open {OUT / 'report.html'} in a browser;")
    print(f"sitewatch demo: the editors' emails are in {OUT / 'outbox'} (.eml files).")
    print("sitewatch demo: `sitewatch audit` exits 1 on these planted problems; the demo exits 0.")
    print_workspace(config, key, made_here)
    if week == 1:
        print("\nsitewatch demo: run `make demo` again for week 2 (one problem fixed, one new).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
