"""The server-rendered pages, driven in real headless Chromium against the app on a real port.

One browser per module, a fresh browser context (cookies, storage) per test. Test data is made
through the JSON API (tests/factories.py), as a provider would.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from aiohttp.test_utils import TestClient

from storefront.templating import local
from tests.browser import BROWSER_MARKS, Console
from tests.factories import PASSWORD, Actor, Factory, future

pytestmark = BROWSER_MARKS
pw = pytest.importorskip("playwright.async_api", reason="page tests need the playwright package")
expect = pw.expect
Page = pw.Page


@pytest.fixture
async def provider(factory: Factory) -> Actor:
    return await factory.user("provider")


async def publish(factory: Factory, provider: Actor, packages: list[dict[str, Any]] | None = None,
                  **fields: Any) -> dict[str, Any]:
    """An event with the given packages (one default package if none), published."""
    event = await factory.event(provider, **fields)
    for pkg in packages if packages is not None else [{}]:
        await factory.package(provider, event["id"], **pkg)
    resp = await factory.client.post(f"/api/provider/events/{event['id']}/publish", headers=provider.h)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def cards(page: Page) -> Any:
    return page.locator("[data-testid=events] li.event-card")


async def card_slugs(page: Page) -> list[str]:
    return [await c.get_attribute("data-slug") for c in await cards(page).all()]


# --- events index --------------------------------------------------------------------------------
async def test_index_lists_published_events_as_a_grid_of_cards(page: Page, factory: Factory,
                                                               provider: Actor) -> None:
    shown = await publish(factory, provider, title="Lilongwe Jazz Night", venue="Bingu Centre",
                          city="Lilongwe", packages=[{"price": 4_500_000}, {"price": 9_000_000}])
    await factory.event(provider, title="Secret Draft Party")  # a draft: never listed

    await page.goto("/")
    await expect(page).to_have_url(re.compile(r"/events$"))
    await expect(page).to_have_title("Events · Kwika")
    await expect(cards(page)).to_have_count(1)
    await expect(page.get_by_test_id("events")).to_have_css("display", "grid")  # CSS is served
    card = cards(page).first
    await expect(card.get_by_role("heading", name="Lilongwe Jazz Night")).to_be_visible()
    await expect(card).to_contain_text("Bingu Centre, Lilongwe")
    await expect(card.locator(".price")).to_have_text("MWK 45,000.00 – MWK 90,000.00")
    await expect(page.get_by_test_id("total")).to_have_text("1")
    await expect(page.get_by_text("Secret Draft Party")).to_have_count(0)

    await card.get_by_role("link", name="Lilongwe Jazz Night").click()
    await expect(page).to_have_url(re.compile(f"/events/{shown['slug']}$"))
    await expect(page.get_by_role("heading", level=1)).to_have_text("Lilongwe Jazz Night")


async def test_list_view_toggle_keeps_filters(page: Page, factory: Factory, provider: Actor) -> None:
    await publish(factory, provider, title="Zomba Plateau Run", category="sports")
    await publish(factory, provider, title="Mzuzu Book Fair", category="culture")

    await page.goto("/events?category=sports")
    await expect(page.get_by_test_id("events")).to_have_class(re.compile(r"\bgrid\b"))
    await page.get_by_role("link", name="List").click()
    await expect(page).to_have_url(re.compile(r"view=list"))
    events = page.get_by_test_id("events")
    await expect(events).to_have_class(re.compile(r"\blist\b"))
    await expect(events).to_have_css("display", "block")
    await expect(page.get_by_role("link", name="List")).to_have_attribute("aria-current", "page")
    await expect(cards(page)).to_have_count(1)  # the category filter survived the toggle

    # searching from the list view stays in the list view
    await page.get_by_label("Category").select_option("")
    await page.get_by_role("button", name="Search").click()
    await expect(cards(page)).to_have_count(2)
    await expect(page.get_by_test_id("events")).to_have_class(re.compile(r"\blist\b"))

    await page.get_by_role("link", name="Grid").click()
    await expect(page.get_by_test_id("events")).to_have_css("display", "grid")


async def test_keyword_search_filters_results(page: Page, factory: Factory, provider: Actor) -> None:
    await publish(factory, provider, title="Lilongwe Jazz Night")
    await publish(factory, provider, title="Blantyre Food Market", description="Street food and jazz")
    await publish(factory, provider, title="Zomba Plateau Run")

    await page.goto("/events")
    await expect(cards(page)).to_have_count(3)
    search = page.get_by_role("searchbox", name="Search")
    await search.fill("jazz")
    await search.press("Enter")
    await expect(page).to_have_url(re.compile(r"q=jazz"))
    await expect(cards(page)).to_have_count(2)
    await expect(page.get_by_text("Zomba Plateau Run")).to_have_count(0)
    await expect(search).to_have_value("jazz")  # the form shows what was searched


async def test_category_filter(page: Page, factory: Factory, provider: Actor) -> None:
    await publish(factory, provider, title="Lake Malawi Regatta", category="sports")
    await publish(factory, provider, title="Chamber Quartet", category="classical")

    await page.goto("/events")
    category = page.get_by_label("Category")
    await expect(category.locator("option")).to_have_text(
        ["All categories", "Classical", "Sports"])
    await category.select_option("sports")
    await page.get_by_role("button", name="Search").click()
    await expect(page).to_have_url(re.compile(r"category=sports"))
    await expect(cards(page)).to_have_count(1)
    await expect(cards(page).first).to_contain_text("Lake Malawi Regatta")
    await expect(category).to_have_value("sports")


async def test_date_filter_from_the_form(page: Page, factory: Factory, provider: Actor) -> None:
    soon = await publish(factory, provider, title="Soon Gig", starts_at=future(10))
    await publish(factory, provider, title="Later Gig", starts_at=future(40))

    await page.goto("/events")
    day = soon["starts_at"][:10]
    await page.get_by_label("From").fill(day)
    await page.get_by_label("To").fill(day)
    await page.get_by_role("button", name="Search").click()
    await expect(cards(page)).to_have_count(1)
    await expect(cards(page).first).to_contain_text("Soon Gig")
    await expect(page.get_by_label("From")).to_have_value(day)


async def test_sort_by_price_changes_the_order(page: Page, factory: Factory, provider: Actor) -> None:
    dear = await publish(factory, provider, title="Dear", starts_at=future(5),
                         packages=[{"price": 9_000_000}])
    cheap = await publish(factory, provider, title="Cheap", starts_at=future(10),
                          packages=[{"price": 100_000}])
    middle = await publish(factory, provider, title="Middle", starts_at=future(15),
                           packages=[{"price": 2_000_000}])

    await page.goto("/events")
    await expect(cards(page)).to_have_count(3)
    assert await card_slugs(page) == [dear["slug"], cheap["slug"], middle["slug"]]  # by date
    await page.get_by_label("Sort by").select_option("price")
    await page.get_by_role("button", name="Search").click()
    await expect(page).to_have_url(re.compile(r"sort=price"))
    await expect(cards(page).first).to_have_attribute("data-slug", cheap["slug"])
    assert await card_slugs(page) == [cheap["slug"], middle["slug"], dear["slug"]]
    await expect(cards(page).locator(".price")).to_have_text(
        ["MWK 1,000.00", "MWK 20,000.00", "MWK 90,000.00"])


async def test_pagination_next_and_previous(page: Page, factory: Factory, provider: Actor) -> None:
    events = [await publish(factory, provider, title=f"Show {n}", starts_at=future(n + 1))
              for n in range(5)]
    slugs = [e["slug"] for e in events]

    await page.goto("/events?per_page=2")
    pages = page.get_by_role("navigation", name="Pages")
    await expect(pages.get_by_test_id("page-of")).to_have_text("Page 1 of 3")
    await expect(pages.get_by_role("link", name="Previous page")).to_have_count(0)
    assert await card_slugs(page) == slugs[0:2]

    await pages.get_by_role("link", name="Next page").click()
    await expect(pages.get_by_test_id("page-of")).to_have_text("Page 2 of 3")
    assert await card_slugs(page) == slugs[2:4]
    await pages.get_by_role("link", name="Next page").click()
    await expect(pages.get_by_test_id("page-of")).to_have_text("Page 3 of 3")
    assert await card_slugs(page) == slugs[4:5]
    await expect(pages.get_by_role("link", name="Next page")).to_have_count(0)

    await pages.get_by_role("link", name="Previous page").click()
    await expect(pages.get_by_test_id("page-of")).to_have_text("Page 2 of 3")
    assert await card_slugs(page) == slugs[2:4]
    await expect(page).to_have_url(re.compile(r"per_page=2"))

    # a new search keeps the page size and starts again at page 1
    await page.get_by_role("button", name="Search").click()
    await expect(pages.get_by_test_id("page-of")).to_have_text("Page 1 of 3")


async def test_empty_state(page: Page, factory: Factory, provider: Actor) -> None:
    await publish(factory, provider, title="Lilongwe Jazz Night")
    await page.goto("/events?q=bagpipes")
    await expect(page.get_by_test_id("empty")).to_contain_text("No events match")
    await expect(page.get_by_test_id("total")).to_have_text("0")
    await expect(page.get_by_test_id("events")).to_have_count(0)
    await page.get_by_role("link", name="Show all upcoming events").click()
    await expect(cards(page)).to_have_count(1)


async def test_bad_filter_shows_an_error_page(page: Page) -> None:
    response = await page.goto("/events?sort=cheapest")
    assert response is not None and response.status == 422
    await expect(page.get_by_test_id("error-message")).to_have_text("Sort: Choose one of the options.")


# --- event detail ----------------------------------------------------------------------------
async def test_detail_shows_packages_prices_sale_windows_and_availability(
        page: Page, factory: Factory, provider: Actor) -> None:
    opens = future(3)
    closes = future(20)
    event = await publish(
        factory, provider, title="Lake of Stars", venue="Sunbird Nkopola", city="Mangochi",
        timezone="Africa/Blantyre", starts_at=future(45), ends_at=future(47),
        description="Three days of music.\nBring a tent.",
        packages=[{"name": "General Admission", "price": 4_500_000, "capacity": 5000,
                   "closes_at": closes, "sort_order": 1},
                  {"name": "Early Bird", "price": 3_000_000, "capacity": 500,
                   "opens_at": opens, "sort_order": 0}])

    await page.goto(f"/events/{event['slug']}")
    await expect(page).to_have_title("Lake of Stars · Kwika")
    await expect(page.get_by_role("heading", level=1)).to_have_text("Lake of Stars")
    await expect(page.get_by_test_id("where")).to_have_text("Sunbird Nkopola, Mangochi")
    await expect(page.get_by_test_id("description")).to_have_text("Three days of music.\nBring a tent.")

    rows = page.get_by_test_id("packages").locator(".pkg-row")
    await expect(rows).to_have_count(2)
    early = rows.filter(has_text="Early Bird")
    general = rows.filter(has_text="General Admission")
    await expect(early.locator(".price")).to_have_text("MWK 30,000.00")
    await expect(general.locator(".price")).to_have_text("MWK 45,000.00")
    await expect(early).to_have_attribute("data-state", "upcoming")
    await expect(early.locator(".pkg-state")).to_have_text("Opens in 3 days")
    await expect(early.locator(".window")).to_have_text(
        f"On sale from {local(opens, 'Africa/Blantyre')}")
    await expect(general.locator(".window")).to_have_text(
        f"Sale ends {local(closes, 'Africa/Blantyre')}")
    await expect(general.locator(".pkg-state")).to_have_text("On sale")
    await expect(early.locator("input")).to_be_disabled()  # not on sale yet: nothing to choose
    await expect(general.locator("input")).to_have_attribute("max", "10")

    # a multi-day event shows both dates, in the event's time zone
    start = local(datetime.fromisoformat(event["starts_at"]), "Africa/Blantyre")
    end = local(datetime.fromisoformat(event["ends_at"]), "Africa/Blantyre")
    await expect(page.get_by_test_id("when")).to_have_text(f"{start} – {end} (Africa/Blantyre)")


async def test_ics_link_downloads_a_calendar_file(page: Page, factory: Factory,
                                                  provider: Actor) -> None:
    event = await publish(factory, provider, title="Jazz, Blues; Soul", venue="Bingu Centre",
                          city="Lilongwe")
    await page.goto(f"/events/{event['slug']}")
    async with page.expect_download() as info:
        await page.get_by_test_id("ics").click()
    download = await info.value
    assert download.suggested_filename == f"{event['slug']}.ics"
    raw = Path(await download.path()).read_bytes()
    text = raw.decode()
    assert text.startswith("BEGIN:VCALENDAR\r\n")
    assert "SUMMARY:Jazz\\, Blues\\; Soul\r\n" in text
    assert "LOCATION:Bingu Centre\\, Lilongwe\r\n" in text
    assert text.rstrip("\r\n").endswith("END:VCALENDAR")


async def test_share_links_carry_the_encoded_event_url(page: Page, factory: Factory,
                                                       provider: Actor, client: TestClient) -> None:
    event = await publish(factory, provider, title="Jazz & Blues")
    url = str(client.make_url(f"/events/{event['slug']}"))  # the port actually served
    await page.goto(f"/events/{event['slug']}")
    share = page.get_by_test_id("share")
    await expect(share.locator("[data-share=Facebook]")).to_have_attribute(
        "href", "https://www.facebook.com/sharer/sharer.php?u=" + quote(url, safe=""))
    await expect(share.locator("[data-share=WhatsApp]")).to_have_attribute(
        "href", "https://wa.me/?text=" + quote_plus(f"Jazz & Blues {url}"))
    await expect(share.locator("[data-share=X]")).to_have_attribute(
        "href", re.compile(re.escape("url=" + quote(url, safe=""))))
    await expect(share.locator("[data-share=Email]")).to_have_attribute(
        "href", f"mailto:?subject=Jazz%20%26%20Blues&body={quote(url, safe='')}")
    await expect(page.locator("link[rel=canonical]")).to_have_attribute("href", url)
    await expect(page.locator("meta[property='og:url']")).to_have_attribute("content", url)


async def test_copy_link_button_copies_the_event_url(page: Page, factory: Factory, provider: Actor,
                                                     client: TestClient) -> None:
    event = await publish(factory, provider)
    await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    await page.goto(f"/events/{event['slug']}")
    button = page.locator("button[data-copy]")
    await expect(button).to_have_text("Copy link")
    await button.click()
    await expect(button).to_have_text("Link copied")
    copied = await page.evaluate("navigator.clipboard.readText()")
    assert copied == str(client.make_url(f"/events/{event['slug']}"))


async def test_user_supplied_html_is_shown_as_text(page: Page, factory: Factory,
                                                   provider: Actor) -> None:
    title = "<script>window.pwned=1</script>"
    description = '<img src=x onerror="window.pwned=2"><b>bold?</b>'
    event = await publish(factory, provider, title=title, description=description,
                          venue='"><script>window.pwned=3</script>',
                          packages=[{"name": "<i>VIP</i>", "description": "<u>x</u>"}])

    for path in ("/events", "/events?q=" + quote(title), f"/events/{event['slug']}"):
        await page.goto(path)
        await expect(page.get_by_text(title, exact=True).first).to_be_visible()
        assert await page.evaluate("typeof window.pwned") == "undefined", path
    await expect(page.get_by_role("heading", level=1)).to_have_text(title)
    await expect(page.get_by_test_id("description")).to_have_text(description)
    await expect(page.get_by_text("<i>VIP</i>")).to_be_visible()
    await expect(page.locator("b, i, u, img")).to_have_count(0)
    await expect(page).to_have_title(f"{title} · Kwika")


async def test_unknown_event_is_a_404_page(page: Page) -> None:
    response = await page.goto("/events/no-such-event")
    assert response is not None and response.status == 404
    await expect(page.get_by_role("heading", level=1)).to_have_text("Page not found")
    await expect(page.get_by_test_id("error-message")).to_contain_text("/events/no-such-event")
    await page.get_by_role("link", name="Back to events").click()
    await expect(page).to_have_url(re.compile(r"/events$"))


async def test_inline_code_is_refused_by_the_csp_and_fails_the_test(page: Page,
                                                                    console: Console) -> None:
    """What the fixture catches: code injected into a page is blocked and reported."""
    await page.goto("/events")
    async with page.expect_console_message(lambda m: "CSP violation" in m.text):
        await page.evaluate("""() => {
          const s = document.createElement("script");
          s.textContent = "window.injected = 1";
          document.body.append(s);
        }""")
    assert await page.evaluate("typeof window.injected") == "undefined"
    assert any("script-src" in e for e in console.unexpected()), console.errors
    console.allow(r"script-src")  # seen; the fixture would fail this test otherwise


# --- accounts ----------------------------------------------------------------------------------
async def register(page: Page, name: str, email: str, password: str) -> None:
    await page.goto("/register")
    await page.get_by_label("Name", exact=True).fill(name)
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Create account").click()


async def log_out(page: Page) -> None:
    """Open the account menu, then log out."""
    await page.get_by_test_id("account-menu").locator("summary").click()
    await page.get_by_role("button", name="Log out").click()


async def log_in(page: Page, email: str, password: str) -> None:
    await page.get_by_label("Email", exact=True).fill(email)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Log in").click()


async def test_register_log_out_and_log_in_again(page: Page, client: TestClient) -> None:
    await register(page, "Chikondi Banda", "chikondi@example.test", PASSWORD)
    await expect(page).to_have_url(re.compile(r"/events$"))
    await expect(page.get_by_test_id("who")).to_have_text("Chikondi Banda")

    await log_out(page)
    await expect(page.get_by_test_id("who")).to_have_count(0)
    await expect(page.get_by_role("link", name="Log in")).to_be_visible()

    await page.get_by_role("link", name="Log in").click()
    await expect(page).to_have_url(re.compile(r"/login$"))
    await log_in(page, "chikondi@example.test", PASSWORD)
    await expect(page).to_have_url(re.compile(r"/events$"))
    await expect(page.get_by_test_id("who")).to_have_text("Chikondi Banda")

    # the session survives a reload, and a fresh context is logged out
    await page.reload()
    await expect(page.get_by_test_id("who")).to_have_text("Chikondi Banda")
    other = await page.context.browser.new_context()
    try:
        fresh = await other.new_page()
        await fresh.goto(str(client.make_url("/events")))
        await expect(fresh.get_by_role("link", name="Log in")).to_be_visible()
        await expect(fresh.get_by_test_id("who")).to_have_count(0)
    finally:
        await other.close()


async def test_log_in_from_an_event_page_comes_back_to_it(page: Page, factory: Factory,
                                                          provider: Actor) -> None:
    event = await publish(factory, provider, title="Homecoming")
    await register(page, "Tiwonge Phiri", "tiwonge@example.test", PASSWORD)
    await log_out(page)

    await page.goto(f"/events/{event['slug']}")
    await page.get_by_role("link", name="Log in").click()
    await log_in(page, "tiwonge@example.test", PASSWORD)
    await expect(page).to_have_url(re.compile(f"/events/{event['slug']}$"))
    await expect(page.get_by_test_id("who")).to_have_text("Tiwonge Phiri")


async def test_wrong_password_shows_an_error(page: Page) -> None:
    await register(page, "Mphatso Kaunda", "mphatso@example.test", PASSWORD)
    await log_out(page)

    await page.goto("/login")
    await log_in(page, "mphatso@example.test", "not the password")
    alert = page.get_by_role("alert")
    await expect(alert).to_have_text("Email or password is wrong.")
    await expect(page.get_by_label("Email", exact=True)).to_have_value("mphatso@example.test")
    await expect(page.get_by_label("Password", exact=True)).to_have_value("")
    await expect(page.get_by_test_id("who")).to_have_count(0)


async def test_register_with_a_taken_email_shows_the_problem(page: Page) -> None:
    await register(page, "First", "taken@example.test", PASSWORD)
    await log_out(page)
    await register(page, "Second", "taken@example.test", PASSWORD)
    await expect(page.get_by_role("alert")).to_have_text("Please correct the field marked below.")
    await expect(page.get_by_test_id("error-email")).to_have_text(
        "An account with this email address exists already.")
    await expect(page.get_by_label("Name", exact=True)).to_have_value("Second")  # the form keeps its input
    await expect(page.get_by_label("Password", exact=True)).to_have_value("")   # but never the password
    await expect(page.get_by_test_id("who")).to_have_count(0)


async def test_register_provider_without_business_name_marks_the_field(page: Page) -> None:
    await page.goto("/register")
    await page.get_by_label("Name", exact=True).fill("Seller")
    await page.get_by_label("Email", exact=True).fill("seller@example.test")
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("sell tickets for my events").check()
    await page.get_by_role("button", name="Create account").click()
    business = page.get_by_label("Business name (sellers)")
    await expect(business).to_have_attribute("aria-invalid", "true")
    await expect(page.get_by_test_id("error-business_name")).to_have_text("Enter your business name.")
    await expect(page.get_by_label("sell tickets for my events")).to_be_checked()

