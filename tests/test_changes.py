"""New / still open / fixed, and flaky-link promotion (pure functions)."""

from __future__ import annotations

import datetime as dt

from checks.changes import (
    Changes,
    FindingState,
    FlakyPolicy,
    apply_flakiness,
    compute_changes,
    is_transient,
    observed_at,
)
from checks.models import Check, Finding, LinkResult, Severity, Verdict

T0 = dt.datetime(2024, 11, 18, 7, 0, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(days=7)


def broken(target: str, detail: str = "http_404", page: str = "https://x.se/p") -> Finding:
    return Finding(Check.BROKEN_LINK, Severity.ERROR, page, target, detail)


def state(f: Finding, first: dt.datetime, runs: int = 1) -> FindingState:
    return FindingState(first, first, runs, f.severity, f)


def test_new_open_fixed() -> None:
    a, b, c = broken("https://t/a"), broken("https://t/b"), broken("https://t/c")
    prev = {a.key: state(a, T0), b.key: state(b, T0 - dt.timedelta(days=3), runs=2)}
    ch = compute_changes([b, c], prev, now=T1)
    assert [i.finding for i in ch.new] == [c]
    assert ch.new[0].since == T1 and ch.new[0].days == 0 and ch.new[0].consecutive_runs == 1
    (open_,) = ch.still_open
    assert open_.finding == b and open_.since == T0 - dt.timedelta(days=3)
    assert open_.days == 10 and open_.consecutive_runs == 3
    assert [i.finding for i in ch.fixed] == [a] and ch.unchecked == ()
    assert ch.complete and ch.has_problems
    assert ch.counts() == {"new": 1, "still_open": 1, "fixed": 1, "unchecked": 0}


def test_incomplete_run_fixes_nothing() -> None:
    a, c = broken("https://t/a"), broken("https://t/c")
    ch = compute_changes(
        [c], {a.key: state(a, T0)}, now=T1, complete=False, incomplete_reasons=["max_pages"]
    )
    assert ch.fixed == ()
    assert [i.finding for i in ch.unchecked] == [a]
    assert not ch.complete and ch.incomplete_reasons == ("max_pages",)


def test_duplicate_keys_keep_most_severe() -> None:
    w = Finding(Check.BROKEN_LINK, Severity.WARNING, "https://x.se/p", "https://t/a", "timeout")
    e = broken("https://t/a")
    ch = compute_changes([w, e], {}, now=T1)
    assert [i.finding for i in ch.new] == [e]


def test_fixed_without_stored_finding_is_rebuilt_from_key() -> None:
    key = ("broken_link", "https://x.se/p", "https://t/a")
    st = FindingState(T0, T0, 1, Severity.ERROR)
    (fixed,) = compute_changes([], {key: st}, now=T1).fixed
    assert fixed.finding.key == key and fixed.finding.severity is Severity.ERROR


def test_filter_and_add() -> None:
    ch = compute_changes(
        [
            broken("https://t/a", page="https://x.se/1"),
            broken("https://t/b", page="https://x.se/2"),
        ],
        {},
        now=T1,
    )
    one = ch.filter(lambda f: f.page.endswith("/1"))
    assert len(one.new) == 1
    both = one + ch.filter(lambda f: f.page.endswith("/2"))
    assert len(both.new) == 2
    assert not (Changes(complete=False) + Changes()).complete


def test_is_transient() -> None:
    for d in ("timeout", "refused", "connection", "http_500", "http_503", "http_429"):
        assert is_transient(d), d
    for d in ("http_404", "http_410", "dns", "tls", "http_403", "http_5000", ""):
        assert not is_transient(d), d


def test_flaky_link_promoted_after_two_runs() -> None:
    policy = FlakyPolicy(runs=2, hours=24)
    t = broken("https://t/slow", "timeout")
    gone = broken("https://t/gone", "http_404")
    # run 1: the timeout is a warning, the 404 an error at once
    (r1_t, r1_g) = apply_flakiness([t, gone], [], {}, policy, T0)
    assert r1_t.severity is Severity.WARNING and r1_g.severity is Severity.ERROR
    # run 2: seen once before -> two consecutive runs -> error
    prev = {r1_t.key: state(r1_t, T0, runs=1)}
    (r2_t,) = apply_flakiness([t], [], prev, policy, T0 + dt.timedelta(hours=1))
    assert r2_t.severity is Severity.ERROR


def test_flaky_link_promoted_by_age() -> None:
    policy = FlakyPolicy(runs=5, hours=24)
    t = broken("https://t/x", "http_503")
    prev = {t.key: state(t, T0, runs=1)}
    (early,) = apply_flakiness([t], [], prev, policy, T0 + dt.timedelta(hours=23))
    (late,) = apply_flakiness([t], [], prev, policy, T0 + dt.timedelta(hours=24))
    assert early.severity is Severity.WARNING and late.severity is Severity.ERROR


def test_flakiness_leaves_others_alone() -> None:
    policy = FlakyPolicy()
    watched = Finding(
        Check.BROKEN_LINK, Severity.ERROR, "https://x.se/p", "https://t/w", "timeout", watched=True
    )
    stale = Finding(Check.STALE_PAGE, Severity.ERROR, "https://x.se/p")
    info = Finding(Check.BROKEN_LINK, Severity.INFO, "https://x.se/p", "https://t/i", "timeout")
    out = apply_flakiness([watched, stale, info], [], {}, policy, T0)
    assert out == (watched, stale, info)


def test_flakiness_takes_detail_from_links() -> None:
    f = Finding(Check.BROKEN_LINK, Severity.ERROR, "https://x.se/p", "https://t/r")
    link = LinkResult("https://t/r", Verdict.BROKEN, "refused")
    (out,) = apply_flakiness([f], [link], {}, FlakyPolicy(), T0)
    assert out.severity is Severity.WARNING


def test_a_run_audited_as_of_another_day_is_dated_by_that_day() -> None:
    started = dt.datetime(2026, 12, 6, 2, 14, tzinfo=dt.UTC)
    assert observed_at(started, None) == started
    # Within a day (time zones: 00:30 in Stockholm is the previous UTC day): real time.
    for day in (dt.date(2026, 12, 5), dt.date(2026, 12, 6), dt.date(2026, 12, 7)):
        assert observed_at(started, day) == started
    # A demo's week, a back-dated or a future audit: that day, same time of day.
    assert observed_at(started, dt.date(2026, 11, 26)) == dt.datetime(
        2026, 11, 26, 2, 14, tzinfo=dt.UTC
    )
    assert observed_at(started, dt.date(2026, 12, 17)).date() == dt.date(2026, 12, 17)
    # Two weekly runs audited as of days a week apart are a week apart, whenever they ran.
    week1 = observed_at(started, dt.date(2026, 11, 26))
    week2 = observed_at(started + dt.timedelta(minutes=5), dt.date(2026, 12, 3))
    prev = {("broken_link", "p", "t"): FindingState(week1, week1, 1, Severity.ERROR, None)}
    f = Finding(Check.BROKEN_LINK, Severity.ERROR, "p", "t", "http_404")
    changes = compute_changes([f], prev, now=week2)
    assert changes.still_open[0].days == 7 and changes.still_open[0].since == week1
