"""My tickets: a buyer's tickets after the sale (QR codes, PDF, resend, transfer), as pages
(`pages`) and JSON (`api`), over the shared steps of `tickets`."""

from aiohttp import web

from storefront.mytickets import pages
from storefront.mytickets.tickets import resources


def install(app: web.Application) -> None:
    """The pages and the resources they need (the JSON routes are installed with the API's)."""
    app.cleanup_ctx.append(resources)
    app.router.add_routes(pages.routes)
