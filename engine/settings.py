"""One typed settings object, decoded from the environment.

Every external address and secret is a setting so tests can point it at local servers.
Secrets are `Secret` values whose repr never shows the value.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import re
import secrets as _secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import msgspec

from engine.keys import PREFIX
from engine.tickets.keyring import Keyring, KeyringError


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
    public_url: str | None = None  # None: the address each request was served on
    argon2_memory_kib: int = 65_536
    argon2_time_cost: int = 3
    # comma-separated addresses or networks of reverse proxies whose X-Forwarded-For is believed
    trusted_proxies: str = ""
    # hold attempts a minute per buyer and per client address in one event (0: no limit), and
    # guest identities minted a minute per client address in one event
    holds_per_buyer_per_minute: int = 10
    holds_per_ip_per_minute: int = 600
    guests_per_ip_per_minute: int = 60
    # per-address limits count an IPv6 client by its network of this prefix length
    ipv6_prefix: int = 64
    # live-availability streams (GET /events/{id}/live) open at once per client address and per
    # storefront process; both counted in the process
    live_streams_per_ip: int = 20
    live_streams_per_process: int = 2000
    # the waiting room: joins a minute per client address and event; joins a second above which
    # the proof of work gets harder by itself; how often each storefront process ticks every room
    # (ms); how long a join challenge may be solved for (s)
    room_joins_per_ip_per_minute: int = 30
    room_join_spike: int = 200
    room_repeat_spacing: int = 100
    room_tick_ms: int = 200
    room_challenge_seconds: int = 120
    password_hash_concurrency: int = 2
    password_hash_queue: int = 32
    login_per_ip_per_minute: int = 60
    register_per_ip_per_minute: int = 20
    login_failures_per_account_ip: int = 10
    login_failure_window_seconds: int = 900
    login_slowdown_after: int = 20
    login_slowdown_max_seconds: int = 60
    # the sandbox payment gateway (storefront/sandbox/, engine/payments/sandbox.py); `kwika up`
    # turns it on unless KWIKA_SANDBOX says otherwise
    sandbox: bool = False
    sandbox_url: str | None = None  # where the adapter calls it; None: this app's own /sandbox
    sandbox_secret_key: str = ""  # "": derived from secret_key (see sandbox_api_key)
    sandbox_webhook_secret: str = ""  # comma-separated during a rotation; "": derived
    sandbox_webhook_url: str | None = None  # None: /webhooks/sandbox at the address served on
    sandbox_settle_ms: int = 3000  # mobile money approved, a bank transfer seen, after this
    sandbox_push_timeout_ms: int = 60_000  # an unanswered push (phone ending 1111) fails after
    sandbox_webhook_delay_ms: int = 0  # test mode: each event waits this long before delivery
    sandbox_webhook_copies: int = 1  # test mode: each event delivered this many times
    sandbox_webhook_reorder: bool = False  # test mode: a payment's events in reverse order
    sandbox_webhook_attempts: int = 8  # a delivery answered with non-2xx is tried this often
    sandbox_webhook_backoff_ms: int = 1000  # first retry after this, doubling (at most 60 s)
    # tickets (engine/tickets/): Ed25519 signing keys as KID:BASE64[,KID:BASE64...], the first
    # current (`kwika keys` makes one; `kwika up` keeps one in the data folder when unset); where
    # order PDFs are kept (None: <data_dir>/tickets); PDF rendering processes (0: one per CPU)
    ticket_signing_keys: str = ""
    tickets_dir: str | None = None
    ticket_render_workers: int = 0
    # email (fulfillment/mail/): the SMTP server (None: no SMTP; `kwika up` then runs the
    # development mailbox), its port (None: 465 with tls, 587 with starttls, 25 with none),
    # login, transport security, the sender; whether this process sends email at all; the first
    # retry's wait after a temporary failure (doubling), and how many tries before giving up
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_username: str = ""
    smtp_password: str = ""
    smtp_security: str = "starttls"  # starttls | tls | none
    smtp_timeout_seconds: int = 30
    mail_from: str = "tickets@kwika.events"
    mail_from_name: str = "Kwika Events"
    mail: bool = True
    mail_retry_seconds: float = 30.0
    mail_max_attempts: int = 8
    # deliveries entries one mail worker handles at once (0: the render pool's size, at least 2)
    mail_concurrency: int = 0
    # fulfillment: an order entry a worker took and has not acknowledged for this long (it died)
    # is claimed by another; `kwika audit` expects a sale in Postgres this long after Redis made it
    fulfillment_claim_idle_ms: int = 30_000
    audit_grace_seconds: int = 60
    # bearer token that may read /metrics ("": admins, and loopback callers, only)
    metrics_token: str = ""
    # the development mailbox (an SMTP server inside `kwika up` and its page /dev/mailbox); set
    # by `kwika up` when no SMTP host is configured, never on with one
    dev_mailbox: bool = False

    @property
    def tickets_path(self) -> Path:
        """The folder of order PDFs: KWIKA_TICKETS_DIR, else `tickets` in the data folder."""
        return Path(self.tickets_dir) if self.tickets_dir else Path(self.data_dir) / "tickets"

    @property
    def smtp_port_or_default(self) -> int:
        """KWIKA_SMTP_PORT, else the usual port of the transport security chosen."""
        if self.smtp_port is not None:
            return self.smtp_port
        return {"tls": 465, "starttls": 587}.get(self.smtp_security, 25)

    @property
    def site_url(self) -> str:
        """The site's address for links sent out of it (emails): KWIKA_PUBLIC_URL, else the
        address served on."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return self.public_url or f"http://{host}:{self.port}"

    @property
    def sandbox_api_key(self) -> Secret:
        """The sandbox API's bearer key: KWIKA_SANDBOX_SECRET_KEY, else one derived from
        KWIKA_SECRET_KEY (so no installation shares a guessable default)."""
        return Secret(self.sandbox_secret_key or "sk_sandbox_" + _derive(self.secret_key, "api"))

    @property
    def sandbox_webhook_secrets(self) -> tuple[Secret, ...]:
        """The sandbox's webhook signing secrets (it signs with each; the adapter accepts any)."""
        configured = [s.strip() for s in self.sandbox_webhook_secret.split(",") if s.strip()]
        return tuple(Secret(s) for s in configured or
                     ["whsec_" + _derive(self.secret_key, "webhook")])

    def _redacted(self) -> dict[str, Any]:
        fields = {f: getattr(self, f) for f in self.__struct_fields__}
        for secret_field in SECRET_FIELDS:
            fields[secret_field] = "**********" if fields[secret_field] else ""
        for url_field in ("redis_url", "database_url"):
            fields[url_field] = redact_url(fields[url_field])
        return fields

    def __repr__(self) -> str:  # never print the secret key or a URL's password
        return "Settings(" + ", ".join(f"{k}={v!r}" for k, v in self._redacted().items()) + ")"

    __str__ = __repr__

    def __rich_repr__(self) -> Iterator[tuple[str, Any]]:  # msgspec's default shows every value
        yield from self._redacted().items()


