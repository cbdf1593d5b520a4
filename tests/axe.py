"""Accessibility of a page with axe-core (the `axe-playwright-python` package, which ships
axe.min.js and injects it through the DevTools protocol, so the page's CSP does not stop it)."""

from __future__ import annotations

from typing import Any

BLOCKING = ("serious", "critical")


async def check_axe(page: Any) -> None:
    """Fail when axe-core finds a serious or critical violation on the page as it is now."""
    from axe_playwright_python.async_playwright import Axe

    results = await Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in BLOCKING]
    assert not bad, f"accessibility violations on {page.url}:\n" + "\n".join(
        f"- {v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(" ".join(n["target"]) for n in v["nodes"][:5]) for v in bad)
