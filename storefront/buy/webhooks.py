"""`POST /webhooks/{gateway}`: a gateway tells Kwika what became of a payment.

The signature is checked first, with no I/O (engine/payments/<gateway>.py, constant-time, within
a tolerance): a forged or stale one is 401 and nothing is recorded. A verified event is written to
Postgres (unique per gateway event id) and acted on exactly once before the gateway hears 2xx; a
repeat is answered 200 and changes nothing. If anything fails on the way, the answer is 5xx and
the gateway delivers again later.
"""

from __future__ import annotations

import time

from aiohttp import web

from engine.payments.base import BadSignature, MalformedWebhook
from storefront.api import json_response
from storefront.appkeys import PAYMENTS
from storefront.errors import ApiError
from storefront.gateways import payment_gateways

routes = web.RouteTableDef()
MAX_WEBHOOK_BYTES = 64 * 1024


@routes.post(r"/webhooks/{gateway:[a-z_]{1,30}}")
async def webhook(request: web.Request) -> web.Response:
    payments = request.app[PAYMENTS]
    name = request.match_info["gateway"]
    if name not in payment_gateways(request):
        raise ApiError(404, "unknown_gateway", f"no payment gateway {name!r} here")
    if request.content_length is not None and request.content_length > MAX_WEBHOOK_BYTES:
        raise ApiError(413, "too_large", f"webhook bodies are at most {MAX_WEBHOOK_BYTES} bytes")
    body = await request.content.read(MAX_WEBHOOK_BYTES + 1)
    if len(body) > MAX_WEBHOOK_BYTES:
        raise ApiError(413, "too_large", f"webhook bodies are at most {MAX_WEBHOOK_BYTES} bytes")
    try:
        event = payments.gateways[name].parse_webhook(request.headers, body, request.query, time.time())
    except BadSignature as exc:
        raise ApiError(401, "bad_signature", f"the webhook signature does not verify: {exc}") from None
    except MalformedWebhook as exc:
        raise ApiError(400, "malformed_webhook", f"the webhook is not what {name} sends: {exc}") from None
    outcome = await payments.settle(event, body)
    return json_response({"received": True, "outcome": outcome})
