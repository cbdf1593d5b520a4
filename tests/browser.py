"""Driving pages in real headless Chromium (Debian's /usr/bin/chromium, no browser download).
The fixtures `browser`, `console` and `page` (tests/conftest.py) use these; a page test module
sets `pytestmark = BROWSER_MARKS`.

Every `page` fails its test on any JavaScript error, console error or Content-Security-Policy
violation, unless the test `allow`s it on `console`.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]

# the marks of a page test module: `pytestmark = BROWSER_MARKS`
BROWSER_MARKS = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason=f"page tests need Chromium at {CHROMIUM} (apt-get install chromium)"),
]


# Chromium reports a CSP violation on the console; this makes sure each one is seen, whatever
# the browser version prints, by logging the violation event itself as an error.
REPORT_CSP_VIOLATIONS = """
document.addEventListener("securitypolicyviolation", (e) => console.error(
  `CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || "inline code"}`));
"""


class Console:
    """What a page reported: JavaScript errors, console errors and CSP violations. The browser
    also logs a page's own 4xx status as an error; a test that navigates to an error page asserts
    that status itself, so those are not counted. A test that expects something else says so
    with `allow`; anything left fails it."""

    def __init__(self) -> None:
        self.errors: list[tuple[str, str]] = []  # (text, url)
        self.error_documents: set[str] = set()  # pages (not resources) answered with 4xx/5xx
        self._allowed: list[re.Pattern[str]] = []

    def allow(self, pattern: str) -> None:
        self._allowed.append(re.compile(pattern))

    def on_console(self, msg: Any) -> None:
        if msg.type in ("error", "assert"):
            self.errors.append((f"console.{msg.type}: {msg.text}", msg.location.get("url", "")))

    def on_response(self, response: Any) -> None:
        if response.status >= 400 and response.request.resource_type == "document":
            self.error_documents.add(response.url)

    def unexpected(self) -> list[str]:
        return [f"{text} at {url}" for text, url in self.errors
                if not (text.startswith("console.error: Failed to load resource")
                        and url in self.error_documents)
                and not any(p.search(text) for p in self._allowed)]


# --- accessibility and screenshots -------------------------------------------------------------
SCREENSHOTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "screenshots"
WIDTHS = {"desktop": 1280, "phone": 390}


async def check_axe(page: Any, context: str | None = None) -> None:
    """Run axe-core (bundled by axe-playwright-python) on `page`; fail listing every serious or
    critical violation. axe is injected through the DevTools protocol, which the page's CSP does
    not apply to, so nothing is loaded from elsewhere."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page, context=context)
    bad = [v for v in results.response["violations"] if v.get("impact") in ("serious", "critical")]
    if bad:
        lines = [f"{v['id']} ({v['impact']}): {v['help']} -> " + "; ".join(
            n["target"][0] if isinstance(n["target"][0], str) else str(n["target"])
            for n in v["nodes"][:5]) for v in bad]
        raise AssertionError("axe-core found accessibility violations:\n" + "\n".join(lines))


async def screenshots(page: Any, name: str) -> list[Path]:
    """Save full-page screenshots of `page` at 1280 and 390 px wide under test-artifacts/, and
    put the viewport back as it was."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    saved = []
    for label, width in WIDTHS.items():
        await page.set_viewport_size({"width": width, "height": 900 if width > 600 else 844})
        path = SCREENSHOTS / f"{name}-{label}-{width}.png"
        await page.screenshot(path=str(path), full_page=True)
        saved.append(path)
    if before:
        await page.set_viewport_size(before)
    return saved
