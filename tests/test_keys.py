"""Redis key names: one builder per key, event keys hash-tagged by event."""

from __future__ import annotations

import inspect

import pytest

from engine.keys import Keys
from engine.settings import SettingsError, load_settings


def _slot_tag(key: str) -> str:
    """The part Redis Cluster hashes: the first non-empty {...}, else the whole key."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            return key[start + 1:end]
    return key


def test_default_prefix_is_kw():
    assert Keys().prefix == "kw"
    assert Keys().session("abc") == "kw:session:abc"


def test_account_keys():
    k = Keys("kwt1")
    assert k.session("S1d") == "kwt1:session:S1d"
    assert k.login_account("ann@example.test") == "kwt1:{login:ann@example.test}:account"
    assert k.login_address("ann@example.test", "10.0.0.1") == \
        "kwt1:{login:ann@example.test}:address:10.0.0.1"
    assert k.login_known("ann@example.test") == "kwt1:{login:ann@example.test}:known"
    assert k.attempts_from("login", "::1") == "kwt1:attempts:login:::1"
    assert k.attempts_from("register", "::1") != k.attempts_from("login", "::1")


def test_login_keys_are_case_insensitive():
    k = Keys("p")
    assert k.login_account("Ann@Example.TEST") == k.login_account(" ann@example.test")
    assert k.login_known("Ann@Example.TEST") == k.login_known("ann@example.test")
    assert k.login_address("ANN@example.test", "1.2.3.4") == k.login_address("ann@example.test", "1.2.3.4")


def test_login_keys_of_one_account_share_one_slot_whatever_the_input():
    k = Keys("kw")
    for email, address in [("ann@example.test", "10.0.0.1"), ("a{ev:1}b@x.y", "1.2.3.4"),
                           ("}{@x.y", "{ev:2}"), ("a%7Bb@x.y", "::1")]:
        keys = [k.login_account(email), k.login_address(email, address), k.login_known(email)]
        tags = {_slot_tag(key) for key in keys}
        assert len(tags) == 1, keys
        tag = tags.pop()
        assert tag.startswith("login:") and "{" not in tag and "}" not in tag
    assert k.login_account("a{b@x.y") != k.login_account("a%7Bb@x.y")  # escaping is one-to-one


def test_event_tag_and_event_keys():
    k = Keys("kw")
    assert Keys.event_tag(42) == "{ev:42}"
    assert k.event_tag(7) == "{ev:7}"
    assert k.event(42, "stock") == "kw:{ev:42}:stock"
    assert k.event(42, "holds") == "kw:{ev:42}:holds"


def test_every_key_of_one_event_lands_in_one_slot():
    k = Keys("kw")
    names = ["stock", "holds", "seats", "queue", "sold"]
    tags = {_slot_tag(k.event(42, n)) for n in names}
    assert tags == {"ev:42"}
    assert _slot_tag(k.event(43, "stock")) == "ev:43"


def test_event_ids_do_not_collide():
    k = Keys("kw")
    assert k.event(1, "stock") != k.event(11, "stock")
    assert _slot_tag(k.event(1, "stock")) != _slot_tag(k.event(11, "stock"))


def test_cross_event_keys_carry_no_event_tag():
    k = Keys("kw")
    assert k.events_on_sale() == "kw:events:on_sale"
    assert "{" not in k.events_on_sale()


def test_account_keys_carry_no_hash_tag_even_for_odd_emails():
    """A `{` in user input must not pin keys to an attacker-chosen slot or an event's slot."""
    k = Keys("kw")
    for key in (k.attempts_from("login", "a{ev:1}b"), k.session("abc")):
        assert _slot_tag(key) == key


def test_prefix_separates_namespaces():
    a, b = Keys("kwa"), Keys("kwb")
    for build in (lambda k: k.session("x"), lambda k: k.login_account("x@y.z"),
                  lambda k: k.event(1, "stock"), lambda k: k.events_on_sale()):
        assert build(a).startswith("kwa:") and build(b).startswith("kwb:")
        assert build(a) != build(b)


def _sample_args(fn) -> list:
    params = list(inspect.signature(fn).parameters.values())
    if params and params[0].name == "self":
        params = params[1:]
    return [1 if p.annotation in (int, "int") else "x" for p in params]


def test_every_builder_stays_under_the_prefix_and_tags_event_keys():
    k = Keys("kwz")
    builders = [n for n in dir(Keys) if not n.startswith("_") and callable(getattr(Keys, n))]
    assert {"session", "login_account", "event", "event_tag", "events_on_sale"} <= set(builders)
    for name in builders:
        if name in ("event_tag", "login_tag"):
            continue
        fn = getattr(k, name)
        built = fn(*_sample_args(getattr(Keys, name)))
        for key in built if isinstance(built, tuple) else (built,):
            assert key.startswith("kwz:"), (name, key)
            wants_event = "event_id" in inspect.signature(fn).parameters
            assert (_slot_tag(key) == "ev:1") == wants_event, (name, key)


@pytest.mark.parametrize("prefix", ["", "a b", "{kw}", "k}w", "x" * 33, "kw\n"])
def test_a_prefix_that_could_break_the_hash_tags_is_refused(prefix):
    with pytest.raises(ValueError):
        Keys(prefix)
    with pytest.raises(SettingsError, match="KWIKA_REDIS_PREFIX"):
        load_settings({"KWIKA_REDIS_PREFIX": prefix} if prefix.strip() else {}, redis_prefix=prefix)


def test_sandbox_keys_share_one_slot_of_their_own():
    k = Keys("kw")
    keys = [k.sandbox_payment("pay_1"), k.sandbox_reference("ORD-1-a{ev:1}"), k.sandbox_timers(),
            k.sandbox_webhook("evt_1"), k.sandbox_outbox()]
    assert k.sandbox_payment("pay_1") == "kw:{sandbox}:pay:pay_1"
    assert {_slot_tag(key) for key in keys} == {"sandbox"}
    assert k.sandbox_reference("a{b}") != k.sandbox_reference("a%7Bb%7D")


def test_the_room_keys_share_the_events_slot():
    k = Keys("kw")
    room = k.room(42)
    assert room[0] == "kw:{ev:42}:room:state" and room[5:] == ("kw:{ev:42}:stock", "kw:{ev:42}:meta")
    assert len(set(room)) == 7 and {_slot_tag(key) for key in room} == {"ev:42"}
    joins = k.room_joins(42, "{ev:9}")
    assert _slot_tag(joins) == "ev:42" and joins.startswith("kw:{ev:42}:room:rl:")
    places = k.room_places(42, "{ev:9}")  # room_join.lua's KEYS[9]: the same slot
    assert _slot_tag(places) == "ev:42" and places.startswith("kw:{ev:42}:room:pl:")
    assert k.room_places(42, "") == "kw:{ev:42}:room:pl:unknown"
    assert k.rooms_on() == "kw:rooms:on"


def test_gate_keys():
    keys = Keys("kw")
    assert keys.checkin_events() == "kw:checkin:events"
    assert keys.gate_access(7) == "kw:gateaccess:7"
    assert {keys.event(42, n) for n in ("tickets", "checkin:counts", "checkins")} == {
        "kw:{ev:42}:tickets", "kw:{ev:42}:checkin:counts", "kw:{ev:42}:checkins"}
