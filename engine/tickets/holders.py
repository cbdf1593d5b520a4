"""What a buyer may do with tickets once they are written: give one to someone else (a transfer)
and have the order's tickets sent again (a resend). Both end in an entry on the deliveries
stream (`Keys.deliveries()`, format v1 in fulfillment/mail/delivery.py), which the mail worker
sends.

A transfer is one Postgres transaction: the ticket row is locked, its generation goes up, the new
attendee is written and an `order_history` row (`transferred`) records who had it, who has it and
the form's request token. Before that transaction commits, the gate register in Redis
(`Keys.event(event_id, "tickets")`, fulfillment/issuing.py) gets the new generation through
scripts/lua/ticket_transfer.lua, so from the commit on a scan of the old payload is refused. The
script refuses a ticket the gate has as used (a check-in not yet written back to Postgres), and
then the transaction rolls back: nothing changed. The one window left: Redis accepted the new
generation and the COMMIT itself failed; the old payload is then refused while Postgres still has
it, the safe side (a second transfer, or the record re-registering, puts them level).

A form submitted twice carries the same request token: the second finds the history row of the
first (the ticket row lock orders them) and changes nothing.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgspec
import redis.asyncio as redis

from engine.errors import Conflict, NotFound, RateLimited
from engine.keys import Keys
from engine.lua import load_script

RESENDS_PER_HOUR = 3
_STATUS_WORDS = {
    "used": "This ticket was already used at the entrance, so it cannot be given to anyone.",
    "cancelled": "This ticket was cancelled, so it cannot be given to anyone.",
    "revoked": "This ticket was cancelled, so it cannot be given to anyone.",
    "refunded": "This ticket was refunded, so it cannot be given to anyone.",
}


class TransferRefused(Conflict):
    """The ticket cannot change hands (used, cancelled, refunded, or its event is over)."""

    code = "transfer_refused"


@dataclass(frozen=True)
class Transferred:
    ticket_number: str
    order_number: str
    event_id: int
    generation: int
    name: str
    email: str
    repeated: bool = False  # the same request was done before: nothing changed now


def transfer_refusal(status: str, order_status: str, event_status: str, event_ends_at: datetime,
                     now: datetime, transferred: bool = False) -> tuple[str, str] | None:
    """Why a ticket may not be transferred now, as (code, sentence); None when it may.

    A ticket its buyer gave away is the new holder's: the buyer cannot take it back by giving it
    to a third person (which would let a seller revoke what they sold)."""
    if status in _STATUS_WORDS:
        return f"ticket_{'cancelled' if status == 'revoked' else status}", _STATUS_WORDS[status]
    if order_status != "confirmed":
        return ("order_" + order_status,
                f"This order was {order_status}, so its tickets cannot be given to anyone.")
    if transferred:
        return ("ticket_transferred",
                "You already gave this ticket to someone else: it is theirs now.")
    if event_status == "cancelled":
        return ("event_cancelled",
                "This event was cancelled, so its tickets cannot be given to anyone.")
    if event_ends_at <= now:
        return "event_past", "This event is over, so its tickets cannot be given to anyone."
    return None


class BuyerTickets:
    """Transfers and resends over the record (`pool`) and Redis (`client`, keys under `keys`)."""

    def __init__(self, pool: asyncpg.Pool, client: redis.Redis, keys: Keys, *,
                 resends_per_hour: int = RESENDS_PER_HOUR):
        self.pool, self.client, self.keys = pool, client, keys
        self.resends_per_hour = resends_per_hour
        self._register = client.register_script(load_script("ticket_transfer").source)
        self._window = client.register_script(load_script("attempt_window").source)

    async def transfer(self, ticket_number: str, *, owner: str, name: str, email: str,
                       request: str, now: datetime | None = None) -> Transferred:
        """Give `owner`'s ticket to `name` <`email`>; `request` is the form's token (one
        transfer per token). NotFound for a ticket that is not `owner`'s (as for a missing one),
        TransferRefused when it may not change hands."""
        now = now or datetime.now(UTC)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                """SELECT t.id, t.order_id, t.event_id, t.status, t.generation, t.package_id,
                          t.seat_id, t.attendee_name, t.attendee_email, o.order_number, o.buyer,
                          o.status AS order_status, e.status AS event_status, e.ends_at,
                          EXISTS (SELECT 1 FROM order_history h WHERE h.order_id = t.order_id
                                  AND h.ticket_id = t.id AND h.change = 'transferred')
                              AS transferred
                   FROM tickets t JOIN orders o ON o.id = t.order_id
                   JOIN events e ON e.id = t.event_id
                   WHERE t.ticket_number = $1 FOR UPDATE OF t""", ticket_number)
            if row is None or row["buyer"] != owner:
                raise NotFound(f"no ticket {ticket_number}", code="unknown_ticket")
            done = await conn.fetchval(
                "SELECT detail FROM order_history WHERE ticket_id = $1 AND change = 'transferred' "
                "AND detail->>'request' = $2", row["id"], request)
            if done is not None:
                to = msgspec.json.decode(done)["to"]
                return Transferred(ticket_number, row["order_number"], row["event_id"],
                                   row["generation"], to["name"], to["email"], repeated=True)
            refusal = transfer_refusal(row["status"], row["order_status"], row["event_status"],
                                       row["ends_at"], now, row["transferred"])
            if refusal is not None:
                raise TransferRefused(refusal[1], code=refusal[0])
            generation = row["generation"] + 1
            await conn.execute(
                "UPDATE tickets SET generation = $2, attendee_name = $3, attendee_email = $4, "
                "attendee_phone = NULL, updated_at = now() WHERE id = $1",
                row["id"], generation, name, email)
            await conn.execute(
                "INSERT INTO order_history (order_id, ticket_id, change, detail) "
                "VALUES ($1, $2, 'transferred', $3)", row["order_id"], row["id"],
                msgspec.json.encode({
                    "from": {"name": row["attendee_name"], "email": row["attendee_email"]},
                    "to": {"name": name, "email": email}, "generation": generation,
                    "request": request, "by": owner}).decode())
            entry = msgspec.json.encode({"s": "valid", "g": generation, "p": row["package_id"],
                                         "seat": row["seat_id"], "n": name})
            ok, value = await self._register(
                keys=[self.keys.event(row["event_id"], "tickets")],
                args=[ticket_number, generation, name, entry])
            if not ok:  # the gate knows better (a check-in not yet in the record): roll back
                status = value.decode() if isinstance(value, bytes) else str(value)
                raise TransferRefused(_STATUS_WORDS.get(status, "This ticket cannot be given "
                                                        "to anyone now."), code=f"gate_{status}")
        await self.client.xadd(self.keys.deliveries(), {
            "order": row["order_number"], "event": str(row["event_id"]), "kind": "transfer",
            "ticket": ticket_number})
        return Transferred(ticket_number, row["order_number"], row["event_id"], generation,
                           name, email)

    async def resend(self, order_number: str, event_id: int) -> str:
        """Queue the order's tickets to be sent again, with a fresh request id (one email per
        request); RateLimited after `resends_per_hour` in an hour. Returns the request id."""
        allowed, wait_ms = await self._window(keys=[self.keys.resends(order_number)],
                                              args=[self.resends_per_hour, 3_600_000])
        if not allowed:
            minutes = max(1, round(wait_ms / 60_000))
            raise RateLimited(
                f"your tickets were sent {self.resends_per_hour} times in the last hour; try "
                f"again in {minutes} minute{'s' if minutes != 1 else ''}",
                retry_after=wait_ms / 1000, code="too_many_resends")
        request = uuid.uuid4().hex
        await self.client.xadd(self.keys.deliveries(), {
            "order": order_number, "event": str(event_id), "kind": "resend", "request": request})
        return request
