"""What an order's letters say: the record's plain values (engine/tickets/record.py, shared with
the buyer's My tickets pages). Letters are built from these; the PDF documents too (`order_doc`,
each payload signed with the current key)."""

from engine.tickets.record import (
    LIVE,
    EventFacts,
    OrderFacts,
    TicketFacts,
    load_order,
    order_doc,
    ticket_doc,
)

__all__ = ["LIVE", "EventFacts", "OrderFacts", "TicketFacts", "load_order", "order_doc",
           "ticket_doc"]
