"""Bad input on every write route and on the search query: the right 4xx, the one error shape
{"error", "message", "fields"} naming the field, and nothing written to Postgres."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest

from tests.factories import PASSWORD, future

EV = "/api/provider/events"
TWO_MIB = 2 * 1024 * 1024


@dataclass
class Route:
    method: str
    url: str
    headers: dict[str, str]
    body: dict[str, Any]  # a body the route accepts


def iso(dt) -> str:
    return dt.isoformat()


@pytest.fixture
async def world(client, factory) -> dict[str, Any]:
    provider = await factory.user("provider")
    event = await factory.event(provider, requires_seating=True)
    package = await factory.package(provider, event["id"])
    section = await factory.section(provider, event["id"], package["id"])
    resp = await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)
    assert resp.status == 200
    # tokens are made from a login session only: keep its cookie and CSRF token as headers
    resp = await client.post("/api/auth/login", json={"email": provider.user["email"],
                                                      "password": PASSWORD})
    assert resp.status == 200
    session = {"Cookie": f"kwika_session={resp.cookies['kwika_session'].value}",
               "X-CSRF-Token": (await resp.json())["csrf_token"]}
    client.session.cookie_jar.clear()
    return {"provider": provider, "event": event, "package": package, "section": section,
            "session": session}


@pytest.fixture
def routes(world) -> dict[str, Route]:
    provider, event = world["provider"], world["event"]
    e = f"{EV}/{event['id']}"
    starts = future(50)
    return {
        "create_event": Route("POST", EV, provider.h, {
            "title": "Fresh", "starts_at": iso(starts), "ends_at": iso(starts + timedelta(hours=2))}),
        "update_event": Route("PATCH", e, provider.h, {"title": "Renamed"}),
        "postpone": Route("POST", f"{e}/postpone", provider.h, {"starts_at": iso(starts)}),
        "create_package": Route("POST", f"{e}/packages", provider.h,
                                {"name": "Second", "price": 100, "capacity": 5}),
        "update_package": Route("PATCH", f"{e}/packages/{world['package']['id']}", provider.h,
                                {"price": 200}),
        "create_section": Route("POST", f"{e}/sections", provider.h, {
            "name": "Balcony", "package_id": world["package"]["id"], "rows": 1, "seats_per_row": 2}),
        "block_seats": Route("POST", f"{e}/seats/block", provider.h,
                             {"seat_ids": [world["section"]["seats"][0]["id"]]}),
        "register": Route("POST", "/api/auth/register", {}, {
            "email": "newcomer@example.test", "name": "Newcomer", "password": "long enough pw"}),
        "login": Route("POST", "/api/auth/login", {}, {
            "email": provider.user["email"], "password": PASSWORD}),
        "create_token": Route("POST", "/api/auth/tokens", world["session"], {"name": "scanner"}),
    }


ROUTE_NAMES = ["create_event", "update_event", "postpone", "create_package", "update_package",
               "create_section", "block_seats", "register", "login", "create_token"]


async def snapshot(db) -> dict[str, list[dict]]:
    """Every row that a write route could touch (token use times aside)."""
    out = {}
    for table in ("users", "service_providers", "events", "ticket_packages", "sections", "seats"):
        out[table] = [dict(r) for r in await db.fetch(f"SELECT * FROM {table} ORDER BY id")]
    out["api_tokens"] = [dict(r) for r in await db.fetch(
        "SELECT id, user_id, name, token_hash, revoked_at FROM api_tokens ORDER BY id")]
    return out


async def error_of(resp, status: int, code: str | None = None) -> dict[str, Any]:
    assert resp.content_type == "application/json", await resp.text()
    body = await resp.json()
    assert resp.status == status, body
    assert set(body) == {"error", "message", "fields"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["fields"], dict)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in body["fields"].items())
    if code is not None:
        assert body["error"] == code, body
    return body


async def send_raw(client, route: Route, data: bytes | str | io.BytesIO,
                   content_type: str = "application/json"):
    return await client.request(route.method, route.url, data=data,
                                headers={**route.headers, "Content-Type": content_type})


async def send_json(client, route: Route, body: Any):
    return await client.request(route.method, route.url, json=body, headers=route.headers)


# --- the valid bodies really are valid (so each refusal below is about what was changed) ----
@pytest.mark.parametrize("name", ROUTE_NAMES)
async def test_valid_bodies_are_accepted(client, routes, name):
    resp = await send_json(client, routes[name], routes[name].body)
    assert resp.status in (200, 201), await resp.text()


# --- transport-level refusals ----------------------------------------------------------------
@pytest.mark.parametrize("name", ROUTE_NAMES)
@pytest.mark.parametrize("raw", ['{"title": ', "{'name': 'x'}", "{,}", "nul", b'{"name": "\xff\xfe"}'])
async def test_malformed_json_is_400(client, db, routes, name, raw):
    before = await snapshot(db)
    await error_of(await send_raw(client, routes[name], raw), 400, "malformed_json")
    assert await snapshot(db) == before


@pytest.mark.parametrize("name", ROUTE_NAMES)
async def test_empty_body_is_400(client, db, routes, name):
    before = await snapshot(db)
    await error_of(await send_raw(client, routes[name], b"  "), 400)
    assert await snapshot(db) == before


@pytest.mark.parametrize("name", ROUTE_NAMES)
@pytest.mark.parametrize("content_type", ["text/plain", "application/xml"])
async def test_wrong_content_type_is_415(client, db, routes, name, content_type):
    before = await snapshot(db)
    resp = await send_raw(client, routes[name], json.dumps(routes[name].body), content_type)
    await error_of(resp, 415, "unsupported_media_type")
    assert await snapshot(db) == before


@pytest.mark.parametrize("name", ["create_event", "create_package", "create_token"])
async def test_form_posts_to_json_routes_are_415_for_token_callers(client, db, routes, name):
    before = await snapshot(db)
    resp = await client.request(routes[name].method, routes[name].url, data={"name": "x"},
                                headers=routes[name].headers)
    await error_of(resp, 415)
    assert await snapshot(db) == before


@pytest.mark.parametrize("name", ROUTE_NAMES)
async def test_oversized_body_is_413(client, db, routes, name):
    before = await snapshot(db)
    data = io.BytesIO(('{"name": "' + "x" * TWO_MIB + '"}').encode())
    body = await error_of(await send_raw(client, routes[name], data), 413, "too_large")
    assert "1048576" in body["message"]
    assert await snapshot(db) == before


@pytest.mark.parametrize("name", ROUTE_NAMES)
@pytest.mark.parametrize("raw, expected", [("[]", "Expected `object`"), ('"text"', "Expected `object`"),
                                           ("42", "Expected `object`"), ("null", "Expected `object`")])
async def test_a_body_that_is_not_an_object_is_422(client, db, routes, name, raw, expected):
    before = await snapshot(db)
    body = await error_of(await send_raw(client, routes[name], raw), 422, "invalid")
    assert expected in body["message"]
    assert await snapshot(db) == before


# --- field-level refusals --------------------------------------------------------------------
@pytest.mark.parametrize("name", ROUTE_NAMES)
async def test_unknown_field_is_422(client, db, routes, name):
    before = await snapshot(db)
    resp = await send_json(client, routes[name], {**routes[name].body, "is_admin": True})
    body = await error_of(resp, 422, "invalid")
    assert body["fields"] == {"is_admin": "unknown field"}
    assert await snapshot(db) == before


@pytest.mark.parametrize("name, drop", [
    ("create_event", "title"), ("create_event", "starts_at"), ("create_package", "price"),
    ("create_section", "package_id"), ("block_seats", "seat_ids"), ("register", "password"),
    ("login", "email"), ("create_token", "name"),
])
async def test_missing_required_field_is_422(client, db, routes, name, drop):
    before = await snapshot(db)
    body = {k: v for k, v in routes[name].body.items() if k != drop}
    err = await error_of(await send_json(client, routes[name], body), 422, "invalid")
    assert err["fields"] == {drop: "required"}
    assert await snapshot(db) == before


WRONG_TYPES = [
    ("create_event", {"title": 123}, "title"),
    ("create_event", {"starts_at": 1767225600}, "starts_at"),
    ("create_event", {"requires_seating": "yes"}, "requires_seating"),
    ("create_event", {"latitude": "north"}, "latitude"),
    ("update_event", {"city": ["Zomba"]}, "city"),
    ("update_event", {"uses_waiting_room": 1}, "uses_waiting_room"),
    ("postpone", {"starts_at": True}, "starts_at"),
    ("create_package", {"price": "100"}, "price"),
    ("create_package", {"capacity": 1.5}, "capacity"),
    ("update_package", {"is_active": "false"}, "is_active"),
    ("update_package", {"max_per_order": None}, "max_per_order"),
    ("create_section", {"rows": "2"}, "rows"),
    ("create_section", {"numbering_type": "spiral"}, "numbering_type"),
    ("create_section", {"numbering_type": "custom", "custom_seats": [{"seat_number": 7}]},
     "custom_seats[0].seat_number"),
    ("create_section", {"row_price_modifiers": {"A": "cheap"}}, "row_price_modifiers"),
    ("block_seats", {"seat_ids": "1"}, "seat_ids"),
    ("block_seats", {"seat_ids": ["a"]}, "seat_ids[0]"),
    ("block_seats", {"blocked": "no"}, "blocked"),
    ("register", {"email": 5}, "email"),
    ("register", {"account_type": "admin"}, "account_type"),
    ("login", {"password": []}, "password"),
    ("create_token", {"name": 7}, "name"),
]

OUT_OF_RANGE = [
    ("create_event", {"latitude": 91}, "latitude"),
    ("create_event", {"longitude": -180.5}, "longitude"),
    ("create_event", {"title": ""}, "title"),
    ("create_event", {"slug": "Not A Slug"}, "slug"),
    ("create_event", {"currency": "mwk"}, "currency"),
    ("create_event", {"cover_image_url": "javascript:alert(1)"}, "cover_image_url"),
    ("update_event", {"title": "x" * 201}, "title"),
    ("update_event", {"category": "Music & Arts"}, "category"),
    ("create_package", {"price": -1}, "price"),
    ("create_package", {"capacity": 1_000_001}, "capacity"),
    ("create_package", {"min_per_order": 0}, "min_per_order"),
    ("create_package", {"max_per_order": 1001}, "max_per_order"),
    ("create_package", {"per_buyer_limit": 0}, "per_buyer_limit"),
    ("update_package", {"price": 10**13}, "price"),
    ("update_package", {"sort_order": 10_001}, "sort_order"),
    ("update_package", {"price": 2**70}, "price"),
    ("create_section", {"rows": 201}, "rows"),
    ("create_section", {"seats_per_row": -1}, "seats_per_row"),
    ("create_section", {"package_id": 0}, "package_id"),
    ("create_section", {"row_price_modifiers": {"A": 10**10}}, "row_price_modifiers"),
    ("block_seats", {"seat_ids": []}, "seat_ids"),
    ("block_seats", {"seat_ids": [-3]}, "seat_ids[0]"),
    ("register", {"password": "short"}, "password"),
    ("register", {"email": "not-an-email"}, "email"),
    ("login", {"email": ""}, "email"),
    ("create_token", {"name": ""}, "name"),
    ("create_token", {"name": "n" * 101}, "name"),
]


@pytest.mark.parametrize("name, patch, field", WRONG_TYPES + OUT_OF_RANGE)
async def test_bad_field_values_are_422_naming_the_field(client, db, routes, name, patch, field):
    before = await snapshot(db)
    resp = await send_json(client, routes[name], {**routes[name].body, **patch})
    body = await error_of(resp, 422, "invalid")
    assert list(body["fields"]) == [field] or any(k.startswith(field) for k in body["fields"]), body
    assert await snapshot(db) == before


NAIVE = future(60).replace(tzinfo=None).isoformat()
LATER = future(61).isoformat()
EARLIER = future(59).isoformat()
BAD_DATES = [
    ("create_event", {"starts_at": "next friday"}, "starts_at"),
    ("create_event", {"starts_at": "2026-13-45T10:00:00Z"}, "starts_at"),
    ("create_event", {"starts_at": "2026-06-01"}, "starts_at"),
    ("create_event", {"starts_at": NAIVE, "ends_at": LATER}, "starts_at"),
    ("create_event", {"starts_at": LATER, "ends_at": NAIVE}, "ends_at"),
    ("create_event", {"starts_at": LATER, "ends_at": EARLIER}, "ends_at"),
    ("create_event", {"starts_at": LATER, "ends_at": LATER}, "ends_at"),
    ("update_event", {"starts_at": NAIVE}, "starts_at"),
    ("update_event", {"ends_at": "yesterday"}, "ends_at"),
    ("update_event", {"starts_at": LATER, "ends_at": EARLIER}, "ends_at"),
    ("postpone", {"starts_at": NAIVE}, "starts_at"),
    ("postpone", {"ends_at": "soon"}, "ends_at"),
    ("postpone", {"starts_at": LATER, "ends_at": EARLIER}, "ends_at"),
    ("create_package", {"opens_at": NAIVE}, "opens_at"),
    ("create_package", {"closes_at": "notadate"}, "closes_at"),
    ("create_package", {"opens_at": LATER, "closes_at": EARLIER}, "closes_at"),
    ("update_package", {"closes_at": NAIVE}, "closes_at"),
    ("update_package", {"opens_at": LATER, "closes_at": EARLIER}, "closes_at"),
]


@pytest.mark.parametrize("name, patch, field", BAD_DATES)
async def test_invalid_dates_are_422(client, db, routes, name, patch, field):
    before = await snapshot(db)
    resp = await send_json(client, routes[name], {**routes[name].body, **patch})
    body = await error_of(resp, 422)
    assert field in body["fields"], body
    assert await snapshot(db) == before


# --- the search query ------------------------------------------------------------------------
@pytest.mark.parametrize("params, field", [
    ({"page": "0"}, "page"),
    ({"page": "two"}, "page"),
    ({"page": "10001"}, "page"),
    ({"per_page": "1000"}, "per_page"),
    ({"per_page": "0"}, "per_page"),
    ({"sort": "bogus"}, "sort"),
    ({"order": "sideways"}, "order"),
    ({"date_from": "notadate"}, "date_from"),
    ({"date_from": "2026-06-01T00:00:00"}, "date_from"),  # no offset
    ({"date_to": "2026-02-30"}, "date_to"),
    ({"date_to": "-58800"}, "date_to"),  # not seconds since 1970
    ({"date_from": "1700000000"}, "date_from"),
    ({"lat": "abc", "lng": "1"}, "lat"),
    ({"lat": "91", "lng": "1"}, "lat"),
    ({"lat": "1", "lng": "181"}, "lng"),
    ({"lat": "1", "lng": "1", "radius_km": "0"}, "radius_km"),
    ({"category": "Not Valid!"}, "category"),
    ({"q": "x" * 201}, "q"),
    ({"colour": "red"}, "colour"),
    ([("page", "1"), ("page", "2")], "page"),
])
async def test_bad_search_parameters_are_422(client, params, field):
    resp = await client.get("/api/events", params=params)
    body = await error_of(resp, 422)
    assert field in body["fields"], body


# --- path ids --------------------------------------------------------------------------------
@pytest.mark.parametrize("method, url", [
    ("GET", EV + "/abc"),
    ("PATCH", EV + "/1.5"),
    ("GET", EV + "/-1"),
    ("POST", EV + "/0x1/publish"),
    ("POST", EV + "/1e3/packages"),
    ("PATCH", EV + "/{event}/packages/xyz"),
    ("GET", EV + "/\u0661"),               # ARABIC-INDIC DIGIT ONE is a digit, but not an id
    ("GET", EV + "/{event}\u0660"),
    ("GET", EV + "/" + "9" * 30),
    ("GET", "/api/events/abc/seating"),
    ("GET", "/api/events/\u0661/seating"),
    ("POST", "/api/auth/tokens/abc"),
])
async def test_non_integer_path_ids_are_404(client, db, world, method, url):
    provider = world["provider"]
    before = await snapshot(db)
    url = url.replace("{event}", str(world["event"]["id"]))
    resp = await client.request(method, url, json={"title": "x"}, headers=provider.h)
    await error_of(resp, 404)
    assert await snapshot(db) == before


async def test_unknown_api_route_and_method_use_the_error_shape(client, world):
    await error_of(await client.get("/api/nothing-here"), 404, "not_found")
    await error_of(await client.delete(f"{EV}/{world['event']['id']}", headers=world["provider"].h),
                   405, "method_not_allowed")


# --- form bodies that cannot be read -----------------------------------------------------------
MULTIPART = "multipart/form-data; boundary=xyz"


def part(headers: str, body: bytes) -> bytes:
    return b"--xyz\r\n" + headers.encode() + b"\r\n\r\n" + body + b"\r\n"


UNREADABLE_FORMS = {
    "undecodable_bytes": (b"csrf_token=\xff&email=\xfe", "application/x-www-form-urlencoded"),
    "unknown_charset": (b"csrf_token=abc", "application/x-www-form-urlencoded; charset=bogus-8"),
    "multipart_garbage": (b"garbage\r\n--xyz\r\n\xff\xfe", MULTIPART),
    "multipart_without_boundary": (b"garbage", "multipart/form-data"),
    "multipart_nameless_part": (part("Content-Disposition: form-data", b"x") + b"--xyz--\r\n",
                                MULTIPART),
    "multipart_bad_disposition": (part("Content-Disposition: form-data; name", b"x")
                                  + b"--xyz--\r\n", MULTIPART),
    "multipart_undecodable_part": (part('Content-Disposition: form-data; name="csrf_token"',
                                        b"\xff\xfe") + b"--xyz--\r\n", MULTIPART),
    "multipart_unknown_charset": (part('Content-Disposition: form-data; name="csrf_token"\r\n'
                                       "Content-Type: text/plain; charset=bogus-8", b"abc")
                                  + b"--xyz--\r\n", MULTIPART),
    "multipart_nested": (part('Content-Disposition: form-data; name="x"\r\n'
                              "Content-Type: multipart/mixed; boundary=inner",
                              b"--inner\r\n\r\nx\r\n--inner--") + b"--xyz--\r\n", MULTIPART),
}
# (method, url, logged in by session cookie, answers JSON)
FORM_ROUTES = [
    ("/login", False, False), ("/register", False, False), ("/logout", True, False),
    ("/api/auth/login", False, True), ("/api/auth/logout", True, True),
    ("/api/provider/events", True, True),
]


async def log_in_by_session(client, actor) -> None:
    resp = await client.post("/api/auth/login",
                             json={"email": actor.user["email"], "password": PASSWORD})
    assert resp.status == 200, await resp.text()


async def page_error(resp, status: int) -> str:
    """The text of a human error page (HTML) with `status`."""
    assert resp.status == status, await resp.text()
    assert resp.content_type == "text/html"
    html = await resp.text()
    assert 'data-testid="error-message"' in html
    return html


@pytest.mark.parametrize("url, session, is_json", FORM_ROUTES)
@pytest.mark.parametrize("body_name", list(UNREADABLE_FORMS))
async def test_unreadable_form_bodies_are_400(client, db, world, url, session, is_json, body_name):
    if session:
        await log_in_by_session(client, world["provider"])
    await client.get("/login")  # the anonymous CSRF cookie
    before = await snapshot(db)
    body, content_type = UNREADABLE_FORMS[body_name]
    resp = await client.post(url, data=body, headers={"Content-Type": content_type},
                             allow_redirects=False)
    if is_json:
        await error_of(resp, 400, "malformed_form")
    else:
        assert "form could not be read" in await page_error(resp, 400)
    assert await snapshot(db) == before


@pytest.mark.parametrize("url, session, is_json", FORM_ROUTES)
async def test_file_uploads_in_forms_are_415(client, db, world, url, session, is_json):
    if session:
        await log_in_by_session(client, world["provider"])
    before = await snapshot(db)
    body = part('Content-Disposition: form-data; name="csrf_token"; filename="a.txt"\r\n'
                "Content-Type: text/plain", b"abc") + b"--xyz--\r\n"
    resp = await client.post(url, data=body, headers={"Content-Type": MULTIPART},
                             allow_redirects=False)
    if is_json:
        await error_of(resp, 415, "unsupported_media_type")
    else:
        await page_error(resp, 415)
    assert await snapshot(db) == before


@pytest.mark.parametrize("url, session, is_json", FORM_ROUTES)
async def test_a_csrf_token_that_is_not_text_is_refused(client, db, world, url, session, is_json):
    if session:
        await log_in_by_session(client, world["provider"])
    await client.get("/login")
    before = await snapshot(db)
    resp = await client.post(url, data=b"csrf_token=%FF&email=%FF&password=x",
                             headers={"Content-Type": "application/x-www-form-urlencoded"},
                             allow_redirects=False)
    if is_json:
        await error_of(resp, 403, "csrf_failed")
    else:
        await page_error(resp, 403)
    assert await snapshot(db) == before


# --- text the database cannot store or people cannot see --------------------------------------
CONTROL_TEXT = ["a\u0000b", "\u0000", "a\u001bb", "a\u0008b", "a\u007fb\u0000"]
TEXT_FIELDS = [("create_event", "title"), ("create_event", "description"),
               ("create_event", "venue"), ("update_event", "city"),
               ("update_event", "description"), ("create_package", "name"),
               ("create_package", "description"), ("create_section", "name"),
               ("register", "email"), ("register", "name"), ("register", "password"),
               ("register", "phone"), ("login", "email"), ("login", "password"),
               ("create_token", "name")]


# every field with NUL, every control character in a long text and a one-line field
CONTROL_CASES = sorted({*((n, f, "a\u0000b") for n, f in TEXT_FIELDS),
                        *((n, f, text) for n, f in [("update_event", "description"),
                                                    ("register", "password")]
                          for text in CONTROL_TEXT)})


@pytest.mark.parametrize("name, field, text", CONTROL_CASES)
async def test_control_characters_in_text_are_422(client, db, routes, name, field, text):
    before = await snapshot(db)
    # long enough that nothing but the control character is wrong with it
    value = {"email": text + "@example.test", "password": text + " long enough"}.get(field, text)
    resp = await send_json(client, routes[name], {**routes[name].body, field: value})
    body = await error_of(resp, 422, "invalid")
    assert field in body["fields"], body
    assert await snapshot(db) == before


async def test_control_characters_deep_in_a_body_name_their_field(client, db, routes):
    before = await snapshot(db)
    resp = await send_json(client, routes["create_section"], {
        **routes["create_section"].body, "numbering_type": "custom", "rows": 0,
        "custom_seats": [{"seat_number": "1"}, {"seat_number": "2", "row": "B"}],
        "row_price_modifiers": {"B\u0000": 5}})
    body = await error_of(resp, 422, "invalid")
    assert list(body["fields"]) == ["row_price_modifiers"], body
    assert await snapshot(db) == before


async def test_tabs_and_line_breaks_are_kept_where_text_has_lines(client, db, routes, world):
    text = "Doors at six.\r\n\tBring a tent.\n"
    resp = await send_json(client, routes["update_event"], {"description": text})
    assert resp.status == 200, await resp.text()
    assert await db.fetchval("SELECT description FROM events WHERE id = $1",
                             world["event"]["id"]) == text


ONE_LINE_FIELDS = [("create_event", "title"), ("update_event", "title"), ("create_event", "venue"),
                   ("create_event", "address"), ("update_event", "city"),
                   ("create_package", "name"), ("update_package", "name"),
                   ("create_section", "name"), ("register", "name"),
                   ("register", "business_name")]
BIDI_AND_LINES = ["\u202eevil", "a\u202ab", "a\u202bb", "a\u202cb", "a\u202db", "a\u2066b",
                  "a\u2067b", "a\u2068b", "a\u2069b", "two\nlines", "tab\there", "end\n", "a\x85b"]


# every field with an override and a line break, every character in a title and a name
ONE_LINE_CASES = sorted({*((n, f, text) for n, f in ONE_LINE_FIELDS for text in ("\u202eevil",
                                                                                  "two\nlines")),
                         *((n, f, text) for n, f in [("create_event", "title"),
                                                     ("register", "name")]
                           for text in BIDI_AND_LINES)})


@pytest.mark.parametrize("name, field, text", ONE_LINE_CASES)
async def test_titles_and_names_are_one_line_without_direction_overrides(client, db, routes, name,
                                                                         field, text):
    before = await snapshot(db)
    extra = {"account_type": "provider"} if field == "business_name" else {}
    resp = await send_json(client, routes[name], {**routes[name].body, **extra, field: text})
    body = await error_of(resp, 422, "invalid")
    assert body["fields"] == {field: "must be one line of text, without control characters or "
                                     "characters that reverse the direction of text"}, body
    assert await snapshot(db) == before


@pytest.mark.parametrize("name, patch, field", [
    ("create_event", {"slug": "my-slug\n"}, "slug"),
    ("create_event", {"currency": "MWK\n"}, "currency"),
    ("create_event", {"category": "music\n"}, "category"),
    ("create_event", {"cover_image_url": "https://img.example/a.png\n"}, "cover_image_url"),
    ("register", {"email": "someone@example.test\n"}, "email"),
])
async def test_a_final_line_feed_does_not_slip_past_a_pattern(client, db, routes, name, patch,
                                                              field):
    before = await snapshot(db)
    body = await error_of(await send_json(client, routes[name], {**routes[name].body, **patch}),
                          422, "invalid")
    assert field in body["fields"], body
    assert await snapshot(db) == before


@pytest.mark.parametrize("params, field", [
    ({"q": "\u0000"}, "q"), ({"q": "jazz\u0000night"}, "q"), ({"city": "Zomba\u001b"}, "city"),
])
async def test_control_characters_in_search_parameters_are_422(client, params, field):
    body = await error_of(await client.get("/api/events", params=params), 422, "invalid")
    assert field in body["fields"], body


@pytest.mark.parametrize("url", ["/api/events/a%00b", "/api/events/%00", "/api/holds/h%00x",
                                 "/api/events/a%1Bb"])
async def test_control_characters_in_api_paths_are_404(client, url):
    await error_of(await client.get(url), 404, "not_found")


@pytest.mark.parametrize("url", ["/events/a%00b", "/events/a%00b/calendar.ics"])
async def test_control_characters_in_page_paths_are_a_404_page(client, url):
    await page_error(await client.get(url), 404)


async def test_control_characters_in_the_register_form_are_shown_on_the_form(client, db):
    html = await (await client.get("/register")).text()
    token = html.split('name="csrf-token" content="')[1].split('"')[0]
    before = await snapshot(db)
    resp = await client.post("/register", data={
        "csrf_token": token, "name": "Nul\u0000Name", "email": "nul@example.test",
        "password": PASSWORD}, allow_redirects=False)
    assert resp.status == 422
    assert 'data-testid="error-name"' in await resp.text()
    assert await snapshot(db) == before


# --- times outside what can be stored and shown ----------------------------------------------
@pytest.mark.parametrize("name, patch, field", [
    ("create_event", {"ends_at": "9999-12-31T23:00:00-14:00"}, "ends_at"),
    ("create_event", {"starts_at": "0001-01-01T00:00:00+14:00"}, "starts_at"),
    ("create_event", {"starts_at": "1899-12-31T23:59:59Z"}, "starts_at"),
    ("create_event", {"ends_at": "3000-01-01T00:00:00Z"}, "ends_at"),
    ("update_event", {"ends_at": "9999-12-31T23:59:59Z"}, "ends_at"),
    ("postpone", {"starts_at": "9999-12-31T00:00:00Z"}, "starts_at"),
    ("create_package", {"opens_at": "0001-01-01T00:00:00+00:01"}, "opens_at"),
    ("update_package", {"closes_at": "9999-12-31T23:00:00-14:00"}, "closes_at"),
])
async def test_times_out_of_range_are_422(client, db, routes, name, patch, field):
    before = await snapshot(db)
    body = await error_of(await send_json(client, routes[name], {**routes[name].body, **patch}),
                          422, "invalid")
    assert body["fields"] == {field: "must lie between 1900-01-01 and 2999-12-31 (UTC)"}, body
    assert await snapshot(db) == before


@pytest.mark.parametrize("params, field", [
    ({"date_from": "0001-01-01T00:00:00+14:00"}, "date_from"),
    ({"date_to": "9999-12-31T23:00:00-14:00"}, "date_to"),
    ({"date_from": "0001-01-01"}, "date_from"),
    ({"date_to": "9999-12-31"}, "date_to"),
])
async def test_search_times_out_of_range_are_422(client, params, field):
    body = await error_of(await client.get("/api/events", params=params), 422, "invalid")
    assert field in body["fields"], body


async def test_index_page_with_a_time_out_of_range_is_a_422_page(client):
    await page_error(await client.get("/events", params={"date_from": "0001-01-01"}), 422)


# --- bodies nested too deeply ----------------------------------------------------------------
@pytest.mark.parametrize("name", ROUTE_NAMES)
@pytest.mark.parametrize("raw", ["[" * 1000 + "]" * 1000, '{"a":' * 1000 + "1" + "}" * 1000,
                                 '{"title": ' + "[" * 1000 + "]" * 1000 + "}"])
async def test_json_nested_1000_deep_is_400(client, db, routes, name, raw):
    before = await snapshot(db)
    await error_of(await send_raw(client, routes[name], raw), 400, "malformed_json")
    assert await snapshot(db) == before
