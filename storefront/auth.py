"""Who is asking, and may they: the one authorization layer of every route.

Identity comes from a Bearer API token or a signed session cookie. A token acts within its scope
(`token_allows`): `write` anything its user's role allows, `read` only reads (GET, HEAD, OPTIONS),
`scan` only the routes declared open to scanners (`scan=True`, e.g. GET /api/auth/me); anything
else is 403 `insufficient_scope`, checked here before any route runs. Expired tokens are 401.
Routes declared `session_only` (making API tokens) refuse tokens altogether. CSRF: a request that rides on
the session cookie and changes something must carry the session's CSRF token (header
`X-CSRF-Token` or form field `csrf_token`); anonymous form posts (log in, register) carry a token
bound to a signed `kwika_csrf` cookie. Token-authenticated calls carry no ambient authority and need
no CSRF token; anonymous JSON bodies are only accepted as `application/json`, which a cross-site
form cannot send without a CORS preflight.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from engine.accounts import Session, User
from engine.signing import sign, unsign
from storefront.appkeys import (
    ACCOUNTS,
    AUTH,
    CSRF_ANCHOR,
    SESSION,
    SET_CSRF_COOKIE,
    SETTINGS,
    TOKEN_SCOPE,
    USER,
)
from storefront.errors import ApiError
from storefront.forms import read_form

SESSION_COOKIE = "kwika_session"
GUEST_COOKIE = "kwika_guest"  # storefront/buyer.py mints it
CSRF_COOKIE = "kwika_csrf"
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
READS = frozenset({"GET", "HEAD", "OPTIONS"})
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
HOT_TOKEN_SECONDS = 2.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _anon_csrf(request: web.Request, anchor: str) -> str:
    secret = request.app[SETTINGS].secret_key
    return hmac.new(secret.encode(), f"csrf:{anchor}".encode(), hashlib.sha256).hexdigest()


def csrf_token(request: web.Request) -> str:
    """The CSRF token forms of this request must carry (sets the anonymous cookie if needed)."""
    session: Session | None = request.get(SESSION)
    if session is not None:
        return session.csrf
    anchor = request.get(CSRF_ANCHOR)
    if anchor is None:
        anchor = secrets.token_urlsafe(18)
        request[CSRF_ANCHOR] = anchor
        request[SET_CSRF_COOKIE] = True
    return _anon_csrf(request, anchor)


@web.middleware
async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Resolve the caller (token or session), then enforce CSRF on state-changing requests."""
    if getattr(request.match_info.handler, "kwika_own_auth", False):
        return await handler(request)  # a foreign protocol with its own keys (the sandbox API)
    settings = request.app[SETTINGS]
    accounts = request.app[ACCOUNTS]
    authorization = request.headers.get("Authorization", "")
    if authorization:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise ApiError(401, "unauthenticated", "Authorization must be 'Bearer <token>'")
        # a hot route (the gate's scan) keeps the token's grant in this process for a moment:
        # two Redis round trips fewer a scan; a revocation reaches other processes within
        # HOT_TOKEN_SECONDS (at once in the process that made it)
        hot = getattr(request.match_info.handler, "kwika_hot", False)
        found = await accounts.user_for_token(
            token.strip(), local_seconds=HOT_TOKEN_SECONDS if hot else 0)
        if found is None:
            raise ApiError(401, "unauthenticated", "the API token is unknown or revoked")
        user, scope = found
        scan_route = getattr(request.match_info.handler, "kwika_scan", False)
        if not token_allows(scope, request.method, scan_route):
            raise ApiError(403, "insufficient_scope", f"this API token's scope ({scope}) does "
                           f"not allow {request.method} {request.path}")
        request[USER], request[AUTH], request[TOKEN_SCOPE] = user, "token", scope
    elif ((cookie := request.cookies.get(SESSION_COOKIE))
          and (sid := unsign(settings.secret_key, "session", cookie))):
        found = await accounts.user_for_session(sid)
        if found is not None:
            request[SESSION], request[USER] = found
            request[AUTH] = "session"
    if (anon := request.cookies.get(CSRF_COOKIE)) and (anchor := unsign(settings.secret_key, "csrf", anon)):
        request[CSRF_ANCHOR] = anchor
    if request.method in UNSAFE and request.get(AUTH) != "token":
        await _check_csrf(request)
    response = await handler(request)
    if request.get(SET_CSRF_COOKIE):
        response.set_cookie(CSRF_COOKIE, sign(settings.secret_key, "csrf", request[CSRF_ANCHOR]),
                            httponly=True, samesite="Lax", secure=settings.cookie_secure, path="/")
    return response


async def _check_csrf(request: web.Request) -> None:
    is_form = request.content_type in FORM_TYPES
    # anonymous JSON needs no token: JSON cannot be sent cross-site without a CORS preflight. A
    # guest's cookie is ambient authority too, so a bodiless or text/plain write riding on it (a
    # same-site page's plain POST) needs the anonymous CSRF token, like a form.
    if (request.get(SESSION) is None and not is_form
            and (request.content_type == "application/json" or GUEST_COOKIE not in request.cookies)):
        return
    sent = request.headers.get("X-CSRF-Token")
    if sent is None and is_form:
        sent = (await read_form(request)).get("csrf_token")
    if request.get(SESSION) is not None:
        expected = request[SESSION].csrf
    elif request.get(CSRF_ANCHOR):
        expected = _anon_csrf(request, request[CSRF_ANCHOR])
    else:
        expected = None
    if (not isinstance(sent, str) or expected is None or not sent.isascii()
            or not hmac.compare_digest(sent.encode(), expected.encode())):
        raise ApiError(403, "csrf_failed",
                       "the form's CSRF token is missing or stale; reload the page and try again")


def token_allows(scope: str, method: str, scan_route: bool) -> bool:
    """Whether a token of `scope` may send `method` to a route (`scan_route`: open to scanners)."""
    if scope == "write":
        return True
    if scope == "read":
        return method in READS
    return scope == "scan" and scan_route


def require(request: web.Request, roles: tuple[str, ...], *, session_only: bool = False) -> User:
    """The caller, when they hold one of `roles` (and, with `session_only`, came with a login
    session rather than an API token); 401 when anonymous, 403 when not allowed."""
    user: User | None = request.get(USER)
    if user is None:
        raise ApiError(401, "unauthenticated", "log in or send an API token")
    if roles and user.role not in roles:
        raise ApiError(403, "forbidden", f"this needs the role {' or '.join(roles)}")
    if session_only and request.get(AUTH) != "session":
        raise ApiError(403, "session_required", "this needs a login session; an API token "
                       "cannot do it (tokens cannot make tokens)")
    return user


def provider_scope(user: User) -> int | None:
    """The provider id whose events `user` may change; None means any (admins)."""
    if user.role == "admin":
        return None
    if user.provider_id is None:
        raise ApiError(403, "forbidden", "this account has no provider profile")
    return user.provider_id


def set_session_cookie(request: web.Request, response: web.StreamResponse, session: Session) -> None:
    settings = request.app[SETTINGS]
    response.set_cookie(SESSION_COOKIE, sign(settings.secret_key, "session", session.id),
                        httponly=True, samesite="Lax", secure=settings.cookie_secure, path="/",
                        max_age=settings.session_ttl_seconds)


async def start_session(request: web.Request, user: User) -> Session:
    """A new login session for `user`, ending the request's old one: a fresh id at every login
    (no session fixation). The caller sets the cookie with `set_session_cookie`."""
    accounts = request.app[ACCOUNTS]
    if (old := request.get(SESSION)) is not None:
        await accounts.close_session(old.id)
    return await accounts.open_session(user.id)