SECRET_FIELDS = ("secret_key", "sandbox_secret_key", "sandbox_webhook_secret",
                 "ticket_signing_keys", "smtp_password", "metrics_token")


def _derive(secret_key: str, purpose: str) -> str:
    return hmac.new(secret_key.encode(), f"sandbox:{purpose}".encode(),
                    hashlib.sha256).hexdigest()[:40]


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
    "KWIKA_TRUSTED_PROXIES": "trusted_proxies",
    "KWIKA_HOLDS_PER_BUYER_PER_MINUTE": "holds_per_buyer_per_minute",
    "KWIKA_HOLDS_PER_IP_PER_MINUTE": "holds_per_ip_per_minute",
    "KWIKA_GUESTS_PER_IP_PER_MINUTE": "guests_per_ip_per_minute",
    "KWIKA_IPV6_PREFIX": "ipv6_prefix",
    "KWIKA_LIVE_STREAMS_PER_IP": "live_streams_per_ip",
    "KWIKA_LIVE_STREAMS_PER_PROCESS": "live_streams_per_process",
    "KWIKA_ROOM_JOINS_PER_IP_PER_MINUTE": "room_joins_per_ip_per_minute",
    "KWIKA_ROOM_JOIN_SPIKE": "room_join_spike",
    "KWIKA_ROOM_REPEAT_SPACING": "room_repeat_spacing",
    "KWIKA_ROOM_TICK_MS": "room_tick_ms",
    "KWIKA_ROOM_CHALLENGE_SECONDS": "room_challenge_seconds",
    "KWIKA_PASSWORD_HASH_CONCURRENCY": "password_hash_concurrency",
    "KWIKA_PASSWORD_HASH_QUEUE": "password_hash_queue",
    "KWIKA_LOGIN_PER_IP_PER_MINUTE": "login_per_ip_per_minute",
    "KWIKA_REGISTER_PER_IP_PER_MINUTE": "register_per_ip_per_minute",
    "KWIKA_LOGIN_FAILURES_PER_ACCOUNT_IP": "login_failures_per_account_ip",
    "KWIKA_LOGIN_FAILURE_WINDOW": "login_failure_window_seconds",
    "KWIKA_LOGIN_SLOWDOWN_AFTER": "login_slowdown_after",
    "KWIKA_LOGIN_SLOWDOWN_MAX": "login_slowdown_max_seconds",
    "KWIKA_SANDBOX": "sandbox",
    "KWIKA_SANDBOX_URL": "sandbox_url",
    "KWIKA_SANDBOX_SECRET_KEY": "sandbox_secret_key",
    "KWIKA_SANDBOX_WEBHOOK_SECRET": "sandbox_webhook_secret",
    "KWIKA_SANDBOX_WEBHOOK_URL": "sandbox_webhook_url",
    "KWIKA_SANDBOX_SETTLE_MS": "sandbox_settle_ms",
    "KWIKA_SANDBOX_PUSH_TIMEOUT_MS": "sandbox_push_timeout_ms",
    "KWIKA_SANDBOX_WEBHOOK_DELAY_MS": "sandbox_webhook_delay_ms",
    "KWIKA_SANDBOX_WEBHOOK_COPIES": "sandbox_webhook_copies",
    "KWIKA_SANDBOX_WEBHOOK_REORDER": "sandbox_webhook_reorder",
    "KWIKA_SANDBOX_WEBHOOK_ATTEMPTS": "sandbox_webhook_attempts",
    "KWIKA_SANDBOX_WEBHOOK_BACKOFF_MS": "sandbox_webhook_backoff_ms",
    "KWIKA_TICKET_SIGNING_KEYS": "ticket_signing_keys",
    "KWIKA_TICKETS_DIR": "tickets_dir",
    "KWIKA_TICKET_RENDER_WORKERS": "ticket_render_workers",
    "KWIKA_SMTP_HOST": "smtp_host",
    "KWIKA_SMTP_PORT": "smtp_port",
    "KWIKA_SMTP_USERNAME": "smtp_username",
    "KWIKA_SMTP_PASSWORD": "smtp_password",
    "KWIKA_SMTP_SECURITY": "smtp_security",
    "KWIKA_SMTP_TIMEOUT": "smtp_timeout_seconds",
    "KWIKA_MAIL_FROM": "mail_from",
    "KWIKA_MAIL_FROM_NAME": "mail_from_name",
    "KWIKA_MAIL": "mail",
    "KWIKA_MAIL_RETRY_SECONDS": "mail_retry_seconds",
    "KWIKA_MAIL_MAX_ATTEMPTS": "mail_max_attempts",
    "KWIKA_MAIL_CONCURRENCY": "mail_concurrency",
    "KWIKA_DEV_MAILBOX": "dev_mailbox",
    "KWIKA_CLAIM_IDLE_MS": "fulfillment_claim_idle_ms",
    "KWIKA_AUDIT_GRACE": "audit_grace_seconds",
    "KWIKA_METRICS_TOKEN": "metrics_token",
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
    "holds_per_buyer_per_minute": (0, 1_000_000),
    "holds_per_ip_per_minute": (0, 1_000_000),
    "guests_per_ip_per_minute": (0, 1_000_000),
    "ipv6_prefix": (32, 128),
    "live_streams_per_ip": (1, 100_000),
    "live_streams_per_process": (1, 1_000_000),
    "room_joins_per_ip_per_minute": (0, 1_000_000),
    "room_join_spike": (0, 10_000_000),
    "room_repeat_spacing": (0, 1_000_000),
    "room_tick_ms": (20, 60_000),
    "room_challenge_seconds": (10, 3600),
    "password_hash_concurrency": (1, 256),
    "password_hash_queue": (0, 100_000),
    "login_per_ip_per_minute": (1, 1_000_000),
    "register_per_ip_per_minute": (1, 1_000_000),
    "login_failures_per_account_ip": (1, 10_000),
    "login_failure_window_seconds": (1, 7 * 24 * 3600),
    "login_slowdown_after": (1, 1_000_000),
    "login_slowdown_max_seconds": (1, 24 * 3600),
    "sandbox_settle_ms": (0, 3_600_000),
    "sandbox_push_timeout_ms": (0, 3_600_000),
    "sandbox_webhook_delay_ms": (0, 3_600_000),
    "sandbox_webhook_copies": (1, 100),
    "sandbox_webhook_attempts": (1, 100),
    "sandbox_webhook_backoff_ms": (1, 3_600_000),
    "ticket_render_workers": (0, 256),
    "smtp_timeout_seconds": (1, 600),
    "mail_max_attempts": (1, 100),
    "mail_concurrency": (0, 256),
    "fulfillment_claim_idle_ms": (100, 3_600_000),
    "audit_grace_seconds": (0, 7 * 24 * 3600),
}


