"""Calendar files (RFC 5545), share links, and the money / time filters of the templates."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from engine import catalog_types as t
from storefront.calendar import google_calendar_link, ics, share_links
from storefront.templating import local, make_environment, money, timespan

BLANTYRE = ZoneInfo("Africa/Blantyre")  # UTC+2, no daylight saving
URL = "https://tickets.example/events/lake-of-stars"
NOW = datetime(2026, 3, 1, 8, 30, tzinfo=UTC)


def event(**fields: Any) -> t.Event:
    values: dict[str, Any] = {
        "id": 7, "provider_id": 1, "slug": "lake-of-stars", "title": "Lake of Stars",
        "description": "", "category": "music", "venue": "Sunbird Nkopola",
        "address": "Nkopola Road", "city": "Mangochi", "latitude": None, "longitude": None,
        "starts_at": datetime(2026, 9, 25, 14, 0, tzinfo=BLANTYRE),
        "ends_at": datetime(2026, 9, 27, 23, 0, tzinfo=BLANTYRE),
        "timezone": "Africa/Blantyre", "cover_image_url": None, "status": "published",
        "requires_seating": False, "allow_guest_checkout": True, "uses_waiting_room": False,
        "currency": "MWK", "max_tickets_per_buyer": 10, "service_fee": 0, "tickets_sold": 0, "published_at": NOW,
        "created_at": NOW, "updated_at": NOW, **fields}
    return t.Event(**values)


def unfold(text: str) -> list[str]:
    """The logical content lines of a calendar file (RFC 5545 §3.1)."""
    assert text.endswith("\r\n")
    return text[:-2].replace("\r\n ", "").split("\r\n")


def prop(text: str, name: str) -> str:
    """The value of the first property `name` (unfolded, still escaped)."""
    for line in unfold(text):
        if line.split(":", 1)[0] == name:
            return line.split(":", 1)[1]
    raise AssertionError(f"no {name} in {text!r}")


def unescape(value: str) -> str:
    out, chars = [], iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars)
            out.append("\n" if nxt in "nN" else nxt)
        else:
            out.append(ch)
    return "".join(out)


# --- ics -----------------------------------------------------------------------------------
def test_ics_is_one_event_in_a_calendar_with_crlf_line_endings() -> None:
    text = ics(event(description="line one\nline two"), URL, now=NOW)
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n")
    assert text.endswith("END:VEVENT\r\nEND:VCALENDAR\r\n")
    bare = text.replace("\r\n", "")
    assert "\n" not in bare and "\r" not in bare, "every line break must be CRLF"
    lines = unfold(text)
    assert lines.count("BEGIN:VEVENT") == 1 and lines.count("END:VEVENT") == 1
    assert prop(text, "UID") == "event-7@kwika"
    assert prop(text, "URL") == URL
    assert prop(text, "STATUS") == "CONFIRMED"


def test_ics_times_are_utc() -> None:
    text = ics(event(), URL, now=NOW)
    # 14:00 in Blantyre (UTC+2) is 12:00 UTC
    assert prop(text, "DTSTART") == "20260925T120000Z"
    assert prop(text, "DTEND") == "20260927T210000Z"
    assert prop(text, "DTSTAMP") == "20260301T083000Z"


def test_ics_times_cross_midnight_into_utc() -> None:
    text = ics(event(starts_at=datetime(2026, 1, 1, 1, 30, tzinfo=BLANTYRE),
                     ends_at=datetime(2026, 1, 1, 4, 0, tzinfo=BLANTYRE)), URL, now=NOW)
    assert prop(text, "DTSTART") == "20251231T233000Z"


def test_ics_escapes_commas_semicolons_backslashes_and_newlines() -> None:
    text = ics(event(title="Jazz, Blues; Soul \\ more",
                     description="First line\nSecond, line\r\nThird; line\rFourth"), URL, now=NOW)
    assert prop(text, "SUMMARY") == "Jazz\\, Blues\\; Soul \\\\ more"
    assert prop(text, "DESCRIPTION") == (
        "First line\\nSecond\\, line\\nThird\\; line\\nFourth\\n" + URL.replace(",", "\\,"))
    assert prop(text, "LOCATION") == "Sunbird Nkopola\\, Nkopola Road\\, Mangochi"


def test_ics_drops_control_characters_text_may_not_hold() -> None:
    text = ics(event(title="Bell\x07 and\x00 null\ttab"), URL, now=NOW)
    assert prop(text, "SUMMARY") == "Bell and null\ttab"


def test_ics_description_without_text_is_the_url() -> None:
    assert prop(ics(event(description=""), URL, now=NOW), "DESCRIPTION") == URL


def test_ics_folds_lines_at_75_octets_without_splitting_characters() -> None:
    title = "Ngoma " + "é" * 40 + " 🎶" * 20 + " festival"
    description = "word, " * 100
    text = ics(event(title=title, description=description), URL, now=NOW)
    physical = text[:-2].split("\r\n")
    assert max(len(line.encode()) for line in physical) == 75, "long lines should be folded"
    for line in physical:
        assert len(line.encode()) <= 75, line
        line.encode().decode()  # each physical line is whole UTF-8: no character split
    continuation = [line for line in physical if line.startswith(" ")]
    assert len(continuation) > 5
    assert unescape(prop(text, "SUMMARY")) == title
    assert unescape(prop(text, "DESCRIPTION")) == description.strip() + "\n" + URL


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1, max_size=400))
def test_ics_round_trips_any_title(title: str) -> None:
    text = ics(event(title=title), URL, now=NOW)
    for line in text[:-2].split("\r\n"):
        assert len(line.encode()) <= 75
        assert "\r" not in line and "\n" not in line
    controls = {chr(c) for c in range(32) if chr(c) not in "\t\n\r"} | {"\x7f"}
    expected = "".join(ch for ch in title.replace("\r\n", "\n").replace("\r", "\n")
                       if ch not in controls)
    assert unescape(prop(text, "SUMMARY")) == expected


def test_ics_geo_and_cancelled_status() -> None:
    text = ics(event(latitude=-14.35, longitude=35.25, status="cancelled"), URL, now=NOW)
    assert prop(text, "GEO") == "-14.35;35.25"
    assert prop(text, "STATUS") == "CANCELLED"
    lines = unfold(text)
    assert lines.index("END:VEVENT") > lines.index("GEO:-14.35;35.25")  # inside the event
    assert "GEO" not in ics(event(), URL, now=NOW)


# --- share links -----------------------------------------------------------------------------
def test_share_links_encode_the_title_and_url() -> None:
    links = share_links("Jazz & Blues #1", URL)
    assert set(links) == {"WhatsApp", "Facebook", "X", "Email"}
    assert parse_qs(urlsplit(links["WhatsApp"]).query) == {"text": [f"Jazz & Blues #1 {URL}"]}
    assert parse_qs(urlsplit(links["Facebook"]).query) == {"u": [URL]}
    assert parse_qs(urlsplit(links["X"]).query) == {"text": ["Jazz & Blues #1"], "url": [URL]}
    assert links["Email"] == ("mailto:?subject=Jazz%20%26%20Blues%20%231"
                              "&body=https%3A%2F%2Ftickets.example%2Fevents%2Flake-of-stars")
    for link in links.values():
        assert " " not in link and "#" not in link


def test_google_calendar_link_has_utc_dates() -> None:
    query = parse_qs(urlsplit(google_calendar_link(event(title="A, B"), URL)).query)
    assert query["dates"] == ["20260925T120000Z/20260927T210000Z"]
    assert query["text"] == ["A, B"]
    assert query["details"] == [URL]
    assert query["location"] == ["Sunbird Nkopola, Mangochi"]


# --- money and time filters ------------------------------------------------------------------
def test_money_formats_minor_units() -> None:
    assert money(1_500_000, "MWK") == "MWK 15,000.00"
    assert money(4_500_000, "MWK") == "MWK 45,000.00"
    assert money(5, "USD") == "USD 0.05"
    assert money(0, "MWK") == "MWK 0.00"
    assert money(123_456_789_012, "MWK") == "MWK 1,234,567,890.12"
    assert money(None, "MWK") == ""
    assert money(1_500_000) == "MWK 15,000.00"  # MWK is the default


def test_money_currencies_without_or_with_three_decimals() -> None:
    assert money(1500, "JPY") == "JPY 1,500"
    assert money(0, "JPY") == "JPY 0"
    assert money(2_500_000, "UGX") == "UGX 2,500,000"
    assert money(1_234_567, "BHD") == "BHD 1,234.567"
    assert money(5, "KWD") == "KWD 0.005"


def test_money_negatives_put_the_sign_first() -> None:
    assert money(-1_500_000, "MWK") == "-MWK 15,000.00"
    assert money(-5, "USD") == "-USD 0.05"
    assert money(-1500, "JPY") == "-JPY 1,500"
    assert money(-1, "BHD") == "-BHD 0.001"


def test_money_normalises_the_currency_code() -> None:
    assert money(100, "usd ") == "USD 1.00"


def test_local_shows_times_in_the_event_zone() -> None:
    utc = datetime(2026, 9, 25, 12, 0, tzinfo=UTC)
    assert local(utc, "Africa/Blantyre") == "Fri 25 Sep 2026, 14:00"
    assert local(utc, "Asia/Tokyo", "%H:%M") == "21:00"
    assert local(utc, "Not/AZone") == "Fri 25 Sep 2026, 12:00"  # unknown zone: as given
    assert local(utc, None) == "Fri 25 Sep 2026, 12:00"
    assert local(None, "Africa/Blantyre") == ""


def test_timespan_on_one_day_and_across_days() -> None:
    start = datetime(2026, 9, 25, 12, 0, tzinfo=UTC)
    assert timespan(start, start + timedelta(hours=3), "Africa/Blantyre") == \
        "Fri 25 Sep 2026, 14:00 – 17:00"
    # 21:00 UTC is 23:00 in Blantyre: still the same local day
    assert timespan(start, start + timedelta(hours=9), "Africa/Blantyre") == \
        "Fri 25 Sep 2026, 14:00 – 23:00"
    # 23:00 UTC is 01:00 the next day in Blantyre
    assert timespan(start, start + timedelta(hours=11), "Africa/Blantyre") == \
        "Fri 25 Sep 2026, 14:00 – Sat 26 Sep 2026, 01:00"


def test_templates_escape_user_text() -> None:
    env = make_environment(Path(__file__).resolve().parents[1] / "storefront" / "templates")
    template = env.from_string('<a title="{{ v }}">{{ v }}</a> {{ p|money("MWK") }}')
    html = template.render(v='<script>"x"&\'y\'</script>', p=250)
    assert html == ('<a title="&lt;script&gt;&#34;x&#34;&amp;&#39;y&#39;&lt;/script&gt;">'
                    '&lt;script&gt;&#34;x&#34;&amp;&#39;y&#39;&lt;/script&gt;</a> MWK 2.50')
