"""reports.html_parts: the report's repeated pieces as Python give what the Jinja2 macros
they replaced gave (the macros are kept here as the specification), for hostile input."""

from __future__ import annotations

from types import SimpleNamespace

from hypothesis import given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from reports import html_parts
from reports.jinja_env import display_url, get_env, safe_href

#: The macros as report.html.j2 had them before reports/html_parts.py (URLs since shown
#: through ``display_url``).
MACROS = """\
{% macro url(u) -%}
{% set h = u|href %}
{% if h %}<a class="url" href="{{ h }}">{{ u|display_url|clip }}</a>{% else %}<span \
class="url nolink" title="Not a web address; not clickable">{{ u|display_url|clip }}</span>\
{% endif %}
{%- endmacro %}
{% macro text(t) -%}<bdi>{{ t|clip }}</bdi>{%- endmacro %}
{% macro badge(sev) -%}<span class="badge {{ sev }}">{{ sev }}</span>{%- endmacro %}
{% macro watched_badge(r) -%}{% if r.watched %} <span class="badge watched" \
title="Watched target">★ watched</span>{% endif %}{%- endmacro %}
{% macro page_cell(url_, title) -%}
{% if title %}<div class="title">{{ text(title) }}</div>{% endif %}
<div>{{ url(url_) }}</div>
{%- endmacro %}
{% macro what(r) -%}
{% if r.message %}<div class="msg">{{ text(r.message) }}</div>{% endif %}
{% if r.detail %}<div><code>{{ r.detail|clip(60) }}</code></div>{% endif %}
{%- endmacro %}
{% macro review(p) -%}
{% if p.review_date %}Reviewed <strong>{{ p.review_date }}</strong>{% if p.age_days is not none \
%} · {{ p.age_days }} days ago{% endif %}{% if p.review_date_source %} · <span class="muted">\
source: {{ text(p.review_date_source) }}</span>{% endif %}{% else %}<span class="muted">\
No review date found</span>{% endif %}
{%- endmacro %}
"""


def _macros():  # the template module: its macros are attributes
    env = get_env().overlay()
    env.filters["href"] = safe_href  # as report.html.j2's macros used it
    env.filters["display_url"] = display_url
    return env.from_string(MACROS).module


# Markup, controls, bidi overrides, lone surrogates, long runs, odd schemes.
_ODD = "\x00\t\n\x7f\x85\u202e\u2066\ud800\ufffeåö\u0645★"
_hostile = st.text(alphabet=st.sampled_from(list("aZ09 /:.#?&=<>\"'`;" + _ODD)), max_size=300)
_urls = st.one_of(
    _hostile,
    st.builds(
        lambda scheme, rest: scheme + rest,
        st.sampled_from(
            [
                "http://",
                "https://",
                "HTTPS://",
                "javascript:",
                "mailto:",
                "data:",
                "//",
                "http://h",
                "https://ex.se/",
            ]
        ),
        _hostile,
    ),
)


@hyp_settings(max_examples=300, deadline=None)
@given(u=_urls, title=st.one_of(st.just(""), _hostile))
def test_url_text_page_cell_equal_the_macros(u: str, title: str) -> None:
    m = _macros()
    assert html_parts.url(u) == str(m.url(u))
    assert html_parts.text(title) == str(m.text(title))
    assert html_parts.page_cell(u, title) == str(m.page_cell(u, title))


@hyp_settings(max_examples=200, deadline=None)
@given(
    message=st.one_of(st.just(""), _hostile),
    detail=st.one_of(st.just(""), st.just("http_404"), _hostile),
    watched=st.booleans(),
    severity=st.sampled_from(["error", "warning", "info", "<b>&"]),
)
def test_row_parts_equal_the_macros(
    message: str, detail: str, watched: bool, severity: str
) -> None:
    m = _macros()
    row = SimpleNamespace(message=message, detail=detail, watched=watched)
    assert html_parts.what(row) == str(m.what(row))
    assert html_parts.watched_badge(row) == str(m.watched_badge(row))
    assert html_parts.badge(severity) == str(m.badge(severity))


@hyp_settings(max_examples=200, deadline=None)
@given(
    review_date=st.sampled_from(["", "2018-03-28", "<2018>"]),
    age_days=st.one_of(st.none(), st.integers(-5, 40_000)),
    source=st.one_of(st.just(""), _hostile),
)
def test_review_equals_the_macro(review_date: str, age_days: int | None, source: str) -> None:
    page = SimpleNamespace(review_date=review_date, age_days=age_days, review_date_source=source)
    assert html_parts.review(page) == str(_macros().review(page))


def test_hostile_url_is_text_and_escaped() -> None:
    out = html_parts.url('javascript:alert("x")<script>')
    assert "href" not in out
    assert "<script>" not in out and "&lt;script&gt;" in out
    link = html_parts.url('https://ex.se/a?b=1&c="2"')
    assert link.startswith('<a class="url" href="https://ex.se/a?b=1&amp;c=&#34;2&#34;">')


def test_urls_are_shown_as_browsers_show_them_and_linked_as_they_are() -> None:
    u = "https://kommun.se/kontakt-och-%C3%B6ppettider?q=a%20b%2Fc#%C3%A5r"
    out = html_parts.url(u)
    assert f'href="{u}"' in out  # the link is the URL itself
    assert ">https://kommun.se/kontakt-och-öppettider?q=a%20b%2Fc#år</a>" in out
    # Invisible or misleading characters, broken UTF-8 and ASCII stay encoded.
    for kept in ("/%E2%80%AEgpj.exe", "/a%E2%80%8Bb", "/a%C2%A0b", "/%FF%C3", "/%3Cinit%3E"):
        assert display_url("https://x.se" + kept) == "https://x.se" + kept
    assert display_url(None) == "" and display_url("https://x.se/%c3%b6") == "https://x.se/ö"
