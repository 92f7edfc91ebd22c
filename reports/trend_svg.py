"""The trend chart: open errors and warnings per run (week) as an inline SVG, made on the
server (no script, no style attribute: colours are presentation attributes, so the strict
Content-Security-Policy of ``sitewatch web`` allows it).

Pure: points in, markup out. Every label is escaped; the result is safe to insert as is.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

WIDTH, HEIGHT = 640, 220
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 12, 14, 34
SERIES = (("errors", "#b42318"), ("warnings", "#b07a00"))


@dataclass(frozen=True, slots=True)
class Point:
    """One run: its label (e.g. "v.48") and counts."""

    label: str
    errors: int
    warnings: int


def _ticks(top: int) -> list[int]:
    """Up to five round values from 0 to at least ``top``."""
    step = 1
    for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000):
        step = s
        if top / s <= 4:
            break
    else:
        step = max(1, -(-top // 4))
    return list(range(0, top + step, step)) if top else [0]


#: The widest a character of the axis labels (11 px type) is taken to be, and the space
#: kept between two labels.
_CHAR_W, _LABEL_GAP = 7, 8


def _axis_labels(n: int, plot_w: int, chars: int) -> list[tuple[int, str]]:
    """(index, text-anchor) of the runs labelled under the axis, for labels of up to
    ``chars`` characters: spread so they do not touch, the newest run always, right-aligned
    so it stays inside the chart (a label that would touch it is left out)."""
    if n <= 1:
        return [(0, "middle")] if n else []
    width = _CHAR_W * chars
    gap = plot_w / (n - 1)
    every = max(1, math.ceil(n / 8), math.ceil((width + _LABEL_GAP) / gap))
    last = n - 1
    room = 1.5 * width + _LABEL_GAP  # half a centred label and a whole right-aligned one
    shown = [i for i in range(0, last, every) if (last - i) * gap >= room]
    return [(i, "middle") for i in shown] + [(last, "end")]


def trend_svg(points: Sequence[Point], *, title: str, legend: Sequence[str]) -> str:
    """An SVG line chart of ``points`` (oldest first); ``legend``: names of the two series."""
    plot_w, plot_h = WIDTH - _LEFT - _RIGHT, HEIGHT - _TOP - _BOTTOM
    top = max([1, *(max(p.errors, p.warnings) for p in points)])
    ticks = _ticks(top)
    ymax = ticks[-1] or 1
    n = len(points)

    def x(i: int) -> float:
        return _LEFT + (plot_w / 2 if n == 1 else plot_w * i / (n - 1))

    def y(v: int) -> float:
        return _TOP + plot_h - plot_h * v / ymax

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="trend" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
    ]
    for t in ticks:
        out.append(
            f'<line x1="{_LEFT}" x2="{WIDTH - _RIGHT}" y1="{y(t):.1f}" y2="{y(t):.1f}" '
            'stroke="#e4e7eb" stroke-width="1"/>'
            f'<text x="{_LEFT - 6}" y="{y(t) + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="#52606d">{t}</text>'
        )
    chars = max((len(p.label[:12]) for p in points), default=0)
    for i, anchor in _axis_labels(n, plot_w, chars):
        out.append(
            f'<text x="{x(i):.1f}" y="{HEIGHT - _BOTTOM + 16}" text-anchor="{anchor}" '
            f'font-size="11" fill="#52606d">{escape(points[i].label[:12])}</text>'
        )
    for (name, colour), label in zip(SERIES, legend, strict=True):
        values = [getattr(p, name) for p in points]
        if n > 1:
            path = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
            out.append(
                f'<polyline class="line-{name}" fill="none" stroke="{colour}" '
                f'stroke-width="2" points="{path}"/>'
            )
        for i, v in enumerate(values):
            out.append(
                f'<circle class="pt pt-{name}" cx="{x(i):.1f}" cy="{y(v):.1f}" r="3.5" '
                f'fill="{colour}"><title>{escape(points[i].label)}: {v} '
                f"{escape(label)}</title></circle>"
            )
    lx = _LEFT
    for (_name, colour), label in zip(SERIES, legend, strict=True):
        out.append(
            f'<rect x="{lx}" y="{HEIGHT - 12}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{HEIGHT - 3}" font-size="11" fill="#1f2933">'
            f"{escape(label)}</text>"
        )
        lx += 24 + 7 * len(label)
    out.append("</svg>")
    return "".join(out)
