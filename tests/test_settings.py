"""Settings: defaults, decoding the environment, refusing malformed values, never showing secrets."""

from __future__ import annotations

import pprint

import msgspec
import pytest

from engine.settings import ENV_VARS, Settings, SettingsError, load_settings, redact_url

SECRET = "s3cret-key-that-is-long-enough"


def test_defaults_match_the_readme():
    s = load_settings({})
    assert (s.redis_url, s.database_url) == (None, None)
    assert (s.host, s.port, s.workers) == ("127.0.0.1", 8080, 1)
    assert s.data_dir == ".kwika"
    assert s.redis_prefix == "kw"
    assert s.redis_max_connections == 1000
    assert (s.db_pool_min, s.db_pool_max) == (1, 20)
    assert s.max_body_bytes == 1_048_576
    assert s.session_ttl_seconds == 1_209_600
    assert s.hold_ttl_seconds == 900
    assert s.cookie_secure is False
    assert (s.log_level, s.log_json) == ("INFO", True)
    assert s.public_url is None  # links use the address each request was served on
    assert (s.argon2_memory_kib, s.argon2_time_cost) == (65536, 3)


def test_unset_secret_key_gets_a_random_one_per_load():
    a, b = load_settings({}), load_settings({})
    assert len(a.secret_key) >= 32 and len(b.secret_key) >= 32
    assert a.secret_key != b.secret_key


def test_every_variable_maps_to_a_field():
    assert set(ENV_VARS.values()) <= set(Settings.__struct_fields__)


def test_env_decoding_of_ints_strings_and_bools():
    s = load_settings({
        "REDIS_URL": "redis://127.0.0.1:6380/2",
        "DATABASE_URL": "postgresql://kw@db:5432/kwika",
        "KWIKA_HOST": "0.0.0.0",
        "KWIKA_PORT": "9090",
        "KWIKA_WORKERS": "4",
        "KWIKA_SECRET_KEY": SECRET,
        "KWIKA_DB_POOL_MIN": "2",
        "KWIKA_DB_POOL_MAX": "50",
        "KWIKA_SESSION_TTL": "3600",
        "KWIKA_COOKIE_SECURE": "true",
        "KWIKA_LOG_JSON": "false",
        "KWIKA_LOG_LEVEL": "debug",
        "KWIKA_PUBLIC_URL": "https://tickets.example/",
        "KWIKA_REDIS_PREFIX": "kwx",
    })
    assert s.redis_url == "redis://127.0.0.1:6380/2"
    assert s.database_url == "postgresql://kw@db:5432/kwika"
    assert (s.host, s.port, s.workers) == ("0.0.0.0", 9090, 4)
    assert isinstance(s.port, int) and isinstance(s.workers, int)
    assert s.secret_key == SECRET
    assert (s.db_pool_min, s.db_pool_max, s.session_ttl_seconds) == (2, 50, 3600)
    assert s.cookie_secure is True
    assert s.log_json is False
    assert s.log_level == "DEBUG"
    assert s.public_url == "https://tickets.example"  # no trailing slash: links append paths
    assert s.redis_prefix == "kwx"


@pytest.mark.parametrize("word, value", [
    ("true", True), ("TRUE", True), ("1", True), ("yes", True), ("on", True),
    ("false", False), ("False", False), ("0", False), ("no", False), ("off", False),
])
def test_bool_spellings(word, value):
    assert load_settings({"KWIKA_COOKIE_SECURE": word}).cookie_secure is value


def test_empty_and_padded_values():
    s = load_settings({"KWIKA_PORT": "", "KWIKA_WORKERS": " 3 ", "KWIKA_HOST": "  "})
    assert s.port == 8080  # empty means unset
    assert s.workers == 3
    assert s.host == "127.0.0.1"


def test_overrides_win_over_the_environment():
    s = load_settings({"KWIKA_PORT": "9000"}, port=9100, host=None)
    assert s.port == 9100 and s.host == "127.0.0.1"


