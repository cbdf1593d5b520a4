"""One typed settings object, decoded from the environment.

Every external address and secret is a setting so tests can point it at local servers.
Secrets are `Secret` values whose repr never shows the value.
"""

from __future__ import annotations

import os
import secrets as _secrets
from collections.abc import Mapping
from typing import Any

import msgspec


class Secret(str):
    """A string that never shows its value in repr/str formatting of the settings."""

    def __repr__(self) -> str:
        return "Secret('**********')" if self else "Secret('')"


class SettingsError(ValueError):
    """A configuration variable is malformed; the message names the variable."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    redis_url: str | None = None
    database_url: str | None = None
    data_dir: str = ".kwika"
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    secret_key: str = ""
    redis_prefix: str = "kw"
    redis_max_connections: int = 1000
    db_pool_min: int = 1
    db_pool_max: int = 20
    max_body_bytes: int = 1_048_576
    session_ttl_seconds: int = 14 * 24 * 3600
    hold_ttl_seconds: int = 900
    cookie_secure: bool = False
    log_level: str = "INFO"
    log_json: bool = True
    public_url: str = "http://127.0.0.1:8080"
    argon2_memory_kib: int = 65_536
    argon2_time_cost: int = 3

    def __repr__(self) -> str:  # never print the secret key
        fields = {f: getattr(self, f) for f in self.__struct_fields__}
        fields["secret_key"] = "**********" if self.secret_key else ""
        for url_field in ("redis_url", "database_url"):
            fields[url_field] = redact_url(fields[url_field])
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in fields.items()) + ")"

    __str__ = __repr__


# environment variable -> settings field
ENV_VARS: dict[str, str] = {
    "REDIS_URL": "redis_url",
    "DATABASE_URL": "database_url",
    "KWIKA_DATA_DIR": "data_dir",
    "KWIKA_HOST": "host",
    "KWIKA_PORT": "port",
    "KWIKA_WORKERS": "workers",
    "KWIKA_SECRET_KEY": "secret_key",
    "KWIKA_REDIS_PREFIX": "redis_prefix",
    "KWIKA_REDIS_MAX_CONNECTIONS": "redis_max_connections",
    "KWIKA_DB_POOL_MIN": "db_pool_min",
    "KWIKA_DB_POOL_MAX": "db_pool_max",
    "KWIKA_MAX_BODY_BYTES": "max_body_bytes",
    "KWIKA_SESSION_TTL": "session_ttl_seconds",
    "KWIKA_HOLD_TTL": "hold_ttl_seconds",
    "KWIKA_COOKIE_SECURE": "cookie_secure",
    "KWIKA_LOG_LEVEL": "log_level",
    "KWIKA_LOG_JSON": "log_json",
    "KWIKA_PUBLIC_URL": "public_url",
    "KWIKA_ARGON2_MEMORY_KIB": "argon2_memory_kib",
    "KWIKA_ARGON2_TIME_COST": "argon2_time_cost",
}
_FIELD_TO_ENV = {v: k for k, v in ENV_VARS.items()}

_BOUNDS: dict[str, tuple[int, int]] = {
    "port": (0, 65535),
    "workers": (1, 64),
    "redis_max_connections": (1, 100_000),
    "db_pool_min": (0, 1000),
    "db_pool_max": (1, 1000),
    "max_body_bytes": (1024, 100 * 1_048_576),
    "session_ttl_seconds": (60, 365 * 24 * 3600),
    "hold_ttl_seconds": (10, 24 * 3600),
    "argon2_memory_kib": (1024, 4 * 1_048_576),
    "argon2_time_cost": (1, 20),
}


def redact_url(url: str | None) -> str | None:
    """`redis://:pw@host` -> `redis://:***@host`, so URLs can be logged."""
    if not url or "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Decode settings from `env` (default: os.environ); `overrides` win over the environment.

    Raises SettingsError naming the variable when a value is malformed.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    for var, field in ENV_VARS.items():
        value = env.get(var)
        if value is not None and value != "":
            raw[field] = value
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc))) from None
    for field, (lo, hi) in _BOUNDS.items():
        value = getattr(settings, field)
        if not lo <= value <= hi:
            raise SettingsError(f"{_FIELD_TO_ENV[field]}={value} is out of range [{lo}, {hi}]")
    if settings.db_pool_min > settings.db_pool_max:
        raise SettingsError("KWIKA_DB_POOL_MIN must not exceed KWIKA_DB_POOL_MAX")
    if not settings.secret_key:
        # Development default: random per process start unless configured. Sessions do not
        # survive a restart, which is the safe failure; production sets KWIKA_SECRET_KEY.
        settings = msgspec.structs.replace(settings, secret_key=_secrets.token_urlsafe(32))
    elif len(settings.secret_key) < 16:
        raise SettingsError("KWIKA_SECRET_KEY must be at least 16 characters")
    return settings


def _explain(message: str) -> str:
    # msgspec says e.g. "Expected `int`, got `str` - at `$.port`"
    if "- at `$." in message:
        text, path = message.rsplit(" - at `$.", 1)
        field = path.rstrip("`").split(".")[0].split("[")[0]
        var = _FIELD_TO_ENV.get(field, field)
        return f"{var} is malformed: {text}"
    return f"configuration is malformed: {message}"
