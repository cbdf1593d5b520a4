"""The email log (`email_log`, engine/migrations/0007_email.sql): one row per message, the
guard that sends each message once.

    claim  ->  send  ->  mark sent | mark retrying (a temporary failure) | mark failed

- **Claim before sending.** A message is named by its kind and a dedupe key (the order number
  for tickets, the provider's notice and the reminder; the payment reference for a refund-due
  notice; `ticket:generation` for a transfer; the request for a resend). `claim` inserts the row
  in state `sending` with a lease; a second claimant (another worker, the same stream entry
  delivered again, a second scheduler) finds the row and sends nothing. The UNIQUE constraint
  decides races, inside Postgres.
- **Mark after.** `sent` and `failed` are final. `retrying` waits until `next_attempt_at`
  (backoff doubling from the first wait), then may be claimed again; after `max_attempts` tries
  a temporary failure is final too (`failed`).
- **The boundary.** A worker that dies after the SMTP server accepted the message but before
  the row says `sent` leaves it `sending`. When its lease runs out the message may be claimed
  and sent again, with the same Message-ID: at that one point delivery is at-least-once, since
  a ticket email that never comes is worse than an identical second copy (README, Email).
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

KINDS = ("tickets", "provider_sale", "reminder", "refund_due", "resend", "transfer")


@dataclass(frozen=True)
class Claim:
    """The right to send one message now: its row, which try this is, its Message-ID."""

    id: int
    attempt: int
    message_id: str


@dataclass(frozen=True)
class Taken:
    """Someone else has the message, or it is settled: `status` and, when it is still open,
    in how many seconds it may be claimed again (`retry_in`)."""

    status: str
    retry_in: float | None

    @property
    def settled(self) -> bool:
        return self.status in ("sent", "failed")


class EmailLog:
    def __init__(self, pool: asyncpg.Pool, *, worker: str, lease_seconds: float = 300,
                 retry_seconds: float = 30, max_attempts: int = 8, longest_wait: float = 3600):
        self.pool = pool
        self.worker = worker
        self.lease_seconds = lease_seconds
        self.retry_seconds = retry_seconds
        self.max_attempts = max_attempts
        self.longest_wait = longest_wait

    async def claim(self, kind: str, key: str, *, to: str, subject: str,
                    order_number: str | None, message_id: str) -> Claim | Taken:
        """Claim the message (kind, key) for sending, or say who has it. A new message is
        claimed; an open one only once its retry is due or its sender's lease ran out."""
        row = await self.pool.fetchrow(
            """INSERT INTO email_log (kind, dedupe_key, order_number, to_address, subject,
                                      message_id, status, attempts, claimed_by, lease_until)
               VALUES ($1, $2, $3, $4, $5, $6, 'sending', 1, $7,
                       now() + make_interval(secs => $8))
               ON CONFLICT (kind, dedupe_key) DO UPDATE SET
                   status = 'sending', attempts = email_log.attempts + 1,
                   claimed_by = excluded.claimed_by, lease_until = excluded.lease_until,
                   to_address = excluded.to_address, subject = excluded.subject,
                   next_attempt_at = NULL, updated_at = now()
               WHERE (email_log.status = 'retrying' AND email_log.next_attempt_at <= now())
                  OR (email_log.status = 'sending' AND email_log.lease_until < now())
               RETURNING id, attempts, message_id""",
            kind, key, order_number, to, subject, message_id, self.worker, self.lease_seconds)
        if row is not None:
            return Claim(row["id"], row["attempts"], row["message_id"])
        found = await self.pool.fetchrow(
            "SELECT status, greatest(0, extract(epoch FROM CASE status "
            "WHEN 'retrying' THEN next_attempt_at WHEN 'sending' THEN lease_until END - now())) "
            "AS retry_in FROM email_log WHERE kind = $1 AND dedupe_key = $2", kind, key)
        if found is None:  # claimed and gone between the two statements: cannot be (no DELETE)
            return Taken("sending", 0.0)
        retry_in = found["retry_in"]
        return Taken(found["status"], None if retry_in is None else float(retry_in))

    async def sent(self, claim: Claim) -> None:
        await self.pool.execute(
            "UPDATE email_log SET status = 'sent', sent_at = now(), lease_until = NULL, "
            "error = NULL, updated_at = now() WHERE id = $1", claim.id)

    async def failed(self, claim: Claim, error: str) -> None:
        """A final failure (never over a `sent`: a copy may have gone out meanwhile)."""
        await self.pool.execute(
            "UPDATE email_log SET status = 'failed', error = $2, lease_until = NULL, "
            "updated_at = now() WHERE id = $1 AND status <> 'sent'", claim.id, error[:1000])

    async def retry_later(self, claim: Claim, error: str) -> float | None:
        """A temporary failure: try again after the backoff (returned, in seconds); None when
        this was the last try (the message is then `failed`)."""
        if claim.attempt >= self.max_attempts:
            await self.failed(claim, f"gave up after {claim.attempt} tries: {error}")
            return None
        wait = min(self.retry_seconds * 2 ** (claim.attempt - 1), self.longest_wait)
        await self.pool.execute(
            "UPDATE email_log SET status = 'retrying', error = $2, lease_until = NULL, "
            "next_attempt_at = now() + make_interval(secs => $3), updated_at = now() "
            "WHERE id = $1 AND status = 'sending' AND claimed_by = $4",
            claim.id, error[:1000], wait, self.worker)
        return wait