_SECRET_PARAMS = frozenset({"password", "pass", "passwd", "pwd", "secret", "token",
                            "sslpassword", "passfile"})
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def redact_url(url: str | None) -> str | None:
    """`redis://:pw@host` -> `redis://:***@host`, so URLs can be logged.

    A password in the query (`?password=...`, which libpq and redis-py accept) is masked too.
    """
    if not url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    # the authority ends at the first / ? or #; a password may itself hold an unencoded '@'
    end = min((i for i in (rest.find(c) for c in "/?#") if i >= 0), default=len(rest))
    authority, tail = rest[:end], rest[end:]
    if "@" in authority:
        creds, host = authority.rsplit("@", 1)
        if ":" in creds:  # a user name alone is no secret
            authority = f"{creds.split(':', 1)[0]}:***@{host}"
    if "?" in tail:
        path, _, query = tail.partition("?")
        query, hash_mark, fragment = query.partition("#")
        pairs = parse_qsl(query, keep_blank_values=True)
        if any(k.lower() in _SECRET_PARAMS for k, _ in pairs):
            query = urlencode([(k, "***" if k.lower() in _SECRET_PARAMS else v) for k, v in pairs],
                              safe="*")
        tail = f"{path}?{query}{hash_mark}{fragment}"
    return f"{scheme}://{authority}{tail}"


