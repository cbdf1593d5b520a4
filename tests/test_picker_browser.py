"""The buying half of the event page in real Chromium: steppers and Continue, the seat map and
its list view, best available, live availability, the form without JavaScript, a double click,
a refusal in words. Each test also runs axe-core and saves screenshots of what it shows.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from storefront.appkeys import INVENTORY
from tests.browser import BROWSER_MARKS, Console, check_axe, screenshots
from tests.factories import Actor, Factory

pytestmark = BROWSER_MARKS
pw = pytest.importorskip("playwright.async_api", reason="page tests need the playwright package")
expect = pw.expect
Page = pw.Page
HOLD_URL = re.compile(r"/holds/([A-Za-z0-9_.:-]+)$")


@pytest.fixture
async def provider(factory: Factory) -> Actor:
    return await factory.user("provider")


async def publish(factory: Factory, provider: Actor, packages: list[dict[str, Any]],
                  sections: list[dict[str, Any]] | None = None, **fields: Any) -> dict[str, Any]:
    """An event with `packages`; `sections` (each naming its package by index as `package`)
    make it seated."""
    event = await factory.event(provider, requires_seating=bool(sections), **fields)
    made = [await factory.package(provider, event["id"], **p) for p in packages]
    for s in sections or []:
        s = dict(s)
        await factory.section(provider, event["id"], made[s.pop("package", 0)]["id"], **s)
    resp = await factory.client.post(f"/api/provider/events/{event['id']}/publish", headers=provider.h)
    assert resp.status == 200, await resp.text()
    event = await resp.json()
    event["packages"] = made
    return event


async def seated(factory: Factory, provider: Actor, **fields: Any) -> dict[str, Any]:
    return await publish(factory, provider, [{"name": "Seats", "price": 1_000_000, "capacity": 40}], [
        {"name": "Stalls", "rows": 3, "seats_per_row": 6, "row_price_modifiers": {"A": 500_000},
         "sort_order": 0},
        {"name": "Circle", "rows": 2, "seats_per_row": 8, "sort_order": 1}], **fields)


async def seat_map(client: TestClient, event_id: int) -> dict[str, dict[str, Any]]:
    """Seats by "Section/seat number"."""
    data = await (await client.get(f"/api/events/{event_id}/seating")).json()
    return {f"{s['name']}/{seat['seat_number']}": seat for s in data["sections"] for seat in s["seats"]}


async def the_hold(page: Page) -> dict[str, Any]:
    """The hold the page landed on (/holds/{id} is another page's; its JSON shares the cookies)."""
    await expect(page).to_have_url(HOLD_URL)
    hold_id = HOLD_URL.search(page.url)[1]
    resp = await page.request.get(f"/api/holds/{hold_id}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def held(client: TestClient, event_id: int, package_id: int) -> int:
    return (await client.server.app[INVENTORY].availability(event_id)).packages[package_id].held


def row(page: Page, name: str) -> Any:
    return page.get_by_test_id("packages").locator(".pkg-row").filter(has_text=name)


# --- general admission -------------------------------------------------------------------------
async def test_two_tickets_with_the_stepper_then_continue_holds_them(
        page: Page, factory: Factory, provider: Actor, client: TestClient) -> None:
    event = await publish(factory, provider, [
        {"name": "General", "price": 4_500_000, "capacity": 500, "description": "Standing, all areas"},
        {"name": "VIP", "price": 9_000_000, "capacity": 50}],
        title="Lake of Stars", venue="Sunbird Nkopola", city="Mangochi")
    await page.goto(f"/events/{event['slug']}")
    general = row(page, "General")
    await expect(general.locator(".pkg-state")).to_have_text("On sale")
    await expect(row(page, "VIP").locator(".pkg-state")).to_have_text("On sale")
    await expect(page.get_by_test_id("summary")).to_contain_text("From MWK 45,000.00")
    plus = general.get_by_role("button", name="One more: General")
    await plus.click()
    await plus.click()
    await expect(general.locator("input")).to_have_value("2")
    await expect(page.get_by_test_id("total")).to_have_text("2 tickets · MWK 90,000.00")
    await general.get_by_role("button", name="One fewer: General").click()
    await expect(page.get_by_test_id("total")).to_have_text("1 ticket · MWK 45,000.00")
    await plus.click()
    await check_axe(page)
    await screenshots(page, "event-ga")

    await page.get_by_test_id("continue").click()
    hold = await the_hold(page)
    assert [(i["package_id"], i["quantity"]) for i in hold["items"]] == [(event["packages"][0]["id"], 2)]
    assert hold["total"] == 9_000_000
    assert await held(client, event["id"], event["packages"][0]["id"]) == 2


async def test_the_stepper_stops_at_what_is_left_and_at_the_buyer_limits(
        page: Page, factory: Factory, provider: Actor) -> None:
    event = await publish(factory, provider, [
        {"name": "Last few", "price": 100_000, "capacity": 3},
        {"name": "Limited", "price": 100_000, "capacity": 100, "per_buyer_limit": 2},
        {"name": "Pairs", "price": 100_000, "capacity": 100, "min_per_order": 2}],
        max_tickets_per_buyer=6)
    await page.goto(f"/events/{event['slug']}")
    few = row(page, "Last few")
    await expect(few.locator(".pkg-state")).to_have_text("3 left")
    await expect(few.locator("input")).to_have_attribute("max", "3")
    for _ in range(3):
        await few.get_by_role("button", name="One more: Last few").click()
    await expect(few.locator("input")).to_have_value("3")
    await expect(few.get_by_role("button", name="One more: Last few")).to_be_disabled()

    limited = row(page, "Limited")
    await expect(limited.locator(".limit")).to_have_text("Up to 2 per order")
    for _ in range(2):
        await limited.get_by_role("button", name="One more: Limited").click()
    await expect(limited.get_by_role("button", name="One more: Limited")).to_be_disabled()

    pairs = row(page, "Pairs")
    await pairs.get_by_role("button", name="One more: Pairs").click()
    await expect(pairs.locator("input")).to_have_value("2")  # the minimum at once
    # 3 + 2 + 2 would pass the event's 6 per buyer: plus stops, minus goes back to none
    await expect(pairs.get_by_role("button", name="One more: Pairs")).to_be_disabled()
    await pairs.get_by_role("button", name="One fewer: Pairs").click()
    await expect(pairs.locator("input")).to_have_value("0")
    await expect(page.get_by_test_id("total")).to_have_text("5 tickets · MWK 5,000.00")


async def test_availability_changes_live_when_another_buyer_holds(
        page: Page, factory: Factory, provider: Actor, client: TestClient) -> None:
    event = await publish(factory, provider, [{"name": "Floor", "price": 100_000, "capacity": 8}])
    other = await factory.user("buyer")
    await page.goto(f"/events/{event['slug']}")
    floor = row(page, "Floor")
    await expect(floor.locator(".pkg-state")).to_have_text("8 left")
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=other.h, json={
        "items": [{"package_id": event["packages"][0]["id"], "quantity": 5}]})
    assert resp.status == 201, await resp.text()
    await expect(floor.locator(".pkg-state")).to_have_text("3 left")
    await expect(floor.locator("input")).to_have_attribute("max", "3")
    await client.delete(f"/api/holds/{(await resp.json())['id']}", headers=other.h)
    await expect(floor.locator(".pkg-state")).to_have_text("8 left")


async def test_a_double_click_on_continue_is_one_hold(page: Page, factory: Factory,
                                                      provider: Actor, client: TestClient) -> None:
    event = await publish(factory, provider, [{"name": "Floor", "price": 100_000, "capacity": 50}])
    answers: list[int] = []
    page.on("response", lambda r: answers.append(r.status) if r.request.method == "POST" else None)
    await page.goto(f"/events/{event['slug']}")
    await row(page, "Floor").get_by_role("button", name="One more: Floor").click()
    await page.get_by_test_id("continue").dblclick()
    hold = await the_hold(page)
    assert hold["items"][0]["quantity"] == 1
    assert answers and all(status == 201 for status in answers), answers
    mine = await (await page.request.get(f"/api/events/{event['id']}/holds/mine")).json()
    assert [h["id"] for h in mine] == [hold["id"]]
    assert await held(client, event["id"], event["packages"][0]["id"]) == 1


async def test_a_refused_hold_is_said_in_words(page: Page, factory: Factory, provider: Actor,
                                               client: TestClient, console: Console) -> None:
    console.allow(r"status of 409 \(Conflict\)")  # the refused hold's answer, said in words below
    event = await publish(factory, provider, [{"name": "Floor", "price": 100_000, "capacity": 50}])
    await page.goto(f"/events/{event['slug']}")
    first = await page.request.post(f"/api/events/{event['id']}/holds", data={
        "items": [{"package_id": event["packages"][0]["id"], "quantity": 1}]})
    assert first.status == 201  # this buyer (the page's guest) has a basket already
    await row(page, "Floor").get_by_role("button", name="One more: Floor").click()
    await page.get_by_test_id("continue").click()
    await expect(page.get_by_role("alert")).to_have_text(
        "You already have tickets on hold for this event. Finish or remove them first.")
    await expect(page).to_have_url(re.compile(f"/events/{event['slug']}$"))
    await expect(page.get_by_test_id("continue")).to_be_enabled()
    assert await held(client, event["id"], event["packages"][0]["id"]) == 1


async def test_without_javascript_the_form_makes_the_hold(
        browser: Any, factory: Factory, provider: Actor, client: TestClient) -> None:
    event = await publish(factory, provider, [{"name": "Floor", "price": 100_000, "capacity": 5},
                                              {"name": "Balcony", "price": 200_000, "capacity": 50}])
    context = await browser.new_context(base_url=str(client.make_url("")).rstrip("/"),
                                        java_script_enabled=False)
    context.set_default_timeout(10_000)
    try:
        page = await context.new_page()
        await page.goto(f"/events/{event['slug']}")
        await expect(row(page, "Floor").get_by_role("button", name="One more: Floor")).to_be_hidden()
        await row(page, "Floor").locator("input").fill("2")
        await row(page, "Balcony").locator("input").fill("1")
        await page.get_by_test_id("continue").click()
        hold = await the_hold(page)
        assert sorted((i["package_id"], i["quantity"]) for i in hold["items"]) == sorted(
            [(event["packages"][0]["id"], 2), (event["packages"][1]["id"], 1)])
        # a fresh page (a new choice) is refused in words: this buyer has a basket already
        await page.goto(f"/events/{event['slug']}")
        await row(page, "Floor").locator("input").fill("1")
        await page.get_by_test_id("continue").click()
        await expect(page.get_by_role("alert")).to_have_text(
            "You already have tickets on hold for this event. Finish or remove them first.")
        await expect(row(page, "Floor").locator("input")).to_have_value("1")
        await screenshots(page, "event-refused-nojs")  # (axe needs scripts: see the JS tests)
        assert await held(client, event["id"], event["packages"][0]["id"]) == 2
    finally:
        await context.close()


# --- seats -------------------------------------------------------------------------------------
async def test_three_seats_picked_on_the_map(page: Page, factory: Factory, provider: Actor,
                                             client: TestClient) -> None:
    event = await seated(factory, provider, title="Chamber Quartet")
    seats = await seat_map(client, event["id"])
    await page.goto(f"/events/{event['slug']}")
    legend = page.get_by_test_id("legend")
    await expect(legend).to_contain_text("MWK 10,000.00")
    await expect(legend).to_contain_text("MWK 15,000.00")
    await expect(legend).to_contain_text("Unavailable")
    for name in ("Stalls/A1", "Stalls/A2", "Circle/B4"):
        await page.locator(f"circle[data-seat-id='{seats[name]['id']}']").click()
    chosen = page.get_by_test_id("selected-seats").locator("li")
    await expect(chosen).to_have_count(3)
    await expect(page.get_by_test_id("total")).to_have_text("3 tickets · MWK 40,000.00")
    seat = page.locator(f"circle[data-seat-id='{seats['Stalls/A1']['id']}']")
    await expect(seat).to_have_attribute("aria-checked", "true")
    await expect(seat).to_have_attribute("aria-label", re.compile(r"^Stalls, row A, seat A1"))
    # zoom in and out with the buttons; the map stays usable
    await page.get_by_role("button", name="Zoom in").click()
    await page.get_by_role("button", name="Zoom out").click()
    await check_axe(page)
    await screenshots(page, "event-seated-map")

    await page.get_by_test_id("continue").click()
    hold = await the_hold(page)
    assert sorted(s["seat_id"] for s in hold["seats"]) == sorted(
        seats[n]["id"] for n in ("Stalls/A1", "Stalls/A2", "Circle/B4"))
    assert hold["total"] == 4_000_000


async def test_seats_chosen_with_the_keyboard_in_the_list_view(
        page: Page, factory: Factory, provider: Actor, client: TestClient) -> None:
    event = await seated(factory, provider)
    seats = await seat_map(client, event["id"])
    await page.goto(f"/events/{event['slug']}")
    await expect(page.get_by_test_id("seat-table")).to_be_attached()  # the map's script is ready
    toggle = page.get_by_test_id("list-toggle")
    await toggle.focus()
    await page.keyboard.press("Enter")
    await expect(toggle).to_have_attribute("aria-pressed", "true")
    await expect(page.get_by_test_id("seat-list")).to_be_visible()
    await page.get_by_test_id("filter-section").focus()
    await page.get_by_test_id("filter-section").select_option(label="Circle")
    table = page.get_by_test_id("seat-table")
    await expect(table.locator("tbody tr:visible")).to_have_count(16)
    await page.get_by_test_id("filter-price").select_option(label="MWK 10,000.00")
    for label in ("Circle, row A, seat A1", "Circle, row A, seat A2"):
        box = page.get_by_role("checkbox", name=re.compile("^" + re.escape(label)))
        await box.focus()
        await page.keyboard.press("Space")
        await expect(box).to_be_checked()
    await expect(page.get_by_test_id("total")).to_have_text("2 tickets · MWK 20,000.00")
    await check_axe(page)
    await screenshots(page, "event-seated-list")
    await page.get_by_test_id("continue").focus()
    await page.keyboard.press("Enter")
    hold = await the_hold(page)
    assert sorted(s["seat_id"] for s in hold["seats"]) == sorted(
        seats[n]["id"] for n in ("Circle/A1", "Circle/A2"))


async def test_best_available_holds_seats_side_by_side(page: Page, factory: Factory,
                                                      provider: Actor) -> None:
    event = await seated(factory, provider)
    await page.goto(f"/events/{event['slug']}")
    best = page.get_by_test_id("best-available")
    await best.get_by_label("Seats").fill("3")
    section = best.get_by_label("Section")
    await expect(section.locator("option", has_text="Circle")).to_have_text("Circle · MWK 10,000.00")
    await section.select_option(label="Circle · MWK 10,000.00")
    await best.get_by_role("button", name="Find best seats").click()
    hold = await the_hold(page)
    assert len(hold["seats"]) == 3 and hold["total"] == 3_000_000


async def test_a_seat_held_elsewhere_turns_held_on_the_open_map(
        page: Page, factory: Factory, provider: Actor, client: TestClient) -> None:
    event = await seated(factory, provider)
    seats = await seat_map(client, event["id"])
    other = await factory.user("buyer")
    await page.goto(f"/events/{event['slug']}")
    seat = page.locator(f"circle[data-seat-id='{seats['Stalls/B3']['id']}']")
    await expect(seat).to_have_attribute("data-state", "available")
    await seat.click()
    await expect(seat).to_have_attribute("aria-checked", "true")
    resp = await client.post(f"/api/events/{event['id']}/holds", headers=other.h,
                             json={"seat_ids": [seats["Stalls/B3"]["id"]]})
    assert resp.status == 201, await resp.text()
    await expect(seat).to_have_attribute("data-state", "held")
    await expect(seat).to_have_attribute("aria-checked", "false")
    await expect(page.get_by_role("alert")).to_have_text("A seat you chose was just taken. Pick another.")
    await expect(page.get_by_test_id("selected-seats").locator("li")).to_have_count(0)


# --- the index ---------------------------------------------------------------------------------
async def test_index_cards_have_covers_and_badges(page: Page, factory: Factory,
                                                  provider: Actor, client: TestClient) -> None:
    await publish(factory, provider, [{"price": 100_000, "capacity": 500}], title="Open Air",
                  category="music")
    await publish(factory, provider, [{"price": 100_000, "capacity": 5}], title="Tiny Room",
                  category="comedy")
    gone = await publish(factory, provider, [{"price": 100_000, "capacity": 1}], title="Gone",
                         category="sports")
    buyer = await factory.user("buyer")
    assert (await client.post(f"/api/events/{gone['id']}/holds", headers=buyer.h, json={
        "items": [{"package_id": gone["packages"][0]["id"], "quantity": 1}]})).status == 201
    moved = await publish(factory, provider, [{"price": 100_000}], title="Moved")
    assert (await client.post(f"/api/provider/events/{moved['id']}/postpone", headers=provider.h,
                              json={})).status == 200
    await page.goto("/events")
    cards = page.get_by_test_id("events").locator("li.event-card")
    await expect(cards).to_have_count(4)
    badge = {"Open Air": "On sale", "Tiny Room": "Few left", "Gone": "Sold out", "Moved": "Postponed"}
    for title, text in badge.items():
        card = cards.filter(has_text=title)
        await expect(card.get_by_test_id("badge")).to_have_text(text)
        await expect(card.locator("svg.card-cover")).to_have_count(1)
    await check_axe(page)
    await screenshots(page, "events-index")
    # the same title and category always draw the same cover
    first = await cards.filter(has_text="Open Air").locator("svg").inner_html()
    await page.reload()
    assert await cards.filter(has_text="Open Air").locator("svg").inner_html() == first


async def test_account_menu(page: Page, factory: Factory) -> None:
    await page.goto("/register")
    await page.get_by_label("Name", exact=True).fill("Chikondi Banda")
    await page.get_by_label("Email", exact=True).fill("menu@example.test")
    await page.get_by_label("Password", exact=True).fill("correct horse battery")
    await page.get_by_role("button", name="Create account").click()
    await expect(page).to_have_url(re.compile(r"/events$"))
    menu = page.get_by_test_id("account-menu")
    await expect(menu.get_by_role("link", name="My tickets")).to_be_hidden()
    await menu.locator("summary").click()
    await expect(menu.get_by_role("link", name="My tickets")).to_have_attribute("href", "/my/tickets")
    await check_axe(page)
    await menu.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("link", name="Log in")).to_be_visible()


