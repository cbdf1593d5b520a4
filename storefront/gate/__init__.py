"""The gate: scanning, manual check-in, counts, offline lists and staff (`api`), live counts
(`live`) and the scanner pages (`pages`), over engine/checkin/."""

from aiohttp import web

from storefront.gate import live, pages
from storefront.gate.resources import resources


def install(app: web.Application) -> None:
    """The gate's parts and pages (the JSON routes are installed with the API's)."""
    app.cleanup_ctx.append(resources)
    app.router.add_routes(live.routes)
    app.router.add_routes(pages.routes)
