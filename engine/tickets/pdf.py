"""An order's PDF tickets: one A4 page per ticket, drawn with fpdf2, the QR code with segno.

`render_order_pdf` is pure and CPU-bound (~50 ms a page on this machine): call it through
`TicketRenderer` (engine/tickets/store.py), never on the event loop.

The QR code holds the signed payload at error correction level Q (25% of the code may be lost to
a fold, a stain or a glare; segno raises it to H when that fits the same size), drawn as vector
squares 85 mm wide with its quiet zone: a typical payload is a version 8 code, ~1.5 mm a module,
which a phone reads at arm's length from paper and a gate scanner from a screen.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import segno
from fpdf import FPDF
from fpdf.drawing import PaintedPath
from fpdf.enums import MethodReturnValue, XPos, YPos

from engine.tickets.docs import EventDoc, OrderDoc, TicketDoc

FONTS = Path(__file__).parent / "fonts"
FONT = "DejaVu"
QR_ERROR = "q"
QR_SIZE = 85.0  # mm, quiet zone included
QR_BORDER = 4  # modules of quiet zone, as the QR standard asks
MARGIN = 15.0
INK, MUTED, ACCENT, LINE = (27, 31, 36), (91, 101, 112), (194, 65, 12), (227, 230, 234)
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def render_order_pdf(order: OrderDoc) -> bytes:
    """The PDF of `order`: one page per ticket, in order."""
    if not order.tickets:
        raise ValueError(f"order {order.order_number} has no tickets to render")
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_auto_page_break(False)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.add_font(FONT, "", FONTS / "DejaVuSans.ttf")
    pdf.add_font(FONT, "B", FONTS / "DejaVuSans-Bold.ttf")
    pdf.set_title(_line(f"Tickets {order.order_number}: {order.event.title}"))
    pdf.set_author(_line(order.event.provider_name))
    pdf.set_creator("Kwika")
    for n, ticket in enumerate(order.tickets, 1):
        _page(pdf, order, ticket, n)
    return bytes(pdf.output())


def when_words(event: EventDoc) -> tuple[str, str]:
    """The date line and the times line of a ticket, in the event's time zone:
    ("Sat 11 Jan 2027, doors 18:00", "Starts 19:00 · ends 23:00 · Blantyre time (CAT)")."""
    zone = _zone(event.timezone)
    start = _local(event.starts_at, zone)
    date = f"{_DAYS[start.weekday()]} {start.day} {_MONTHS[start.month - 1]} {start.year}"
    times = []
    if event.doors_at is not None:
        first = f"{date}, doors {_local(event.doors_at, zone):%H:%M}"
        times.append(f"Starts {start:%H:%M}")
    else:
        first = f"{date}, {start:%H:%M}"
    if event.ends_at is not None:
        end = _local(event.ends_at, zone)
        same_day = end.date() == start.date()
        ends = f"{end:%H:%M}" if same_day else \
            f"{_DAYS[end.weekday()]} {end.day} {_MONTHS[end.month - 1]}, {end:%H:%M}"
        times.append(("ends " if times else "Ends ") + ends)
    place = event.timezone.rsplit("/", 1)[-1].replace("_", " ") if zone else ""
    abbreviation = start.tzname() or ""
    times.append(f"{place} time ({abbreviation})" if place else f"times {abbreviation}".strip())
    return first, " · ".join(times)


def _page(pdf: FPDF, order: OrderDoc, ticket: TicketDoc, n: int) -> None:
    event = order.event
    pdf.add_page()
    width = pdf.w - 2 * MARGIN
    # header: brand and page count
    pdf.set_text_color(*ACCENT)
    pdf.set_font(FONT, "B", 11)
    pdf.set_xy(MARGIN, MARGIN)
    pdf.cell(width / 2, 6, "Kwika · e-ticket")
    pdf.set_text_color(*MUTED)
    pdf.set_font(FONT, "", 10)
    pdf.cell(width / 2, 6, f"Ticket {n} of {len(order.tickets)}", align="R",
             new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.ln(4)
    # the event
    pdf.set_text_color(*INK)
    _fitted(pdf, event.title, width, sizes=(26, 22, 18, 15), max_lines=2, line=1.2, style="B")
    pdf.set_text_color(*MUTED)
    _fitted(pdf, f"Presented by {event.provider_name}", width, sizes=(11,), max_lines=1)
    pdf.ln(3)
    _rule(pdf)
    pdf.ln(4)
    first, times = when_words(event)
    pdf.set_text_color(*INK)
    _fitted(pdf, first, width, sizes=(17, 14), max_lines=1, style="B")
    pdf.set_text_color(*MUTED)
    _fitted(pdf, times, width, sizes=(11, 9), max_lines=1)
    pdf.ln(3)
    pdf.set_text_color(*INK)
    if event.venue:
        _fitted(pdf, event.venue, width, sizes=(13, 11), max_lines=1, style="B")
    where = ", ".join(p for p in (_line(event.address), _line(event.city)) if p)
    if where:
        pdf.set_text_color(*MUTED)
        _fitted(pdf, where, width, sizes=(11, 9), max_lines=2)
    pdf.ln(6)
    top = pdf.get_y()
    _qr(pdf, ticket.payload, MARGIN, top, QR_SIZE)
    # the ticket number under the code, for typing in at a gate
    pdf.set_xy(MARGIN, top + QR_SIZE + 1)
    pdf.set_text_color(*MUTED)
    pdf.set_font(FONT, "", 8)
    pdf.cell(QR_SIZE, 4, "Ticket number", align="C", new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    _fitted(pdf, ticket.ticket_number, QR_SIZE, sizes=(13, 11, 9), max_lines=1, style="B",
            align="C")
    # who and where, beside the code
    left = MARGIN + QR_SIZE + 8
    column = pdf.w - MARGIN - left
    pdf.set_left_margin(left)
    pdf.set_xy(left, top + 3)
    _fact(pdf, "Attendee", ticket.attendee_name, column, size=16)
    _fact(pdf, "Ticket", ticket.package_name, column, size=13)
    if ticket.seat is not None:
        _seat(pdf, ticket, column)
    else:
        _fact(pdf, "Seat", "General admission", column, size=13)
    _fact(pdf, "Order", order.order_number, column, size=10)
    pdf.set_left_margin(MARGIN)
    # terms at the foot of the page
    pdf.set_y(pdf.h - MARGIN - 34)
    _rule(pdf)
    pdf.ln(3)
    pdf.set_text_color(*MUTED)
    _fitted(pdf, order.terms, width, sizes=(8, 7), max_lines=6, line=1.35)


def _fact(pdf: FPDF, label: str, value: str, width: float, size: int) -> None:
    pdf.set_text_color(*MUTED)
    pdf.set_font(FONT, "", 8)
    pdf.cell(width, 4, label.upper(), new_x=XPos.LMARGIN, new_y=YPos.NEXT)
    pdf.set_text_color(*INK)
    _fitted(pdf, value, width, sizes=(size, size - 2, size - 4), max_lines=2, style="B")
    pdf.ln(3)


def _seat(pdf: FPDF, ticket: TicketDoc, width: float) -> None:
    """Section, row and seat in large type, side by side (a row-less seat shows two)."""
    seat = ticket.seat
    parts = [("Section", seat.section)]
    if seat.row:
        parts.append(("Row", seat.row))
    parts.append(("Seat", seat.seat))
    x, y = pdf.get_x(), pdf.get_y()
    if len(_line(seat.section)) > 12:  # a long section name takes a line of its own
        _fact(pdf, "Section", seat.section, width, size=14)
        parts, x, y = parts[1:], pdf.get_x(), pdf.get_y()
    cell = width / len(parts)
    for i, (label, value) in enumerate(parts):
        pdf.set_xy(x + i * cell, y)
        pdf.set_text_color(*MUTED)
        pdf.set_font(FONT, "", 8)
        pdf.cell(cell, 4, label.upper())
        pdf.set_xy(x + i * cell, y + 4)
        pdf.set_text_color(*INK)
        _fitted(pdf, value, cell - 2, sizes=(22, 16, 12), max_lines=1, style="B")
    pdf.set_xy(x, y + 17)


def _qr(pdf: FPDF, payload: str, x: float, y: float, size: float) -> None:
    """The code as one filled path of squares (no seams between modules when rasterised)."""
    qr = segno.make(payload, error=QR_ERROR, micro=False)
    modules = qr.symbol_size(scale=1, border=QR_BORDER)[0]
    unit = size / modules
    path = PaintedPath()
    path.style.fill_color = "#000000"
    path.style.stroke_color = None
    for r, row in enumerate(qr.matrix):
        c = 0
        while c < len(row):
            if row[c]:
                start = c
                while c < len(row) and row[c]:
                    c += 1
                path.rectangle(x + (QR_BORDER + start) * unit, y + (QR_BORDER + r) * unit,
                               (c - start) * unit, unit)
            else:
                c += 1
    pdf.draw_path(path, copy=False)  # fpdf2 deep-copies a path by default: ~0.4 s for a code


def _fitted(pdf: FPDF, text: str, width: float, sizes: tuple[int, ...], max_lines: int,
            line: float = 1.25, style: str = "", align: str = "L") -> None:
    """`text` at the largest of `sizes` that fits `max_lines` lines of `width`; at the smallest,
    cut to `max_lines` with an ellipsis."""
    text = _line(text)
    for size in sizes:
        pdf.set_font(FONT, style, size)
        height = size * 0.3528 * line  # points to mm
        if pdf.get_string_width(text) <= width - 2 * pdf.c_margin:  # the usual case, cheaply
            lines = [text]
            break
        lines = pdf.multi_cell(width, height, text, dry_run=True, output=MethodReturnValue.LINES)
        if len(lines) <= max_lines:
            break
    else:
        last = " ".join(lines[max_lines - 1:]).rstrip()  # all that does not fit, cut to one line
        lines = lines[:max_lines]
        lines[-1] = _cut(pdf, last, width - 2 * pdf.c_margin)
    x = pdf.get_x()
    for text_line in lines:
        pdf.set_x(x)
        pdf.cell(width, height, text_line, align=align, new_x=XPos.LEFT, new_y=YPos.NEXT)


def _cut(pdf: FPDF, text: str, width: float) -> str:
    """The longest start of `text` that fits `width` with an ellipsis after it."""
    low, high = 0, len(text)
    while low < high:  # binary search: the text may be long
        middle = (low + high + 1) // 2
        if pdf.get_string_width(text[:middle] + "…") <= width:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "…"


def _rule(pdf: FPDF) -> None:
    pdf.set_draw_color(*LINE)
    pdf.set_line_width(0.4)
    pdf.line(MARGIN, pdf.get_y(), pdf.w - MARGIN, pdf.get_y())


def _line(text: str) -> str:
    """One line of printable text: line breaks become spaces; controls and direction overrides
    (which the catalog refuses anyway) are dropped."""
    return " ".join("".join(ch for ch in text if ch.isprintable() or ch.isspace()).split())


def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name) if name else None
    except (ZoneInfoNotFoundError, ValueError):
        return None


def _local(value: datetime, zone: ZoneInfo | None) -> datetime:
    return value.astimezone(zone) if zone else value
