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
then the transaction rolls back: nothing changed. When the transaction fails after the register
took the new generation (the COMMIT itself, or the process between), the register is put back to
the record's generation at once; should that fail too, `kwika audit` reports the disagreement and
`level_register` (engine/tickets/register.py) puts them level, Postgres winning.

A form submitted twice carries the same request token: the second finds the history row of the
first (the ticket row lock orders them), changes nothing and queues the email again (the first
queueing may have failed after the commit; the mail worker sends one per ticket and generation).
A second transfer with another token is refused: the history is read after the row lock, in a
statement of its own, so it sees a transfer committed while it waited.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg
import msgspec
import redis.asyncio as redis

from engine.errors import Conflict, NotFound, RateLimited
from engine.keys import Keys
from engine.lua import load_script
from engine.tickets.register import level_register

log = logging.getLogger(__name__)

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
        registered = None  # the register key, once the gate has the new generation
        try:
            async with self.pool.acquire() as conn, conn.transaction():
                row = await conn.fetchrow(
                    """SELECT t.id, t.order_id, t.event_id, t.status, t.generation, t.package_id,
                              t.seat_id, t.attendee_name, t.attendee_email, o.order_number,
                              o.buyer, o.status AS order_status, e.status AS event_status,
                              e.ends_at
                       FROM tickets t JOIN orders o ON o.id = t.order_id
                       JOIN events e ON e.id = t.event_id
                       WHERE t.ticket_number = $1 FOR UPDATE OF t""", ticket_number)
                if row is None or row["buyer"] != owner:
                    raise NotFound(f"no ticket {ticket_number}", code="unknown_ticket")
                # after the lock, in statements of their own: under READ COMMITTED they see a
                # transfer committed while this one waited on the lock (a subquery of the locking
                # statement would read that statement's older snapshot, and transfer it again)
                history = await conn.fetch(
                    "SELECT detail FROM order_history WHERE ticket_id = $1 "
                    "AND change = 'transferred'", row["id"])
                details = [msgspec.json.decode(h["detail"]) for h in history]
                done = next((d for d in details if d.get("request") == request), None)
                if done is not None:
                    repeat = Transferred(ticket_number, row["order_number"], row["event_id"],
                                         row["generation"], done["to"]["name"],
                                         done["to"]["email"], repeated=True)
                else:
                    repeat = None
                    refusal = transfer_refusal(row["status"], row["order_status"],
                                               row["event_status"], row["ends_at"], now,
                                               bool(details))
                    if refusal is not None:
                        raise TransferRefused(refusal[1], code=refusal[0])
                    generation = row["generation"] + 1
                    await conn.execute(
                        "UPDATE tickets SET generation = $2, attendee_name = $3, "
                        "attendee_email = $4, attendee_phone = NULL, updated_at = now() "
                        "WHERE id = $1", row["id"], generation, name, email)
                    await conn.execute(
                        "INSERT INTO order_history (order_id, ticket_id, change, detail) "
                        "VALUES ($1, $2, 'transferred', $3)", row["order_id"], row["id"],
                        msgspec.json.encode({
                            "from": {"name": row["attendee_name"],
                                     "email": row["attendee_email"]},
                            "to": {"name": name, "email": email}, "generation": generation,
                            "request": request, "by": owner}).decode())
                    entry = msgspec.json.encode({"s": "valid", "g": generation,
                                                 "p": row["package_id"], "seat": row["seat_id"],
                                                 "n": name})
                    registered = row["event_id"]
                    ok, value = await self._register(
                        keys=[self.keys.event(row["event_id"], "tickets")],
                        args=[ticket_number, generation, name, entry])
                    if not ok:  # the gate knows better (a check-in not yet in the record)
                        registered = None
                        status = value.decode() if isinstance(value, bytes) else str(value)
                        raise TransferRefused(_STATUS_WORDS.get(
                            status, "This ticket cannot be given to anyone now."),
                            code=f"gate_{status}")
        except BaseException:
            if registered is not None:  # the gate has a generation the record may not: level it
                await self._put_back(registered, ticket_number)
            raise
        if repeat is not None:
            # queued again: the first queueing may have failed after the commit, and the mail
            # worker sends one email per ticket and generation, so a second entry is harmless
            await self._queue(repeat)
            return repeat
        done = Transferred(ticket_number, row["order_number"], row["event_id"], generation,
                           name, email)
        await self._queue(done)
        return done

    async def _queue(self, done: Transferred) -> None:
        await self.client.xadd(self.keys.deliveries(), {
            "order": done.order_number, "event": str(done.event_id), "kind": "transfer",
            "ticket": done.ticket_number})

    async def _put_back(self, event_id: int, ticket_number: str) -> None:
        """After a transaction that failed once the gate register had the new generation: the
        register takes the record's (which, should the COMMIT have gone through after all, is
        the new one). Best effort: what fails here the audit reports and `level_register` puts
        level (engine/tickets/register.py)."""
        try:
            await level_register(self.pool, self.client, self.keys, event_id,
                                 only=[ticket_number])
        except Exception:
            log.exception("transfer of %s failed and its gate register entry could not be put "
                          "back; the audit reports it until level_register runs", ticket_number)

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
