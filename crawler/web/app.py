"""The workspace's Flask app: security headers, CSRF, templates, error pages.

``create_app(cfg, secret=..., admin_open=..., clock=...)`` builds the app; the routes are
in :mod:`crawler.web.owner` (editors, by signed link) and :mod:`crawler.web.admin`.

Every response carries a strict Content-Security-Policy (no script at all, styles only
from ``/static/``; the run view adds the hash of its report's own ``<style>`` block),
``X-Content-Type-Options: nosniff``, ``Referrer-Policy: no-referrer`` (links carry
tokens) and ``Cache-Control: no-store``. Every POST must carry a CSRF token (see
:mod:`crawler.web.tokens`) or is refused with 403 before any route runs. Templates are
autoescaped (``reports/templates/web``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask, Response, abort, g, render_template, request
from werkzeug.exceptions import HTTPException

from crawler.config import Config
from crawler.web.state import WebState
from crawler.web.tokens import Signing

TEMPLATES = Path(__file__).resolve().parents[2] / "reports" / "templates" / "web"
STATIC = Path(__file__).resolve().parent / "static"
CSRF_COOKIE = "sw_csrf"
CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)


class _App(Flask):
    # Templates are named *.html.j2: Flask's default autoescape looks at the extension only.
    jinja_options = {**Flask.jinja_options, "autoescape": True}  # noqa: RUF012


def state() -> WebState:
    return g.sw_state  # type: ignore[no-any-return]


def create_app(
    cfg: Config,
    *,
    secret: str,
    admin_open: bool = False,
    clock: Callable[[], float] = time.time,
) -> Flask:
    app = _App(
        __name__,
        template_folder=str(TEMPLATES),
        static_folder=str(STATIC),
        static_url_path="/static",
    )
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, TEMPLATES_AUTO_RELOAD=False)
    st = WebState(cfg, Signing(secret, clock), admin_open=admin_open, clock=clock)
    app.extensions["sitewatch"] = st

    @app.before_request
    def _before() -> None:
        g.sw_state = st
        g.csp_extra = ""
        g.nonce = request.cookies.get(CSRF_COOKIE, "")
        g.new_nonce = ""
        if not g.nonce or len(g.nonce) > 64:
            g.nonce = g.new_nonce = st.signing.new_nonce()
        if request.method == "POST" and not _csrf_ok():
            abort(403, description="csrf")

    app.after_request(_headers)
    app.teardown_request(lambda _exc: st.release())
    app.register_error_handler(HTTPException, _error)
    from crawler.web.admin import admin_bp
    from crawler.web.owner import owner_bp

    app.register_blueprint(owner_bp)
    app.register_blueprint(admin_bp)
    app.add_url_rule("/", "index", lambda: page("index.html.j2", lang="en"))
    return app


def viewer() -> str:
    """Who is asking: "o:<owner>" (set by the owner routes), "admin", or "" (nobody)."""
    return str(getattr(g, "viewer", ""))


def csrf_field() -> str:
    return state().signing.csrf_token(g.nonce, viewer())


def _csrf_ok() -> bool:
    """Checked before the route: the viewer is derived from the request the same way."""
    from crawler.web.admin import is_admin
    from crawler.web.owner import identity_from_path

    if request.cookies.get(CSRF_COOKIE, "") != g.nonce:
        return False  # no cookie: a fresh nonce was made for this request
    who = identity_from_path()
    g.viewer = f"o:{who.owner}" if who else ("admin" if is_admin() else "")
    token = request.form.get("csrf", "")
    return state().signing.csrf_ok(token, g.nonce, viewer())


def page(template: str, status: int = 200, **ctx: Any) -> Response:
    """A rendered page with the CSRF field available to its forms."""
    html = render_template(template, csrf=csrf_field, **ctx)
    return Response(html, status=status, mimetype="text/html")


def _headers(resp: Response) -> Response:
    extra = getattr(g, "csp_extra", "")
    resp.headers["Content-Security-Policy"] = CSP.replace(
        "style-src 'self'", f"style-src 'self'{extra}"
    )
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "no-referrer"
    resp.headers["X-Frame-Options"] = "DENY"
    resp.headers["Cache-Control"] = "no-store"
    resp.headers["Cross-Origin-Opener-Policy"] = "same-origin"
    new = getattr(g, "new_nonce", "")
    if new:
        resp.set_cookie(
            CSRF_COOKIE, new, httponly=True, samesite="Strict", secure=request.is_secure
        )
    return resp


def _error(e: HTTPException) -> Response:
    code = e.code or 500
    what = "csrf" if e.description == "csrf" else str(code)
    return page("error.html.j2", status=code, code=code, what=what, lang="en")
