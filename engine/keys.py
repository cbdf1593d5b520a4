"""Every Redis key name Kwika uses, built in one place.

Keys of one event carry that event's hash tag, `{ev:<id>}`, so every script that touches one event
touches one Cluster slot. Keys that span events never appear inside an event's script.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


def _untag(text: str) -> str:
    return text.replace("%", "%25").replace("{", "%7B").replace("}", "%7D")


PREFIX = re.compile(r"[A-Za-z0-9_.-]{1,32}")


@dataclass(frozen=True, slots=True)
class Keys:
    """Key builders under one prefix (`kw` in production; a per-test prefix in the suite).

    The prefix is letters, digits, `_`, `.` and `-` only: braces would break the hash tags."""

    prefix: str = "kw"

    def __post_init__(self) -> None:
        if not PREFIX.fullmatch(self.prefix):
            raise ValueError(f"Redis key prefix {self.prefix!r} must be 1-32 letters, digits, "
                             "'_', '.' or '-'")

    # --- accounts -------------------------------------------------------------------------
    def session(self, session_id: str) -> str:
        """Hash: user id, role and CSRF token of one login session."""
        return f"{self.prefix}:session:{session_id}"

    def attempts_from(self, action: str, address: str) -> str:
        """Counter of `action` attempts (login, register) from one client address in the current
        window; expires by itself. Braces in the address are escaped."""
        return f"{self.prefix}:attempts:{action}:{_untag(address)}"

    @staticmethod
    def login_tag(email: str) -> str:
        """`{login:<email>}`: the hash tag of one account's login keys, so the login scripts
        touch one Cluster slot. The email is case-folded (one account per mailbox) and its braces
        escaped, so user input never ends the tag early or forms one of its own."""
        return f"{{login:{_untag(email.strip().lower())}}}"

    def login_account(self, email: str) -> str:
        """Hash of one account's recent failed logins from every address: `fails`, `next_ms`."""
        return f"{self.prefix}:{self.login_tag(email)}:account"

    def login_address(self, email: str, address: str) -> str:
        """Counter of one account's recent failed logins from one client address."""
        return f"{self.prefix}:{self.login_tag(email)}:address:{_untag(address)}"

    def login_known(self, email: str) -> str:
        """Set of client addresses that have logged in to one account lately."""
        return f"{self.prefix}:{self.login_tag(email)}:known"

    def user(self, user_id: int) -> str:
        """A user's identity (role, provider), cached for a minute so requests skip Postgres."""
        return f"{self.prefix}:user:{user_id}"

    def token(self, digest_hex: str) -> str:
        """What an API token (by its SHA-256) grants: user, scope, expiry; cached for a minute.
        (Named `tokengrant`: the older `token` entries held a bare user id.)"""
        return f"{self.prefix}:tokengrant:{digest_hex}"

    # --- one event (hash-tagged) ----------------------------------------------------------
    @staticmethod
    def event_tag(event_id: int) -> str:
        return f"{{ev:{event_id}}}"

    def event(self, event_id: int, name: str) -> str:
        """A key of one event, e.g. `kw:{ev:42}:stock`."""
        return f"{self.prefix}:{self.event_tag(event_id)}:{name}"

    def draft(self, event_id: int, hold_id: str) -> str:
        """The order draft of one hold (engine/orders.py); hold ids are checked ids, no braces."""
        return self.event(event_id, f"draft:{_untag(hold_id)}")

    def room(self, event_id: int) -> tuple[str, ...]:
        """The seven keys of an event's waiting room, in the order of scripts/lua/includes/room.lua:
        its settings and state, the queue, the live passes, the admitted visitors, the used
        proof-of-work nonces, and the event's stock and meta (read: the room knows the stock)."""
        return (*(self.event(event_id, f"room:{n}") for n in
                  ("state", "queue", "passes", "admitted", "proofs")),
                self.event(event_id, "stock"), self.event(event_id, "meta"))

    def room_joins(self, event_id: int, client: str) -> str:
        """The limit on waiting-room joins from one client address in one event."""
        return self.event(event_id, f"room:rl:{_untag(client or 'unknown')}")

    def room_places(self, event_id: int, client: str) -> str:
        """How many waiting-room places one client address has taken in one event (a day's TTL)."""
        return self.event(event_id, f"room:pl:{_untag(client or 'unknown')}")

    # --- the gate (check-in) ---------------------------------------------------------------
    def checkin_events(self) -> str:
        """Set of event ids with a check-in stream (`event(id, "checkins")`) for the check-in
        writer to read; never touched inside an event's script."""
        return f"{self.prefix}:checkin:events"

    def gate_access(self, user_id: int) -> str:
        """Hash: event id -> "1" / "0", whether a user may scan that event; cached for a minute,
        deleted when the user's staff membership changes (engine/checkin/access.py)."""
        return f"{self.prefix}:gateaccess:{user_id}"

    # --- cross-event ----------------------------------------------------------------------
    def rooms_on(self) -> str:
        """Set of event ids whose waiting room is on: the storefronts' admission ticks run them."""
        return f"{self.prefix}:rooms:on"

    def selling(self) -> str:
        """Set of event ids that sold lately: their orders streams still need fulfilling even
        once the event is no longer on sale."""
        return f"{self.prefix}:events:selling"

    def dead_letters(self) -> str:
        """Stream of orders-stream entries fulfillment could not write, with the reason."""
        return f"{self.prefix}:fulfillment:dead"

    def fulfillment_failures(self) -> str:
        """Hash: orders-stream entry id -> how often writing it failed (reset once written)."""
        return f"{self.prefix}:fulfillment:failures"

    def deliveries(self) -> str:
        """Stream of written orders whose tickets are to be sent (fulfillment/issuing.py)."""
        return f"{self.prefix}:fulfillment:deliveries"

    def resends(self, order_number: str) -> str:
        """Counter of one order's "send my tickets again" requests in the current hour."""
        return f"{self.prefix}:rl:resend:{_untag(order_number)}"

    def dev_mailbox(self) -> str:
        """List of the development mailbox's message ids, newest first (engine/mailbox.py)."""
        return f"{self.prefix}:devmail:ids"

    def dev_mail(self, message_id: str) -> str:
        """One message the development mailbox received: hash of raw, from, to, at."""
        return f"{self.prefix}:devmail:m:{_untag(message_id)}"

    def payments_pending(self) -> str:
        """Zset: references of payment attempts awaiting their outcome, by when last asked."""
        return f"{self.prefix}:payments:pending"

    def order(self, order_number: str) -> str:
        """Where an order's draft is: "<event id>:<hold id>" (engine/orders.py)."""
        return f"{self.prefix}:order:{_untag(order_number)}"

    def reconciled_epoch(self) -> str:
        """The Redis run id whose data the record was last re-applied to (engine/onsale.py): a
        Redis that restarted (from an older copy, say) has another run id, and its events are
        restored from the record before they sell again."""
        return f"{self.prefix}:reconciled_epoch"

    def events_on_sale(self) -> str:
        """Set of event ids whose stock is loaded (never touched inside an event's script)."""
        return f"{self.prefix}:events:on_sale"

    # --- the sandbox payment gateway (storefront/sandbox/) --------------------------------
    # Not tied to any event. All under one `{sandbox}` tag, so the gateway's transactions
    # (a payment, its reference, its timers and webhooks together) stay in one Cluster slot.
    def sandbox_payment(self, payment_id: str) -> str:
        """JSON of one sandbox payment (its state, refunds, events held back)."""
        return f"{self.prefix}:{{sandbox}}:pay:{_untag(payment_id)}"

    def sandbox_reference(self, reference: str) -> str:
        """The payment id a merchant reference was used for (a reference is used once)."""
        return f"{self.prefix}:{{sandbox}}:ref:{_untag(reference)}"

    def sandbox_timers(self) -> str:
        """Sorted set: payment id -> when (ms) its pending step is due (a push answered, a
        transfer seen, a push timed out)."""
        return f"{self.prefix}:{{sandbox}}:timers"

    def sandbox_webhook(self, webhook_id: str) -> str:
        """One webhook event to deliver (`evt_...`): its URL, body and the event after it."""
        return f"{self.prefix}:{{sandbox}}:webhook:{_untag(webhook_id)}"

    def sandbox_outbox(self) -> str:
        """Sorted set: `<event id> <copy> <attempt>` -> when (ms) that delivery is due."""
        return f"{self.prefix}:{{sandbox}}:outbox"
