"""Taking money for orders: start a payment attempt with a gateway, and settle what gateways report
(webhooks, status checks) exactly once, in Postgres before the gateway is answered.

Settling a succeeded payment sells the order's hold through the inventory's confirm script (which
appends the sale to the event's orders stream); when that cannot be done (the hold lapsed and
its tickets are gone, the amount does not match, the order was already paid) the payment is
marked `refund_due` and the order says so. Payment states move forward only: a failure reported
after a success (webhooks arrive out of order) changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import asyncpg
import msgspec

from engine import metrics
from engine.errors import Busy, Conflict, Invalid, TryLater
from engine.inventory import HoldRefused, Inventory
from engine.orders import OrderDraft, Orders, order_of_reference, sale_record
from engine.payments.base import (
    Customer,
    Gateway,
    GatewayError,
    PaymentRequest,
    PaymentStatus,
    WebhookEvent,
)

log = logging.getLogger(__name__)
FINAL = ("succeeded", "refund_due", "refunding", "refunded")
PAYMENT_STATES = frozenset({"pending", "failed", *FINAL})


def _digits(phone: str | None) -> str | None:
    """A phone number as gateways take it: `+265991234567` (the spaces people type removed)."""
    return phone.replace(" ", "") if phone else None


class PaymentRefused(Conflict):
    """The gateway would not start the payment; the buyer may try again or another way."""


class Payments:
    def __init__(self, pool: asyncpg.Pool, inventory: Inventory, orders: Orders,
                 gateways: Mapping[str, Gateway], *, push_hold_seconds: int = 300,
                 longest_hold_seconds: int = 1800):
        self.pool = pool
        self.client = inventory.client
        self.keys = inventory.keys
        self.inventory = inventory
        self.orders = orders
        self.gateways = gateways
        self.push_hold_seconds = push_hold_seconds
        self.longest_hold_seconds = longest_hold_seconds

    def gateway(self, name: str) -> Gateway:
        gateway = self.gateways.get(name)
        if gateway is None:
            raise Invalid(f"unknown payment gateway {name!r}; choose one of "
                          f"{', '.join(sorted(self.gateways)) or 'none configured'}",
                          code="unknown_gateway", fields={"gateway": "unknown"})
        return gateway

    # --- starting -----------------------------------------------------------------------------
    async def start(self, event_id: int, hold_id: str, buyer: str, gateway_name: str, method: str,
                    *, return_url: str, description: str, network: str | None = None,
                    phone: str | None = None) -> tuple[OrderDraft, str]:
        """Begin paying for the draft of `hold_id`; returns the draft (whose attempt carries
        what the buyer does next) and the attempt's reference. One attempt at a time."""
        gateway = self.gateway(gateway_name)
        if method not in gateway.methods:
            raise Invalid(f"{gateway_name} does not take {method} payments",
                          code="unsupported_method", fields={"method": "not offered"})
        draft, reference, _ = await self.orders.begin_payment(event_id, hold_id, buyer,
                                                             gateway_name, method)
        if draft.total == 0:  # free tickets: nothing to collect, the sale is made at once
            status = PaymentStatus(reference=reference, gateway_ref=reference, state="succeeded",
                                   amount=0, currency=draft.currency, method="free")
            await self.settle(WebhookEvent(gateway=gateway_name, event_id=f"free:{reference}",
                                           status=status), b"{}")
            return await self.orders.get(draft.order_number), reference
        if method == "mobile_money":  # the buyer is typing a PIN: the tickets must not lapse
            await self.orders.extend_hold(event_id, hold_id, buyer, self.push_hold_seconds,
                                          self.longest_hold_seconds)
        request = PaymentRequest(
            reference=reference, order_number=draft.order_number, event_id=event_id,
            amount=draft.total, currency=draft.currency, method=method,
            customer=Customer(name=draft.billing.name, email=draft.billing.email,
                              phone=_digits(phone or draft.billing.phone)),
            return_url=return_url, description=description, network=network)
        try:
            started = await gateway.create_payment(request)
        except GatewayError as exc:
            await self.orders.record_payment(event_id, hold_id, reference, "failed", reason=exc.message)
            raise PaymentRefused(f"the payment could not be started: {exc.message}",
                                 code="payment_not_started") from None
        except Exception:
            await self.orders.record_payment(event_id, hold_id, reference, "failed",
                                             reason="the gateway could not be reached")
            raise
        draft = await self.orders.record_payment(event_id, hold_id, reference, "pending",
                                                 gateway_ref=started.gateway_ref, action=started.action)
        await self.client.zadd(self.keys.payments_pending(), {f"{gateway_name}|{reference}": time.time()})
        return draft, reference

    # --- settling -----------------------------------------------------------------------------
    async def settle(self, event: WebhookEvent, body: bytes) -> str:
        """Record a verified gateway event and act on it, exactly once per (gateway, event id):
        a repeat, also one delivered concurrently, answers "duplicate" and changes nothing.

        The sale (Redis) is made inside the Postgres transaction, before its commit, and is
        idempotent: if the commit fails, the gateway's retry (or the worker's status check, which
        reads Postgres) makes it again. The order draft hears of it only after the commit."""
        status = event.status
        notes: list[tuple] = []
        async with self.pool.acquire() as conn, conn.transaction():
            row_id = await conn.fetchval(
                "INSERT INTO payment_events (gateway, event_id, reference, state, body) "
                "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (gateway, event_id) DO NOTHING RETURNING id",
                event.gateway, event.event_id, status.reference, status.state, body)
            if row_id is None:  # seen before: processed already, or left unprocessed by a crash
                row = await conn.fetchrow(
                    "SELECT id, processed_at FROM payment_events WHERE gateway = $1 AND event_id = $2 "
                    "FOR UPDATE", event.gateway, event.event_id)
                if row["processed_at"] is not None:
                    return "duplicate"
                row_id = row["id"]
            if event.refund is not None:
                outcome = await self._refunded(conn, status.reference, event.refund.refund_ref)
            else:
                outcome = await self._apply(conn, event.gateway, status, notes)
            await conn.execute("UPDATE payment_events SET processed_at = now(), outcome = $2 "
                               "WHERE id = $1", row_id, outcome)
        if outcome in PAYMENT_STATES:  # counted once committed, never for a repeat
            metrics.PAYMENTS.labels(outcome).inc()
            if outcome == "succeeded":
                metrics.PURCHASES.inc()
        for note in notes:
            await self._note(*note)
        if status.state != "pending":
            await self.client.zrem(self.keys.payments_pending(), f"{event.gateway}|{status.reference}")
        return outcome

    async def _refunded(self, conn: asyncpg.Connection, reference: str, refund_ref: str) -> str:
        """A refund notice: the money of `reference` went back (a refund we asked for)."""
        done = await conn.execute(
            "UPDATE payments SET state = 'refunded', updated_at = now(), "
            "reason = coalesce(reason, '') || $2 WHERE reference = $1 "
            "AND state IN ('refund_due', 'refunding', 'succeeded')", reference, f" (refund {refund_ref})")
        return "refunded" if done.endswith(" 1") else "refund noted"

    async def _apply(self, conn: asyncpg.Connection, gateway: str, status: PaymentStatus,
                     notes: list[tuple]) -> str:
        order_number = order_of_reference(status.reference) or status.reference
        # one order's payments settle one at a time (two attempts succeeding together)
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", order_number)
        draft = await self.orders.find(order_number)
        current = await conn.fetchval("SELECT state FROM payments WHERE reference = $1 FOR UPDATE",
                                      status.reference)
        if current in FINAL:
            return f"already {current}"
        if status.state in ("pending", "failed"):
            if current == status.state or (current == "failed" and status.state == "pending"):
                return f"already {current}"
            await self._record(conn, gateway, status, draft, status.state, status.reason)
            if draft is not None:
                notes.append((draft, status, status.state))
            return status.state
        state, reason = await self._sell(conn, draft, status, gateway)
        await self._record(conn, gateway, status, draft, state, reason)
        if draft is not None:
            notes.append((draft, status, "succeeded",
                          "paid" if state == "succeeded" else "refund_due"))
        if state == "refund_due":
            log.warning("payment %s of order %s is to be refunded: %s", status.reference,
                        order_number, reason)
        return state

    async def _sell(self, conn: asyncpg.Connection, draft: OrderDraft | None,
                    status: PaymentStatus, gateway: str) -> tuple[str, str | None]:
        """Sell the order a succeeded payment pays for: ('succeeded', None), or ('refund_due', why)."""
        if draft is None:
            return "refund_due", "no order matches this payment"
        if status.amount != draft.total or status.currency.strip() != draft.currency:
            return "refund_due", (f"paid {status.amount} {status.currency}, the order is "
                                  f"{draft.total} {draft.currency}")
        other = await conn.fetchval(
            "SELECT reference FROM payments WHERE order_number = $1 AND state = 'succeeded' "
            "AND reference <> $2", draft.order_number, status.reference)
        if other is not None:
            return "refund_due", f"the order was already paid by {other}"
        try:
            record = sale_record(draft, status.reference, gateway)
            await self.client.sadd(self.keys.selling(), draft.event_id)  # fulfillment reads it
            await self.inventory.confirm(draft.event_id, draft.as_hold(), draft.order_number,
                                         extra=msgspec.to_builtins(record))
        except HoldRefused as refused:
            if refused.reason == "restoring":  # open again in moments: retried, never refunded
                raise Busy(str(refused), retry_after=2, code="restoring") from None
            return "refund_due", str(refused)
        return "succeeded", None

    async def _record(self, conn: asyncpg.Connection, gateway: str, status: PaymentStatus,
                      draft: OrderDraft | None, state: str, reason: str | None) -> None:
        await conn.execute(
            """INSERT INTO payments (reference, gateway, gateway_ref, order_number, event_id, hold_id,
                                     buyer, method, amount, currency, state, reason, sale,
                                     succeeded_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13,
                       CASE WHEN $11 IN ('succeeded', 'refund_due') THEN now() END)
               ON CONFLICT (reference) DO UPDATE SET state = $11, reason = $12,
                   gateway_ref = coalesce(excluded.gateway_ref, payments.gateway_ref),
                   amount = $9, sale = coalesce(excluded.sale, payments.sale), updated_at = now(),
                   succeeded_at = coalesce(payments.succeeded_at, excluded.succeeded_at)""",
            status.reference, gateway, status.gateway_ref,
            draft.order_number if draft else (order_of_reference(status.reference) or status.reference),
            draft.event_id if draft else None, draft.hold_id if draft else None,
            draft.buyer if draft else None, status.method, status.amount, status.currency[:3],
            state, reason,
            msgspec.json.encode(sale_record(draft, status.reference, gateway)).decode()
            if draft and state in ("succeeded", "refund_due") else None)

    async def _note(self, draft: OrderDraft, status: PaymentStatus, state: str,
                    order_status: str | None = None) -> None:
        """Tell the order draft (what the buyer's pages read) what became of the attempt."""
        if draft.attempt(status.reference) is None:
            return
        await self.orders.record_payment(draft.event_id, draft.hold_id, status.reference, state,
                                         gateway_ref=status.gateway_ref, reason=status.reason,
                                         order_status=order_status)

    # --- the worker's rounds -------------------------------------------------------------------
    async def verify_pending(self, older_than_seconds: float = 60, limit: int = 100) -> int:
        """Ask the gateways about attempts still open after a while (a webhook that never came,
        or one whose processing failed) and settle what they say. What is open is what Postgres
        has not settled, whatever the order draft says. Returns how many were asked about."""
        key = self.keys.payments_pending()
        due = await self.client.zrangebyscore(key, 0, time.time() - older_than_seconds, start=0,
                                              num=limit)
        for raw in due:
            member = raw.decode()
            gateway_name, _, reference = member.partition("|")
            state = await self.pool.fetchval("SELECT state FROM payments WHERE reference = $1",
                                             reference)
            gateway = self.gateways.get(gateway_name)
            if state in (*FINAL, "failed") or gateway is None:
                await self.client.zrem(key, member)
                continue
            draft = await self.orders.find(order_of_reference(reference) or "")
            attempt = draft.attempt(reference) if draft else None
            try:
                status = await gateway.fetch_status(reference, attempt.gateway_ref or "" if attempt else "")
            except GatewayError as exc:
                log.info("status of %s unknown for now: %s", reference, exc.message)
                status = None
            if status is not None and status.state != "pending":
                try:
                    await self.settle(WebhookEvent(gateway=gateway_name,
                                                   event_id=f"status:{reference}:{status.state}",
                                                   status=status), msgspec.json.encode(status))
                except TryLater as exc:  # its event is being restored: due again next round
                    log.info("payment %s waits: %s", reference, exc.message)
            else:  # still pending: ask again later, not in every round
                await self.client.zadd(key, {member: time.time()}, xx=True)
        return len(due)

    async def refund_due(self, limit: int = 50, stale_after_seconds: float = 600) -> int:
        """Give back the money of payments marked `refund_due` (a late payment whose tickets were
        gone, an amount that did not match, an order paid twice), through their gateway.

        Each is claimed first (`refunding`, one worker only), then refunded, then marked
        `refunded`; a refusal puts it back to `refund_due` for a later round. A claim left by a
        worker that died is looked at again after `stale_after_seconds`: the gateway is asked what
        it refunded already, so a refund is never made twice. Returns how many were refunded."""
        done = 0
        for _ in range(limit):
            row = await self.pool.fetchrow(
                """UPDATE payments SET state = 'refunding', updated_at = now()
                   WHERE id = (SELECT id FROM payments
                               WHERE gateway_ref IS NOT NULL AND amount > 0
                                 AND (state = 'refund_due' OR (state = 'refunding'
                                      AND updated_at < now() - make_interval(secs => $1)))
                               ORDER BY updated_at LIMIT 1 FOR UPDATE SKIP LOCKED)
                   RETURNING reference, gateway, gateway_ref, amount, reason""",
                stale_after_seconds)
            if row is None:
                break
            done += await self._refund(row)
        return done

    async def _refund(self, row: asyncpg.Record) -> int:
        async def mark(state: str, note: str = "") -> None:
            await self.pool.execute(
                "UPDATE payments SET state = $2, updated_at = now(), "
                "reason = coalesce(reason, '') || $3 WHERE reference = $1 AND state = 'refunding'",
                row["reference"], state, note)

        gateway = self.gateways.get(row["gateway"])
        if gateway is None:
            await mark("refund_due")
            return 0
        try:  # a claim left by a dead worker: did its refund go through?
            status = await gateway.fetch_status(row["reference"], row["gateway_ref"])
            if status.refunded >= row["amount"]:
                await mark("refunded", " (refunded)")
                return 1
            refund = await gateway.refund(row["gateway_ref"], row["amount"] - status.refunded,
                                          row["reason"] or "")
        except GatewayError as exc:
            log.warning("refund of %s not made yet: %s", row["reference"], exc.message)
            await mark("refund_due")
            return 0
        if refund.state == "failed":
            await mark("refund_due")
            return 0
        await mark("refunded", f" (refund {refund.refund_ref})")
        return 1

    # --- asking -------------------------------------------------------------------------------
    async def refresh(self, draft: OrderDraft) -> OrderDraft:
        """Ask the gateways where the order's unfinished attempts stand (a late or lost webhook)
        and settle what they say, exactly as a webhook would be."""
        for attempt in draft.payments:
            if attempt.state != "pending" or not attempt.gateway_ref:
                continue
            gateway = self.gateways.get(attempt.gateway)
            if gateway is None:
                continue
            try:
                status = await gateway.fetch_status(attempt.reference, attempt.gateway_ref)
            except GatewayError as exc:
                log.info("status of %s unknown for now: %s", attempt.reference, exc.message)
                continue
            if status.state != "pending":
                await self.settle(WebhookEvent(gateway=attempt.gateway,
                                               event_id=f"status:{status.reference}:{status.state}",
                                               status=status), msgspec.json.encode(status))
        return await self.orders.get(draft.order_number)
