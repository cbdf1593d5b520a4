"""Typed application keys: what the app factory puts in the app, and its type."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import asyncpg
import jinja2
import redis.asyncio as redis
from aiohttp import web

from engine.accounts import Accounts, Session, User
from engine.catalog import Catalog
from engine.inventory import Inventory
from engine.keys import Keys
from engine.orders import Orders
from engine.payments.service import Payments
from engine.settings import Settings
from storefront.event_cache import DetailCache, EventCache

SETTINGS = web.AppKey("settings", Settings)
REDIS = web.AppKey("redis", redis.Redis)
DB = web.AppKey("db", asyncpg.Pool)
KEYS = web.AppKey("keys", Keys)
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
CATALOG = web.AppKey("catalog", Catalog)
ACCOUNTS = web.AppKey("accounts", Accounts)
TEMPLATES = web.AppKey("templates", jinja2.Environment)
INVENTORY = web.AppKey("inventory", Inventory)
EVENT_CACHE = web.AppKey("event_cache", EventCache)
DETAILS = web.AppKey("event_details", DetailCache)
BACKGROUND = web.AppKey("background", dict)  # name -> asyncio.Task, watched by /readyz
ORDERS = web.AppKey("orders", Orders)
PAYMENTS = web.AppKey("payments", Payments)
GATEWAYS = web.AppKey("gateways", dict)  # name -> engine.payments.base.Gateway
SEAT_STATES = web.AppKey("seat_states", dict)  # event id -> (fresh until, Availability)

# per-request storage, filled by the auth middleware
USER = web.RequestKey("user", User)  # absent or None when anonymous
SESSION = web.RequestKey("session", Session)
AUTH = web.RequestKey("auth", str)  # "token" or "session"
TOKEN_SCOPE = web.RequestKey("token_scope", str)  # "read", "write" or "scan" when AUTH is "token"
CSRF_ANCHOR = web.RequestKey("csrf_anchor", str)
SET_CSRF_COOKIE = web.RequestKey("set_csrf_cookie", bool)
