"""`/metrics` in the Prometheus text format, and the middleware that times every request.

Who may read it: an admin (session or API token), a caller whose bearer token equals
KWIKA_METRICS_TOKEN (compared in constant time), or, only while no token is set, a caller on the
loopback interface whose request came through no proxy (no X-Forwarded-For). Everyone else is
refused (401 without credentials, 403 with the wrong ones).

The counters come from engine/metrics.py (summed over every server process). The gauges that
describe shared state are read from Redis when scraped, never on a request's path: waiting-room
queue lengths and live passes of the rooms that are on, the length of every orders and check-in
stream and the pending and undelivered entries of their consumer groups, and the dead letters.
"""

from __future__ import annotations

import hmac
import ipaddress
import time

import redis.asyncio as redis
from aiohttp import web
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from engine import metrics
from engine.keys import Keys
from engine.signing import unsign
from storefront.appkeys import ACCOUNTS, KEYS, REDIS, SETTINGS
from storefront.auth import SESSION_COOKIE
from storefront.errors import ApiError

UNMATCHED = "unmatched"  # every path no route serves: one label, whatever was asked


def route_label(request: web.Request) -> str:
    """The route's template (`/api/events/{event_id}/holds`), never the raw path."""
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


@web.middleware
async def metrics_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Time each request into the latency histogram by route template, method, status class."""
    started = time.perf_counter()
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        metrics.REQUEST_SECONDS.labels(route_label(request), request.method,
                                       f"{status // 100}xx").observe(time.perf_counter() - started)


def _loopback(request: web.Request) -> bool:
    if "X-Forwarded-For" in request.headers or not request.remote:
        return False
    try:
        return ipaddress.ip_address(request.remote).is_loopback
    except ValueError:
        return False


async def _allowed(request: web.Request) -> bool:
    """True when the caller may read the metrics; ApiError(401) when it did not say who it is."""
    expected = request.app[SETTINGS].metrics_token
    accounts = request.app[ACCOUNTS]
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return True
        found = await accounts.user_for_token(token)
        return found is not None and found[0].role == "admin"
    if request.cookies.get(SESSION_COOKIE):
        sid = unsign(request.app[SETTINGS].secret_key, "session", request.cookies[SESSION_COOKIE])
        found = await accounts.user_for_session(sid) if sid else None
        if found is not None and found[1].role == "admin":
            return True
    if not expected and _loopback(request):
        return True
    if request.headers.get("Authorization") or request.cookies.get(SESSION_COOKIE):
        return False
    raise ApiError(401, "unauthenticated", "the metrics need an admin, or the metrics token")


async def _group_figures(client: redis.Redis, key: str) -> list[tuple[str, int, int | None]]:
    """(group, pending, undelivered) of each consumer group of one stream; none if no stream."""
    try:
        groups = await client.xinfo_groups(key)
    except redis.ResponseError:  # no such stream (yet)
        return []
    out = []
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"])
        lag = g.get("lag")
        out.append((name, int(g.get("pending") or 0), None if lag is None else int(lag)))
    return out


def _ids(members) -> list[int]:
    return sorted(int(m) for m in members)


async def read_gauges(client: redis.Redis, keys: Keys) -> list[GaugeMetricFamily]:
    """The gauges of shared state, read from Redis now (a handful of reads per event)."""
    queued = GaugeMetricFamily("kwika_room_queued", "Visitors waiting in a room that is on",
                               labels=["event"])
    passes = GaugeMetricFamily("kwika_room_passes", "Admitted visitors holding a pass",
                               labels=["event"])
    for event_id in _ids(await client.smembers(keys.rooms_on())):
        room = keys.room(event_id)
        queued.add_metric([str(event_id)], await client.zcard(room[1]))
        passes.add_metric([str(event_id)], await client.hlen(room[3]))
    pending = GaugeMetricFamily("kwika_stream_pending",
                                "Entries delivered to a consumer group and not yet acknowledged",
                                labels=["stream", "event", "group"])
    undelivered = GaugeMetricFamily("kwika_stream_undelivered",
                                    "Entries a consumer group has not been given yet (its lag)",
                                    labels=["stream", "event", "group"])
    streams = (("orders", _ids(await client.sunion(keys.events_on_sale(), keys.selling()))),
               ("checkins", _ids(await client.smembers(keys.checkin_events()))))
    length = GaugeMetricFamily("kwika_stream_length",
                               "Entries in a stream (trimmed below what its groups acknowledged)",
                               labels=["stream", "event"])
    for stream, event_ids in streams:
        for event_id in event_ids:
            key = keys.event(event_id, stream)
            length.add_metric([stream, str(event_id)], await client.xlen(key))
            for group, n_pending, lag in await _group_figures(client, key):
                labels = [stream, str(event_id), group]
                pending.add_metric(labels, n_pending)
                if lag is not None:
                    undelivered.add_metric(labels, lag)
    dead = GaugeMetricFamily("kwika_dead_letters",
                             "Stream entries fulfillment gave up on (orders and check-ins)")
    dead.add_metric([], await client.xlen(keys.dead_letters()))
    return [queued, passes, length, pending, undelivered, dead]


class _Families:
    def __init__(self, families: list[GaugeMetricFamily]):
        self.families = families

    def collect(self):
        return self.families


async def metrics_view(request: web.Request) -> web.Response:
    if not await _allowed(request):
        raise ApiError(403, "forbidden", "the metrics are for admins and the metrics token only")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Families(await read_gauges(request.app[REDIS], request.app[KEYS])))
    body = metrics.exposition() + generate_latest(registry)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    response.headers["Cache-Control"] = "no-store"
    return response


metrics_view.kwika_own_auth = True  # type: ignore[attr-defined]  # a token of its own, too


def install(app: web.Application) -> None:
    app.router.add_get("/metrics", metrics_view, name="metrics")
