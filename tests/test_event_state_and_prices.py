"""What an event page and the event API tell a buyer: whether the event sells right now (from the
live inventory and the event's status), and what tickets cost when seats carry price modifiers.
"""

from __future__ import annotations

from typing import Any

import pytest

from engine import catalog_types as t
from engine.catalog_rules import event_sale_status
from engine.prices import event_range, package_range
from tests.factories import Actor, Factory

EV = "/api/provider/events"


@pytest.fixture
async def provider(factory: Factory) -> Actor:
    return await factory.user("provider")


async def detail(client, slug: str) -> dict[str, Any]:
    resp = await client.get(f"/api/events/{slug}")
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def page(client, slug: str) -> str:
    resp = await client.get(f"/events/{slug}")
    assert resp.status == 200
    return await resp.text()


# --- whether it sells ------------------------------------------------------------------------
@pytest.mark.parametrize("event_status, live, expected", [
    ("published", "on_sale", "on_sale"), ("published", "paused", "paused"),
    ("published", "closed", "closed"), ("published", None, "closed"),
    ("postponed", "paused", "paused"), ("postponed", None, "paused"),
    ("cancelled", "closed", "closed"), ("completed", None, "closed"), ("draft", None, "closed"),
])
def test_event_sale_status(event_status, live, expected):
    assert event_sale_status(event_status, live) == expected


async def test_a_postponed_event_says_sales_are_paused(client, factory, provider):
    event = await factory.published_event(provider, packages=2)
    before = await detail(client, event["slug"])
    assert before["sale_status"] == "on_sale"
    assert {p["sale_state"] for p in before["packages"]} == {"on_sale"}

    resp = await client.post(f"{EV}/{event['id']}/postpone", json={}, headers=provider.h)
    assert resp.status == 200, await resp.text()
    after = await detail(client, event["slug"])
    assert after["sale_status"] == "paused"
    assert {p["sale_state"] for p in after["packages"]} == {"paused"}
    html = await page(client, event["slug"])
    assert "On sale now" not in html
    states = [html.split(f'data-testid="state-{p["id"]}">')[1].split("<")[0] for p in after["packages"]]
    assert states == ["Paused", "Paused"]
    assert "Ticket sales are paused." in html

    # and the holds it shows as paused are indeed refused
    pkg = after["packages"][0]["id"]
    resp = await client.post(f"/api/events/{event['id']}/holds",
                             json={"items": [{"package_id": pkg, "quantity": 1}]})
    assert resp.status == 409 and (await resp.json())["error"] == "not_on_sale"


async def test_an_event_whose_stock_is_not_loaded_is_not_shown_on_sale(client, factory, provider,
                                                                      rds, settings):
    event = await factory.published_event(provider)
    keys = [k async for k in rds.scan_iter(match=f"{settings.redis_prefix}:{{ev:{event['id']}}}:*")]
    assert keys
    await rds.delete(*keys)
    body = await detail(client, event["slug"])
    assert body["sale_status"] == "closed"
    assert {p["sale_state"] for p in body["packages"]} == {"closed"}
    html = await page(client, event["slug"])
    assert "On sale now" not in html and "Ticket sales are closed." in html


async def test_a_draft_shows_its_provider_the_windows_it_will_open_with(client, factory, provider):
    event = await factory.event(provider)
    await factory.package(provider, event["id"])
    body = await (await client.get(f"{EV}/{event['id']}", headers=provider.h)).json()
    assert body["sale_status"] == "closed"
    assert [p["sale_state"] for p in body["packages"]] == ["on_sale"]


# --- what tickets cost -----------------------------------------------------------------------
def pkg(id: int, price: int) -> t.Package:
    return t.Package(id=id, event_id=1, name=f"P{id}", description="", price=price, capacity=10,
                     min_per_order=1, max_per_order=10, per_buyer_limit=None, opens_at=None,
                     closes_at=None, sort_order=0, is_active=True)


def section(package_id: int, low: int, high: int) -> t.SectionPrices:
    return t.SectionPrices(id=package_id * 10, name="S", package_id=package_id, capacity=5,
                           price_min=low, price_max=high)