def load_settings(env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Decode settings from `env` (default: os.environ); `overrides` win over the environment.

    Raises SettingsError naming the variable when a value is malformed.
    """
    env = os.environ if env is None else env
    raw: dict[str, Any] = {}
    bools = {f.name for f in msgspec.structs.fields(Settings) if f.type is bool}
    for var, field in ENV_VARS.items():
        value = env.get(var)
        if value is None or value.strip() == "":
            continue
        value = value.strip()
        if field in bools:
            word = value.lower()
            if word not in _TRUE | _FALSE:
                raise SettingsError(f"{var} is malformed: expected true or false, got {value!r}")
            raw[field] = word in _TRUE
        else:
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
    try:
        proxy_networks(settings.trusted_proxies)
    except ValueError as exc:
        raise SettingsError(f"KWIKA_TRUSTED_PROXIES is malformed: {exc}") from None
    if not PREFIX.fullmatch(settings.redis_prefix):
        raise SettingsError(f"KWIKA_REDIS_PREFIX={settings.redis_prefix!r} must be 1-32 letters, "
                            "digits, '_', '.' or '-' (braces or spaces would break the hash tags)")
    if settings.db_pool_min > settings.db_pool_max:
        raise SettingsError("KWIKA_DB_POOL_MIN must not exceed KWIKA_DB_POOL_MAX")
    level = settings.log_level.upper()
    if level not in _LOG_LEVELS:
        raise SettingsError(f"KWIKA_LOG_LEVEL={settings.log_level!r} is not one of "
                            + ", ".join(_LOG_LEVELS))
    public_url = settings.public_url.rstrip("/") if settings.public_url else None
    if public_url is not None and (not public_url.startswith(("http://", "https://"))
                                   or len(public_url) <= len("https://")):
        raise SettingsError(f"KWIKA_PUBLIC_URL={settings.public_url!r} must be an absolute "
                            "http(s) URL")
    for url_field in ("redis_url", "database_url"):
        url = getattr(settings, url_field)
        if url is not None and "://" not in url:
            raise SettingsError(f"{_FIELD_TO_ENV[url_field]}={redact_url(url)!r} is not a URL")
    for url_field in ("sandbox_url", "sandbox_webhook_url"):
        url = getattr(settings, url_field)
        if url is not None and (not url.startswith(("http://", "https://"))
                                or len(url) <= len("https://")):
            raise SettingsError(f"{_FIELD_TO_ENV[url_field]}={url!r} must be an absolute "
                                "http(s) URL")
    _check_mail(settings)
    try:
        Keyring.parse(settings.ticket_signing_keys)
    except KeyringError as exc:  # names the entry, never the key
        raise SettingsError(f"KWIKA_TICKET_SIGNING_KEYS is malformed: {exc}") from None
    settings = msgspec.structs.replace(
        settings, log_level=level, ticket_signing_keys=Secret(settings.ticket_signing_keys), public_url=public_url,
        sandbox_url=settings.sandbox_url.rstrip("/") if settings.sandbox_url else None,
        sandbox_secret_key=Secret(settings.sandbox_secret_key),
        sandbox_webhook_secret=Secret(settings.sandbox_webhook_secret),
        smtp_password=Secret(settings.smtp_password),
        metrics_token=Secret(settings.metrics_token))
    if not settings.secret_key:
        # Development default: random per process start unless configured. Sessions do not
        # survive a restart, which is the safe failure; production sets KWIKA_SECRET_KEY.
        settings = msgspec.structs.replace(settings, secret_key=_secrets.token_urlsafe(32))
    elif len(settings.secret_key) < 16:
        raise SettingsError("KWIKA_SECRET_KEY must be at least 16 characters")
    return msgspec.structs.replace(settings, secret_key=Secret(settings.secret_key))


_ADDRESS = re.compile(r"[^@\s<>\"]+@[^@\s<>\"]+\.[^@\s<>\"]+")


def _check_mail(settings: Settings) -> None:
    if settings.smtp_security not in ("starttls", "tls", "none"):
        raise SettingsError(f"KWIKA_SMTP_SECURITY={settings.smtp_security!r} is not one of "
                            "starttls, tls, none")
    if settings.smtp_port is not None and not 1 <= settings.smtp_port <= 65535:
        raise SettingsError(f"KWIKA_SMTP_PORT={settings.smtp_port} is out of range [1, 65535]")
    if not _ADDRESS.fullmatch(settings.mail_from):
        raise SettingsError(f"KWIKA_MAIL_FROM={settings.mail_from!r} is not an email address")
    if any(ch in settings.mail_from_name for ch in "\r\n"):
        raise SettingsError("KWIKA_MAIL_FROM_NAME must be one line")
    if not 0 < settings.mail_retry_seconds <= 3600:
        raise SettingsError("KWIKA_MAIL_RETRY_SECONDS must be above 0 and at most 3600")
    if settings.dev_mailbox and settings.smtp_host:
        raise SettingsError("KWIKA_DEV_MAILBOX cannot be on with KWIKA_SMTP_HOST set: the "
                            "development mailbox is for when no SMTP server is configured")


def proxy_networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """`KWIKA_TRUSTED_PROXIES` as networks ("10.0.0.1, 10.1.0.0/16")."""
    return tuple(ipaddress.ip_network(part.strip(), strict=False)
                 for part in text.split(",") if part.strip())


def _explain(message: str) -> str:
    # msgspec says e.g. "Expected `int`, got `str` - at `$.port`"
    if "- at `$." in message:
        text, path = message.rsplit(" - at `$.", 1)
        field = path.rstrip("`").split(".")[0].split("[")[0]
        var = _FIELD_TO_ENV.get(field, field)
        return f"{var} is malformed: {text}"
    return f"configuration is malformed: {message}"
