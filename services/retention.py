"""What the store forgets, and when (issue 16): the Stripe event log after
`BILLY_EVENT_LOG_RETENTION_DAYS`, and write keys after `stripe_writes.IDEMPOTENCY_RETENTION`.
The elected worker runs this hourly; each table goes in short batches, so the hot tables are
never locked for long. The audit log is never pruned: it is append-only by design."""

from __future__ import annotations

from services import stripe_events, stripe_writes


def prune_expired() -> dict[str, int]:
    """Prune every table with a retention; how many rows went from each."""
    return {
        "stripe_event": stripe_events.prune_event_log(),
        "idempotency_record": stripe_writes.prune_idempotency_records(),
    }