def test_price_ranges_fold_in_the_seats():
    stalls, standing = pkg(1, 25_000), pkg(2, 10_000)
    sections = [section(1, 25_000, 30_000), section(1, 20_000, 26_000)]
    assert package_range(stalls, sections) == (20_000, 30_000)
    assert package_range(standing, sections) == (10_000, 10_000)  # no seats: its price
    assert event_range([stalls, standing], sections) == (10_000, 30_000)
    assert event_range([stalls], sections) == (20_000, 30_000)
    assert event_range([], []) == (None, None)


async def seated_event(client, factory, provider, **fields) -> tuple[dict, dict]:
    """Stalls at 25,000 (rows A +5,000 and C -2,000) and an unseated Standing at 10,000."""
    event = await factory.event(provider, requires_seating=True, **fields)
    stalls = await factory.package(provider, event["id"], name="Stalls", price=2_500_000)
    await factory.package(provider, event["id"], name="Standing", price=1_000_000)
    await factory.section(provider, event["id"], stalls["id"], name="Front", rows=3,
                          seats_per_row=4, row_price_modifiers={"A": 500_000, "C": -200_000})
    await factory.section(provider, event["id"], stalls["id"], name="Back", rows=1,
                          seats_per_row=4)
    resp = await client.post(f"{EV}/{event['id']}/publish", headers=provider.h)
    assert resp.status == 200, await resp.text()
    return event, stalls


async def test_seated_event_prices_include_row_modifiers(client, factory, provider):
    event, stalls = await seated_event(client, factory, provider, slug="seated")
    body = await detail(client, "seated")
    assert (body["price_min"], body["price_max"]) == (1_000_000, 3_000_000)
    sections = {s["name"]: (s["package_id"], s["price_min"], s["price_max"], s["capacity"])
                for s in body["sections"]}
    assert sections == {"Front": (stalls["id"], 2_300_000, 3_000_000, 12),
                        "Back": (stalls["id"], 2_500_000, 2_500_000, 4)}
    # the seat map agrees with the ranges
    seats = await (await client.get(f"/api/events/{event['id']}/seating")).json()
    front = next(s for s in seats["sections"] if s["name"] == "Front")
    assert {s["price"] for s in front["seats"]} == {3_000_000, 2_500_000, 2_300_000}


async def test_search_prices_and_price_order_include_seats(client, factory, provider):
    await seated_event(client, factory, provider, slug="seated")
    plain = await factory.published_event(provider, slug="plain")  # one package at 5,000
    assert plain
    resp = await client.get("/api/events", params={"sort": "price", "order": "desc"})
    items = (await resp.json())["items"]
    ranges = {e["slug"]: (e["price_min"], e["price_max"]) for e in items}
    assert ranges == {"seated": (1_000_000, 3_000_000), "plain": (500_000, 500_000)}
    assert [e["slug"] for e in items] == ["seated", "plain"]
    resp = await client.get("/api/events", params={"sort": "price"})
    assert [e["slug"] for e in (await resp.json())["items"]] == ["plain", "seated"]


async def test_a_repriced_package_moves_its_seats(client, factory, provider):
    event, stalls = await seated_event(client, factory, provider, slug="seated")
    resp = await client.patch(f"{EV}/{event['id']}/packages/{stalls['id']}",
                              json={"price": 100_000}, headers=provider.h)
    assert resp.status == 200, await resp.text()
    body = await detail(client, "seated")
    assert (body["price_min"], body["price_max"]) == (0, 1_000_000)  # C row: never below 0
    sections = {s["name"]: (s["price_min"], s["price_max"]) for s in body["sections"]}
    assert sections == {"Front": (0, 600_000), "Back": (100_000, 100_000)}


async def test_the_event_page_shows_each_section_s_price_range(client, factory, provider):
    await seated_event(client, factory, provider, slug="seated")
    html = await page(client, "seated")
    rows = html.split('data-testid="best-available"')[1].split("</form>")[0]  # its section choice
    assert "Front" in rows and "MWK 23,000.00 – MWK 30,000.00" in rows
    assert "Back" in rows and "MWK 25,000.00" in rows
    packages = html.split('data-testid="packages"')[1].split("</ul>")[0]
    assert "MWK 23,000.00 – MWK 30,000.00" in packages  # Stalls: what its seats cost
    assert "MWK 10,000.00" in packages
    listing = await (await client.get("/events")).text()
    assert "MWK 10,000.00 – MWK 30,000.00" in listing
