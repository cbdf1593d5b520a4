"""Accounts JSON API: register, log in and out, who am I, API tokens; admin verifies providers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

import msgspec
from aiohttp import web

from engine.accounts import Credentials, Registration, User
from engine.tokens import NewToken, TokenInfo, TokenRequest, token_expiry
from storefront.api import Api, json_response, path_int
from storefront.appkeys import ACCOUNTS, SESSION
from storefront.auth import SESSION_COOKIE, set_session_cookie, start_session
from storefront.client import client_bucket

api = Api()
TAG = "accounts"


class LoginResult(msgspec.Struct, kw_only=True):
    user: User
    csrf_token: str


class ProviderVerification(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    status: Literal["pending", "verified", "rejected", "suspended"]


@api.post("/api/auth/register", body=Registration, response=User, status=201, tag=TAG,
          summary="Create a buyer or provider account", errors=(400, 409, 415, 422, 429, 503))
async def register(request: web.Request, body: Registration) -> User:
    return await request.app[ACCOUNTS].register(body, ip=client_bucket(request))


@api.post("/api/auth/login", body=Credentials, response=LoginResult, tag=TAG,
          summary="Log in: sets the session cookie; send csrf_token as X-CSRF-Token on writes",
          errors=(400, 401, 415, 422, 429, 503))
async def login(request: web.Request, body: Credentials) -> web.Response:
    accounts = request.app[ACCOUNTS]
    user = await accounts.authenticate(body, ip=client_bucket(request))
    session = await start_session(request, user)
    response = json_response(LoginResult(user=user, csrf_token=session.csrf))
    set_session_cookie(request, response, session)
    return response


@api.post("/api/auth/logout", roles=(), tag=TAG, summary="End the current session", errors=(401, 403))
async def logout(request: web.Request) -> web.Response:
    if (session := request.get(SESSION)) is not None:
        await request.app[ACCOUNTS].close_session(session.id)
    response = web.Response(status=204)
    response.del_cookie(SESSION_COOKIE, path="/")
    return response


@api.get("/api/auth/me", roles=(), response=User, tag=TAG, summary="The caller", errors=(401,),
         scan=True)
async def me(request: web.Request, user: User) -> User:
    return user


@api.get("/api/auth/tokens", roles=(), response=list[TokenInfo], tag=TAG,
         summary="The caller's active API tokens", errors=(401,))
async def list_tokens(request: web.Request, user: User) -> list[TokenInfo]:
    return await request.app[ACCOUNTS].list_tokens(user.id)


@api.post("/api/auth/tokens", roles=(), body=TokenRequest, response=NewToken, status=201, tag=TAG,
          summary="Create an API token (for scanners, integrations); shown once. Scope read "
                  "(default), write or scan; optional expires_at or expires_in_days. Needs a "
                  "login session: tokens cannot make tokens",
          errors=(400, 401, 403, 415, 422), session_only=True)
async def create_token(request: web.Request, user: User, body: TokenRequest) -> NewToken:
    expires_at = token_expiry(body, datetime.now(UTC))
    return await request.app[ACCOUNTS].create_token(user.id, body.name, scope=body.scope,
                                                    expires_at=expires_at)


@api.delete(r"/api/auth/tokens/{token_id:\d+}", roles=(), tag=TAG, summary="Revoke an API token",
            errors=(401, 403, 404))
async def revoke_token(request: web.Request, user: User) -> None:
    await request.app[ACCOUNTS].revoke_token(user.id, path_int(request, "token_id"))


@api.post(r"/api/admin/providers/{provider_id:\d+}/verification", roles=("admin",),
          body=ProviderVerification, tag="admin", summary="Set a provider's verification status",
          errors=(400, 401, 403, 404, 415, 422))
async def verify_provider(request: web.Request, body: ProviderVerification) -> None:
    await request.app[ACCOUNTS].set_provider_status(path_int(request, "provider_id"), body.status)