@pytest.mark.parametrize("env, var", [
    ({"KWIKA_PORT": "abc"}, "KWIKA_PORT"),
    ({"KWIKA_PORT": "80.5"}, "KWIKA_PORT"),
    ({"KWIKA_PORT": "70000"}, "KWIKA_PORT"),
    ({"KWIKA_PORT": "-1"}, "KWIKA_PORT"),
    ({"KWIKA_WORKERS": "0"}, "KWIKA_WORKERS"),
    ({"KWIKA_WORKERS": "many"}, "KWIKA_WORKERS"),
    ({"KWIKA_COOKIE_SECURE": "maybe"}, "KWIKA_COOKIE_SECURE"),
    ({"KWIKA_LOG_JSON": "2"}, "KWIKA_LOG_JSON"),
    ({"KWIKA_SESSION_TTL": "1"}, "KWIKA_SESSION_TTL"),
    ({"KWIKA_MAX_BODY_BYTES": "1MB"}, "KWIKA_MAX_BODY_BYTES"),
    ({"KWIKA_SECRET_KEY": "short"}, "KWIKA_SECRET_KEY"),
    ({"KWIKA_DB_POOL_MIN": "30", "KWIKA_DB_POOL_MAX": "10"}, "KWIKA_DB_POOL_MIN"),
    ({"KWIKA_LOG_LEVEL": "LOUD"}, "KWIKA_LOG_LEVEL"),
    ({"KWIKA_PUBLIC_URL": "tickets.example"}, "KWIKA_PUBLIC_URL"),
    ({"DATABASE_URL": "just-a-host"}, "DATABASE_URL"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL"),
])
def test_malformed_values_name_the_variable(env, var):
    with pytest.raises(SettingsError) as info:
        load_settings(env)
    assert var in str(info.value)


def test_a_malformed_override_names_the_variable():
    with pytest.raises(SettingsError, match="KWIKA_WORKERS"):
        load_settings({}, workers=0)


def test_malformed_secret_key_is_not_echoed():
    with pytest.raises(SettingsError) as info:
        load_settings({"KWIKA_SECRET_KEY": "tooshort1"})
    assert "tooshort1" not in str(info.value)


def _loaded() -> Settings:
    return load_settings({
        "KWIKA_SECRET_KEY": SECRET,
        "REDIS_URL": "redis://:redis-pw-123@cache:6379/0",
        "DATABASE_URL": "postgresql://kwika:db-pw-456@db:5432/kwika?sslmode=require",
    })


def test_repr_and_str_hide_the_secret_key_and_url_passwords():
    s = _loaded()
    for text in (repr(s), str(s), f"{s}", f"{s!r}", repr([s]), pprint.pformat(s),
                 repr(list(s.__rich_repr__())), repr(s.secret_key)):
        assert SECRET not in text
        assert "redis-pw-123" not in text
        assert "db-pw-456" not in text
    text = repr(s)
    assert "cache:6379/0" in text and "db:5432/kwika" in text  # the rest is still useful
    assert "sslmode=require" in text


def test_the_secret_key_still_works_as_a_string():
    s = _loaded()
    assert s.secret_key == SECRET
    assert s.secret_key.encode() == SECRET.encode()
    assert str(s.secret_key) == SECRET
    assert msgspec.structs.replace(s, port=1).secret_key == SECRET


@pytest.mark.parametrize("url, hidden, shown", [
    ("redis://:pw@h:6379/0", "pw@", "redis://:***@h:6379/0"),
    ("postgresql://u:pass@h/db", "pass", "postgresql://u:***@h/db"),
    ("postgresql://u:p@ss@h/db", "p@ss", "postgresql://u:***@h/db"),
    ("redis://h:6379/0?password=qwerty", "qwerty", "redis://h:6379/0?password=***"),
    ("postgresql://u@h/db?sslmode=require&password=qwerty", "qwerty",
     "postgresql://u@h/db?sslmode=require&password=***"),
])
def test_redact_url(url, hidden, shown):
    assert redact_url(url) == shown
    assert hidden not in redact_url(url)


@pytest.mark.parametrize("url", [
    None, "", "redis://127.0.0.1:6379/0", "postgresql://postgres@127.0.0.1:5432/postgres",
    "redis://h/0?x=a@b",
])
def test_redact_url_leaves_urls_without_passwords_alone(url):
    assert redact_url(url) == url


def test_sandbox_settings_decode_and_default():
    s = load_settings({"KWIKA_SECRET_KEY": SECRET})
    assert s.sandbox is False  # `kwika up` turns it on; `kwika serve` leaves it off
    assert (s.sandbox_url, s.sandbox_webhook_url) == (None, None)
    assert (s.sandbox_settle_ms, s.sandbox_push_timeout_ms) == (3000, 60_000)
    assert (s.sandbox_webhook_delay_ms, s.sandbox_webhook_copies, s.sandbox_webhook_reorder) == (
        0, 1, False)
    assert (s.sandbox_webhook_attempts, s.sandbox_webhook_backoff_ms) == (8, 1000)
    # unset keys are derived from the secret key: stable for one installation, not guessable
    assert s.sandbox_api_key.startswith("sk_sandbox_")
    assert s.sandbox_api_key == load_settings({"KWIKA_SECRET_KEY": SECRET}).sandbox_api_key
    assert s.sandbox_api_key != load_settings({"KWIKA_SECRET_KEY": SECRET + "x"}).sandbox_api_key
    assert len(s.sandbox_webhook_secrets) == 1 and s.sandbox_webhook_secrets[0].startswith("whsec_")
    s = load_settings({"KWIKA_SANDBOX": "on", "KWIKA_SANDBOX_URL": "https://pay.example/sandbox/",
                       "KWIKA_SANDBOX_SECRET_KEY": "sk-configured-123",
                       "KWIKA_SANDBOX_WEBHOOK_SECRET": "whsec-new, whsec-old",
                       "KWIKA_SANDBOX_WEBHOOK_URL": "http://127.0.0.1:9000/webhooks/sandbox",
                       "KWIKA_SANDBOX_WEBHOOK_COPIES": "3", "KWIKA_SANDBOX_WEBHOOK_REORDER": "yes"})
    assert s.sandbox and s.sandbox_url == "https://pay.example/sandbox"
    assert s.sandbox_api_key == "sk-configured-123"
    assert s.sandbox_webhook_secrets == ("whsec-new", "whsec-old")
    assert s.sandbox_webhook_url == "http://127.0.0.1:9000/webhooks/sandbox"
    assert (s.sandbox_webhook_copies, s.sandbox_webhook_reorder) == (3, True)


@pytest.mark.parametrize("env, var", [
    ({"KWIKA_SANDBOX_URL": "pay.example"}, "KWIKA_SANDBOX_URL"),
    ({"KWIKA_SANDBOX_WEBHOOK_URL": "/webhooks/sandbox"}, "KWIKA_SANDBOX_WEBHOOK_URL"),
    ({"KWIKA_SANDBOX_WEBHOOK_COPIES": "0"}, "KWIKA_SANDBOX_WEBHOOK_COPIES"),
    ({"KWIKA_SANDBOX_WEBHOOK_ATTEMPTS": "0"}, "KWIKA_SANDBOX_WEBHOOK_ATTEMPTS"),
    ({"KWIKA_SANDBOX_SETTLE_MS": "-1"}, "KWIKA_SANDBOX_SETTLE_MS"),
    ({"KWIKA_SANDBOX": "maybe"}, "KWIKA_SANDBOX"),
])
def test_malformed_sandbox_settings_name_the_variable(env, var):
    with pytest.raises(SettingsError, match=var):
        load_settings(env)


def test_sandbox_secrets_are_never_shown():
    s = load_settings({"KWIKA_SANDBOX_SECRET_KEY": "sk-very-secret-1",
                       "KWIKA_SANDBOX_WEBHOOK_SECRET": "whsec-very-secret-2"})
    for text in (repr(s), str(s), pprint.pformat(s), repr(list(s.__rich_repr__())),
                 repr(s.sandbox_api_key), repr(s.sandbox_webhook_secrets)):
        assert "sk-very-secret-1" not in text and "whsec-very-secret-2" not in text
    derived = load_settings({})
    assert derived.sandbox_api_key not in repr(derived) + repr(derived.sandbox_api_key)
