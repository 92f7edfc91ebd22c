"""Editors' routes: ``/o/<token>`` (their open findings by page), ``/o/<token>/f/<fid>``
(one finding: the email's one-click link), POST ``decide`` and ``undo``.

The token (signed, expiring; :mod:`crawler.web.tokens`) names the owner and the site; an
editor sees and changes only findings on pages routed to that owner (``checks.owners``):
anything else is 403, a bad or expired token 403 too (the page says to use a newer email).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, Response, abort, g, redirect, request

from checks.groups import group_key
from checks.models import Check, Finding
from checks.owners import Owner
from checks.suppress import Kind, Suppression, validate
from crawler.history.decisions import OpenFinding
from crawler.web.app import page, state
from crawler.web.state import FALLBACK, find
from crawler.web.tokens import OwnerIdentity
from reports import web_messages as W
from reports.workspace_view import group_by_page

owner_bp = Blueprint("owner", __name__)


def identity_from_path() -> OwnerIdentity | None:
    """The identity of a valid token in the URL (``/o/<token>/...``), else None."""
    token = (request.view_args or {}).get("token")
    if not isinstance(token, str):
        return None
    st = state()
    who = st.signing.read_owner_token(token, st.cfg.web.token_days)
    if who is None or who.site != st.site or st.owner_named(who.owner) is None:
        return None
    return who


def _owner(token: str) -> Owner:
    who = identity_from_path()
    if who is None:
        abort(403, description="token")
    g.viewer = f"o:{who.owner}"
    owner = state().owner_named(who.owner)
    assert owner is not None
    return owner


def _as_finding(s: Suppression) -> Finding:
    return Finding(Check(s.check), s.severity, s.page, s.target, s.detail)


def _who(owner: Owner) -> str:
    """The name recorded for the owner's actions (the fallback: its address)."""
    return owner.emails[0] if owner.name == FALLBACK else owner.name


def _mine(owner: Owner) -> list[OpenFinding]:
    st = state()
    return st.mine(owner, st.store().open_findings(st.site))


def _render(token: str, owner: Owner, items: list[OpenFinding], **extra: Any) -> Response:
    st = state()
    lang = owner.language
    groups = group_by_page(
        lang,
        [(i.finding, i.first_seen) for i in items],
        st.titles(i.finding.page for i in items),
        st.decisions(),
        st.now(),
        owner,
    )
    weeks = W.plural(lang, "weeks", st.cfg.web.acknowledge_weeks)
    name = _who(owner)
    return page(
        "owner.html.j2",
        lang=lang,
        t=W.TEXTS[lang],
        heading=W.text(lang, "owner_heading", name=name),
        groups=groups,
        token=token,
        site=st.site,
        ack_help=W.text(lang, "acknowledge_help", weeks=weeks),
        today=st.now().date().isoformat(),
        **extra,
    )


@owner_bp.get("/o/<token>")
def owner_view(token: str) -> Response:
    owner = _owner(token)
    done = request.args.get("done", "")
    lang = owner.language
    notice = W.text(lang, f"done_{done}") if done in (*Kind, "undo") else ""
    return _render(token, owner, _mine(owner), notice=notice, error="")


@owner_bp.get("/o/<token>/f/<fid>")
def one_finding(token: str, fid: str) -> Response:
    owner = _owner(token)
    st = state()
    everything = st.store().open_findings(st.site)
    mine = st.mine(owner, everything)
    if find(mine, fid) is None:
        if find(everything, fid) is not None:
            abort(403, description="not_yours")
        return _render(token, owner, mine, notice="", error=W.text(owner.language, "err_gone"))
    return _render(token, owner, [i for i in mine if find([i], fid)], notice="", error="")


def _until(kind: Kind, now: dt.datetime) -> dt.datetime | None:
    if kind is Kind.ACKNOWLEDGE:
        return now + dt.timedelta(weeks=state().cfg.web.acknowledge_weeks)
    if kind is Kind.SNOOZE:
        raw = request.form.get("until", "")
        try:
            day = dt.date.fromisoformat(raw)
        except ValueError:
            return None
        return dt.datetime.combine(day, dt.time(), dt.UTC)
    return None


@owner_bp.post("/o/<token>/decide")
def decide(token: str) -> Response:
    owner = _owner(token)
    st = state()
    try:
        kind = Kind(request.form.get("kind", ""))
    except ValueError:
        abort(400)
    fid = request.form.get("fid", "")
    everything = st.store().open_findings(st.site)
    mine = st.mine(owner, everything)
    finding = find(mine, fid)
    if finding is None:
        if find(everything, fid) is not None:
            abort(403, description="not_yours")
        return _render(token, owner, mine, notice="", error=W.text(owner.language, "err_gone"))
    now = st.now()
    reason = request.form.get("reason", "").strip()
    until = _until(kind, now)
    problem = validate(kind, reason, until, now)
    if problem:
        error = W.text(owner.language, f"err_{problem}")
        return _render(token, owner, mine, notice="", error=error)
    # One problem, every place of it on this owner's pages (checks.groups: links to one
    # resource with one verdict), as the email shows it.
    places = [o.finding for o in mine if group_key(o.finding) == group_key(finding)]
    st.store().record_decisions(
        st.site, places, kind, by=_who(owner), reason=reason, until=until, now=now
    )
    return redirect(f"/o/{token}?done={kind.value}#f-{fid}", code=303)  # type: ignore[return-value]


@owner_bp.post("/o/<token>/undo")
def undo(token: str) -> Response:
    owner = _owner(token)
    st = state()
    try:
        did = int(request.form.get("decision", ""))
    except ValueError:
        abort(400)
    found = st.store().decision(did)
    if found is None:
        abort(404)
    site, decision, _revoked = found
    if site != st.site or st.owner_of(decision.page) != owner:
        abort(403, description="not_yours")
    now = st.now()
    group = group_key(_as_finding(decision))
    for other in st.decisions().values():  # the same problem's other places, too
        same = group_key(_as_finding(other)) == group and st.owner_of(other.page) == owner
        if same and other.id != did:
            st.store().revoke_decision(other.id, by=_who(owner), now=now)
    st.store().revoke_decision(did, by=_who(owner), now=now)
    return redirect(f"/o/{token}?done=undo", code=303)  # type: ignore[return-value]
