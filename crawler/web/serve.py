"""The ``sitewatch web`` command: serve the workspace (binds to loopback by default).

Run it behind the organisation's web server (TLS, its own access log): see README.md.
The signing key comes from the environment variable ``web.secret_env`` names; it is never
printed. ``--admin-open`` (no admin password) is refused unless the address is loopback.
"""

from __future__ import annotations

import getpass
import os
import re
import signal
import sys
import threading
from typing import Any

import click

DEFAULT_PORT = 8150
_TOKEN = re.compile(r"/o/[^/?#\s]+")


def _fail(message: str) -> None:
    click.echo(f"sitewatch: {message}", err=True)
    sys.exit(2)


def hash_password() -> None:
    from werkzeug.security import generate_password_hash

    first = getpass.getpass("admin password: ")
    if len(first) < 10:
        _fail("use at least 10 characters")
    if getpass.getpass("again: ") != first:
        _fail("the two passwords differ")
    click.echo(f'admin_password_hash = "{generate_password_hash(first, method="scrypt")}"')


def _quiet_handler() -> Any:
    """werkzeug's request handler with editors' tokens masked in the request log."""
    from werkzeug.serving import WSGIRequestHandler

    class Handler(WSGIRequestHandler):
        def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
            path = _TOKEN.sub("/o/<token>", self.path)
            self.log("info", '"%s %s" %s %s', self.command, path, code, size)

    return Handler


def make_server(cfg: Any, host: str, port: int, admin_open: bool) -> Any:
    """The configured app in a threaded WSGI server (not started); exits 2 on bad setup."""
    from werkzeug.serving import make_server as werkzeug_server

    from crawler.web.app import create_app
    from crawler.web.tokens import SecretMissing, read_secret
    from reports.delivery import is_loopback as is_loopback_host

    if admin_open and not is_loopback_host(host):
        _fail(f"--admin-open is only allowed on a loopback address, not {host!r}")
    try:
        secret = read_secret(cfg.web.secret_env, os.environ)
    except SecretMissing as e:
        _fail(str(e))
    app = create_app(cfg, secret=secret, admin_open=admin_open)
    try:
        return werkzeug_server(host, port, app, threaded=True, request_handler=_quiet_handler())
    except OSError as e:
        _fail(f"cannot listen on {host}:{port}: {e.strerror or e}")


@click.command()
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML file.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=int)
@click.option("--admin-open", is_flag=True, help="Admin view without a password (loopback only).")
@click.option("--hash-password", is_flag=True, help="Print a web.admin_password_hash and exit.")
def web(
    config_path: str | None, host: str, port: int, admin_open: bool, hash_password: bool
) -> None:
    """Serve the editors' workspace: acknowledge, dismiss and snooze findings."""
    if hash_password:
        globals()["hash_password"]()
        return
    from crawler.app.commands import _config

    cfg = _config(config_path)
    server = make_server(cfg, host, port, admin_open)
    stop = threading.Event()

    def _stop(*_: object) -> None:
        stop.set()
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, _stop)
    click.echo(
        f"sitewatch web: serving {cfg.site.name or 'the workspace'} on "
        f"http://{host}:{server.server_port}/ (Ctrl-C to stop)"
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        server.app.extensions["sitewatch"].close()
