"""Open a page in the system's headless Chromium (Debian's /usr/bin/chromium) via Playwright.

``open_in_chromium(path_or_url, screenshot)`` loads the page with JavaScript enabled,
records what an attacker would want to happen (page errors, alert/confirm/prompt dialogs,
console output, requests leaving the page, a ``window.__pwned`` flag) and measures the
layout, then saves a full-page screenshot. No browser is ever downloaded: Playwright only
drives the installed Chromium (never run ``playwright install`` here).

Tests using it carry ``pytestmark = BROWSER`` and skip with a clear reason when Chromium or
Playwright is missing.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}

_missing = (
    f"{CHROMIUM} is missing (apt-get install chromium)"
    if not CHROMIUM.exists()
    else "the playwright package is missing (pip install -e '.[dev]')"
    if importlib.util.find_spec("playwright") is None
    else ""
)
#: Marks for browser tests: ``pytestmark = BROWSER``.
BROWSER = [
    pytest.mark.browser,
    pytest.mark.skipif(bool(_missing), reason=f"browser test skipped: {_missing}"),
]

# Runs in the page after load: what the layout and the DOM look like.
_DOM_INFO_JS = """
() => {
  const doc = document.documentElement;
  let widest = 0, widestEl = '';
  for (const el of document.querySelectorAll('body *')) {
    const w = el.getBoundingClientRect().width;
    if (w > widest) {
      widest = w;
      widestEl = el.tagName.toLowerCase() + (el.className ? '.' + el.className : '');
    }
  }
  const tables = [...document.querySelectorAll('table')].map(t => t.getBoundingClientRect().width);
  const onAttrs = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      const name = a.name.toLowerCase();
      if (name.startsWith('on')) onAttrs.push(el.tagName.toLowerCase() + '@' + name);
    }
  }
  const links = [...document.querySelectorAll('a[href]')];
  return {
    viewport_width: doc.clientWidth,
    scroll_width: doc.scrollWidth,
    widest_element: widest,
    widest_element_name: widestEl,
    table_widths: tables,
    main_width: (document.querySelector('main') || document.body).getBoundingClientRect().width,
    scripts: document.querySelectorAll('script').length,
    embeds: document.querySelectorAll('iframe, frame, object, embed').length,
    images: document.querySelectorAll('img').length,
    on_attributes: onAttrs,
    javascript_links: document.querySelectorAll('a[href^="javascript:" i]').length,
    link_protocols: [...new Set(links.map(a => a.protocol))],
    non_web_hrefs: links.map(a => a.getAttribute('href'))
      .filter(h => !h.startsWith('#') && !/^https?:\\/\\//i.test(h)),
    link_count: links.length,
    pwned: typeof window.__pwned !== 'undefined',
    title: document.title,
    text: document.body ? document.body.innerText : '',
  };
}
"""


@dataclass
class BrowserResult:
    #: Uncaught page errors (JavaScript exceptions).
    errors: list[str] = field(default_factory=list)
    #: alert/confirm/prompt/beforeunload dialogs that opened (each dismissed).
    dialogs: list[str] = field(default_factory=list)
    #: Console messages, "type: text".
    console: list[str] = field(default_factory=list)
    #: Layout and DOM facts measured after load (see _DOM_INFO_JS).
    dom_info: dict[str, Any] = field(default_factory=dict)
    #: URLs the page tried to fetch besides itself (all blocked).
    requests: list[str] = field(default_factory=list)


def open_in_chromium(
    path_or_url: str | Path,
    screenshot: Path,
    *,
    timeout_ms: int = 60_000,
    settle_ms: int = 300,
    extra_js: dict[str, str] | None = None,
) -> BrowserResult:
    """Load ``path_or_url`` (a file, served from a loopback server, or a URL) in headless
    Chromium and observe it.

    Every request other than the page itself is aborted and recorded in ``requests`` (a
    report must be self-contained; a request would also leak to whoever planted it).
    ``extra_js`` maps names to JavaScript expressions whose values are added to
    ``dom_info`` (e.g. the text of a particular row).
    """
    if isinstance(path_or_url, Path):
        from demo.server import SiteServer

        path = path_or_url.resolve()
        with SiteServer("127.0.0.1", root=path.parent, name="report") as server:
            return open_in_chromium(
                server.url("/" + path.name),
                screenshot,
                timeout_ms=timeout_ms,
                settle_ms=settle_ms,
                extra_js=extra_js,
            )
    from playwright.sync_api import sync_playwright

    url = str(path_or_url)
    result = BrowserResult()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = browser.new_context(viewport=VIEWPORT, java_script_enabled=True)
            page = context.new_page()
            page.set_default_timeout(timeout_ms)
            page.on("pageerror", lambda exc: result.errors.append(str(exc)))
            page.on("console", lambda msg: result.console.append(f"{msg.type}: {msg.text}"))

            def on_dialog(dialog: Any) -> None:
                result.dialogs.append(f"{dialog.type}: {dialog.message}")
                dialog.dismiss()

            page.on("dialog", on_dialog)

            def route(r: Any) -> None:
                if r.request.url.split("#", 1)[0] == url.split("#", 1)[0]:
                    r.continue_()
                else:
                    result.requests.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            page.goto(url, wait_until="load")
            page.wait_for_timeout(settle_ms)  # let any timer-based payload fire
            result.dom_info = page.evaluate(_DOM_INFO_JS)
            for name, expression in (extra_js or {}).items():
                result.dom_info[name] = page.evaluate(expression)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
            context.close()
        finally:
            browser.close()
    return result


def assert_inert(result: BrowserResult, *, margin: int = 64, max_element: int = 3000) -> None:
    """Nothing ran, nothing is clickable that should not be, nothing broke the layout."""
    info = result.dom_info
    assert not info["pwned"], "window.__pwned was set: a script ran"
    assert result.dialogs == [], result.dialogs
    assert result.errors == [], result.errors
    assert result.requests == [], f"the report tried to load {result.requests[:5]}"
    assert info["scripts"] == 0, "the report contains <script> elements"
    assert info["embeds"] == 0, "the report contains frames or embedded objects"
    assert info["on_attributes"] == [], info["on_attributes"][:10]
    assert info["javascript_links"] == 0
    assert set(info["link_protocols"]) <= {"http:", "https:"}, info["link_protocols"]
    assert info["non_web_hrefs"] == [], info["non_web_hrefs"][:10]
    limit = info["viewport_width"] + margin
    assert info["scroll_width"] <= limit, f"page scrolls sideways: {info['scroll_width']} px"
    assert max(info["table_widths"] or [0]) <= limit, info["table_widths"]
    assert info["widest_element"] <= max_element, (
        f"{info['widest_element_name']} is {info['widest_element']} px wide"
    )
