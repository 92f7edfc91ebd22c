"""Administrator's routes: ``/admin`` (sites, runs, open findings by check and owner,
decisions with their reasons, the audit trail, a trend chart per site), ``/admin/run/<id>``
(the audit's HTML report of any recorded run, rendered from the history), login/logout.

Access: a password checked against ``web.admin_password_hash`` (werkzeug scrypt/pbkdf2),
then a signed cookie (12 h, HttpOnly, SameSite=Strict); or ``--admin-open``, which
``sitewatch web`` accepts only when bound to a loopback address.
"""

from __future__ import annotations

import base64
import hashlib
import re

from flask import Blueprint, Response, abort, g, redirect, request
from markupsafe import Markup
from werkzeug.security import check_password_hash

from checks.models import Report
from checks.suppress import Kind, in_force
from crawler.history.rows import StoreError
from crawler.web.app import page, state
from reports.html_report import render_html
from reports.trend_svg import Point, trend_svg
from reports.workspace_view import count_by, state_text

admin_bp = Blueprint("admin", __name__)
ADMIN_COOKIE = "sw_admin"
_STYLE = re.compile(r"<style>(.*?)</style>", re.S)


def is_admin() -> bool:
    st = state()
    if st.admin_open:
        return True
    return st.signing.is_admin_cookie(request.cookies.get(ADMIN_COOKIE, ""))


def _require_admin() -> None:
    if not is_admin():
        abort(403, description="admin")
    g.viewer = "admin"


@admin_bp.get("/admin/login")
def login_form() -> Response:
    configured = bool(state().cfg.web.admin_password_hash)
    return page("login.html.j2", lang="en", configured=configured, failed=False)


@admin_bp.post("/admin/login")
def login() -> Response:
    st = state()
    stored = st.cfg.web.admin_password_hash
    given = request.form.get("password", "")
    if not stored or not given or not check_password_hash(stored, given):
        return page("login.html.j2", status=403, lang="en", configured=bool(stored), failed=True)
    resp = redirect("/admin", code=303)
    resp.set_cookie(
        ADMIN_COOKIE,
        st.signing.admin_cookie(),
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
        path="/",
    )
    return resp  # type: ignore[return-value]


@admin_bp.post("/admin/logout")
def logout() -> Response:
    resp = redirect("/admin/login", code=303)
    resp.delete_cookie(ADMIN_COOKIE, path="/")
    return resp  # type: ignore[return-value]


def _trend(site: str) -> Markup:
    points = [
        Point(label=p.as_of.isoformat()[5:], errors=p.errors, warnings=p.warnings)
        for p in state().store().trend(site, 26)
    ]
    svg = trend_svg(
        points, title=f"{site}: errors and warnings per run", legend=("errors", "warnings")
    )
    return Markup(svg)


@admin_bp.get("/admin")
def admin_view() -> Response:
    if not is_admin():
        return redirect("/admin/login", code=303)  # type: ignore[return-value]
    g.viewer = "admin"
    st = state()
    store = st.store()
    now = st.now()
    sites = store.sites() or [st.site]
    opened = store.open_findings(st.site)
    decisions = st.decisions()
    by_check_owner = count_by(
        [(o.finding.check.value, _owner_name(o.finding.page)) for o in opened]
    )
    current = {o.finding.key: o.finding for o in opened}
    decided = [
        (s, state_text("en", s), s.key in current and in_force(s, current[s.key], now))
        for s in decisions.values()
    ]
    return page(
        "admin.html.j2",
        lang="en",
        site=st.site,
        sites=[(s, _trend(s)) for s in sites],
        runs=store.runs(st.site, limit=26),
        by_check_owner=by_check_owner,
        open_count=len(opened),
        dismissed=[d for d in decided if d[0].kind is Kind.DISMISS],
        others=[d for d in decided if d[0].kind is not Kind.DISMISS],
        log=store.decision_log(st.site, 100),
    )


def _owner_name(page_url: str) -> str:
    owner = state().owner_of(page_url)
    return "(nobody)" if owner is None else (owner.name if owner.name != "*" else "fallback")


@admin_bp.post("/admin/undo")
def admin_undo() -> Response:
    _require_admin()
    try:
        did = int(request.form.get("decision", ""))
    except ValueError:
        abort(400)
    st = state()
    st.store().revoke_decision(did, by="admin", now=st.now())
    return redirect("/admin", code=303)  # type: ignore[return-value]


@admin_bp.get("/admin/run/<int:rid>")
def run_view(rid: int) -> Response:
    _require_admin()
    store = state().store()
    try:
        info = store.run_info(rid)
        pages, links, _checked = store.snapshot(rid)
        findings = store.findings(rid)
    except StoreError:
        abort(404)
    html = render_html(Report(run=info, pages=pages, links=links, findings=findings))
    # The report is self-contained (its CSS inline): allow exactly its own <style> blocks.
    hashes = "".join(
        " 'sha256-" + base64.b64encode(hashlib.sha256(m.encode()).digest()).decode() + "'"
        for m in _STYLE.findall(html)
    )
    g.csp_extra = hashes
    return Response(html, mimetype="text/html")
