"""The demo's second week: the same site a week later, one problem fixed, one new.

Week 1 is the site as ``demo.routes`` serves it, audited ``--as-of`` ``AS_OF``. Week 2
(``python -m demo.run --week 2``, or ``make demo`` again once week 1 is in the history):

- **fixed**: the Harstad visit report (``harstad-besok-2019.html``) is published, so the
  broken internal link on ``harstad.html`` works;
- **new**: audited ``--as-of`` a week later, ``guanajuato.html`` (reviewed 2025-12-01, 360
  days old in week 1) passes the 365-day limit and becomes a stale page.

Everything else is unchanged, so the email shows one new, one fixed and the rest still
open ("since last week"), and the admin's trend chart has two points.
"""

from __future__ import annotations

import datetime as dt

from demo.routes import AS_OF, DemoServers, _page
from demo.server import Route

WEEK2_AS_OF = AS_OF + dt.timedelta(days=7)
AS_OF_BY_WEEK = {1: AS_OF, 2: WEEK2_AS_OF}
#: The page published in week 2 (the week-1 broken link's target).
PUBLISHED = "/internationellt/harstad-besok-2019.html"
#: The page that turns stale in week 2.
AGING = "/internationellt/guanajuato.html"


def week2(demo: DemoServers) -> None:
    """Turn the running week-1 servers into week 2."""
    body = _page(
        "Vänortsbesöket i Harstad 2019",
        "<p>Rapport från besöket.</p><p>Senast granskad: 2026-11-30</p>",
    )
    demo.main.add_route(PUBLISHED, Route(body=body))
