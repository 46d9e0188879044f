"""One shape for every change Billy makes in Stripe (issue 12).

Each write action (customer update, subscription change, invoice send, product edit, ...) runs
the same steps, and they live here once:

1. the caller's idempotency key is checked (`require_idempotency_key`);
2. the key's probed permissions are asked before Stripe is (`require_key_permission`), so a key
   without "Subscriptions: Write" gets Billy's sentence naming the permission, not Stripe's 403;
3. the intent (key, member, action, target) is stored *before* the call (`claim_intent`): a
   retry after a timeout or a double submit sends Stripe the same key, Stripe makes one change,
   and Billy knows the answer it gets back may be a replay;
4. Stripe's refusals are turned into plain words (`plain_refusal`);
5. what Stripe answers is written into the store at once and announced to open pages
   (`mirror_answers`). A replayed answer may be older than the object, so it is re-read first.
   The change is already made by then, so a store failure is logged and left for sync to repair.

Faults on the way (issue 16). The gateway asks again after a 429, a 5xx, a timeout or a cut
connection, always with the same key, so Stripe makes the change once; when the change was made
but its answer lost, the retry gets Stripe's saved answer (`Idempotent-Replayed`) and the person
is told it was done. The audit row names each failed attempt (`stripe_retries`) and a recovered
answer (`recovered`). When every attempt fails without an answer, the person is told Billy cannot
tell yet whether the change was made (`stripe_outcome: unknown` on the row), and the
reconciliation (`services.write_recovery`) finds out from Stripe's events.

While a write runs, its intent's lock (`intent_lock_name`) is held from the claim until its
audit row is written: an intent whose lock is free and that has no audit row with its key
(`details.intent`) belongs to a process that died between Stripe's answer and the row, and the
reconciliation settles it (once, from the key and Stripe's events).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from services import audit, clock, mirror, notices, stripe_gateway, stripe_keys
from services.db import delete_in_batches, run_transaction
from services.errors import (
    BillyError,
    StripeKeyMissingPermission,
    StripeRateLimited,
    StripeRequestFailed,
    ValidationFailed,
)
from services.locks import named_lock
from services.models import IdempotencyRecord, table_of
from services.permissions import Actor, Control, control
from services.stripe_gateway import StripeGateway, WriteTrail

log = logging.getLogger(__name__)

_IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{16,255}$")


@dataclass(frozen=True)
class KeyPermission:
    """One restricted-key permission a write needs, as the Stripe Dashboard names it."""

    code: str  # e.g. "rak_subscription_write"
    label: str  # the row in the Stripe Dashboard's key editor, e.g. "Subscriptions"
    things: str  # what it lets Billy change, e.g. "subscriptions"

    @property
    def missing(self) -> str:
        return (
            f"Billy's Stripe key is not allowed to change {self.things}, so nothing was changed. The Owner can fix "
            "this in the Stripe Dashboard: Developers → API keys → the restricted key Billy uses → set "
            f"“{self.label}” to “Write” ({self.code}) and save."
        )


CUSTOMER_WRITE = KeyPermission("rak_customer_write", "Customers", "customers")
SUBSCRIPTION_WRITE = KeyPermission("rak_subscription_write", "Subscriptions", "subscriptions")
INVOICE_WRITE = KeyPermission("rak_invoice_write", "Invoices", "invoices")
PRODUCT_WRITE = KeyPermission("rak_product_write", "Products", "products")
PRICE_WRITE = KeyPermission("rak_plan_write", "Prices", "prices")  # Stripe keeps the old name for prices


def require_idempotency_key(key: object) -> str:
    if not isinstance(key, str) or not _IDEMPOTENCY_KEY.match(key):
        raise ValidationFailed("A change needs an idempotency key of 16–255 letters, digits, - or _.")
    return key


def key_may(permission: KeyPermission) -> bool | None:
    """What the connected key's probe said of `permission`: True, False, or None (not probed)."""
    connected = stripe_keys.connection()
    return None if connected is None else connected.permissions.get(permission.code)


def require_key_permission(permission: KeyPermission) -> None:
    """Refuse before Stripe when the probe already says the key cannot make this write (a key
    edited after connecting is caught from Stripe's 403 by `plain_refusal` instead)."""
    if key_may(permission) is False:
        raise StripeKeyMissingPermission(permission.missing, code="stripe_permission_missing")


def write_control(actor: Actor, action: str, permission: KeyPermission) -> Control:
    """The control for a Stripe write: hidden when the role can never do it; shown disabled with
    the reason when the plan or the key's missing permission blocks it (the server still refuses)."""
    state = control(actor, action)
    if state.usable and key_may(permission) is False:
        return Control(shown=True, blocked_by=permission.missing.replace(", so nothing was changed", ""))
    return state


def intent_lock_name(key: str) -> str:
    return f"billy:intent:{key}"


def _hold_intent(key: str, draft: audit.AuditDraft) -> None:
    """Until `draft`'s audit row is written: hold the intent's lock, collect the trail of every
    Stripe write, and name the key on the row (how the reconciliation knows the intent ended)."""
    held = ExitStack()
    held.enter_context(named_lock(intent_lock_name(key)))
    trails = held.enter_context(stripe_gateway.collecting_trails())
    draft.details["intent"] = key
    draft.before_record.append(lambda outcome, exc: _note_trails(draft, trails, exc))
    draft.after_record.append(held.close)


def _note_trails(draft: audit.AuditDraft, trails: list[WriteTrail], exc: BaseException | None) -> None:
    """What the attempts met, on the audit row: each failure, a lost answer Stripe replayed, and an
    outcome Billy could not learn."""
    failures = [f"{trail.call}: {failure}" for trail in trails for failure in trail.failures]
    if failures:
        draft.details["stripe_retries"] = failures
    if any(trail.replayed and trail.failures for trail in trails):
        draft.details["recovered"] = (
            "Stripe made the change on an earlier attempt; its answer was lost, and the retry with the same key got "
            "Stripe's saved answer."
        )
    if isinstance(exc, StripeRequestFailed) and exc.outcome_unknown:
        draft.details["stripe_outcome"] = "unknown"


def claim_intent(
    actor: Actor,
    key: str,
    action: str,
    target_id: str,
    *,
    family: str | None = None,
    draft: audit.AuditDraft | None = None,
) -> bool:
    """Store the intent before Stripe is called; True when this key was already claimed for the
    same intent (a retry or a double submit). `family` lets related actions share keys (a
    Clerk's contact edit and a Manager's full edit are one form). With the action's audit
    `draft` (every Stripe write passes it), the intent is held until its row is written
    (`_hold_intent`): a double submit waits for the first, then repeats it."""
    family = family or action
    if draft is not None:
        _hold_intent(key, draft)

    def claim(session: Any) -> bool:
        seen = session.get(IdempotencyRecord, key)
        if seen is None:
            session.add(IdempotencyRecord(key=key, action=action, actor_id=actor.user_id, result_id=target_id))
            session.flush()
            return False
        if not seen.action.startswith(family) or seen.actor_id != actor.user_id:
            raise ValidationFailed("That request key was already used for something else; reload and try again.")
        if seen.result_id != target_id:
            raise ValidationFailed("That request key was already used for another record; reload and try again.")
        return True

    try:
        return bool(run_transaction(claim))
    except sa.exc.IntegrityError:  # the same key claimed a moment ago by a concurrent submit
        return bool(run_transaction(claim))


def claim_write(
    actor: Actor, key: object, action: str, target_id: str, permission: KeyPermission, draft: audit.AuditDraft
) -> bool:
    """Steps 1–3 in order, as one: check the idempotency key, ask the key's permission, store the
    intent (noted on the audit row when it repeats one). True when this request repeats an earlier
    one, whose answer Stripe will replay."""
    require_idempotency_key(key)
    require_key_permission(permission)
    replayed = claim_intent(actor, str(key), action, target_id, draft=draft)
    if replayed:
        draft.details["replay"] = True
    return replayed


def plain_failure(exc: StripeRequestFailed) -> StripeRequestFailed:
    """A write that got no answer, or only "too many requests", in words a person can act on."""
    if exc.outcome_unknown:
        return type(exc)(
            f"Stripe did not confirm this change: {exc.message.rstrip('.')}. Billy cannot tell yet whether it was "
            "made, but it cannot be made twice: every attempt carried the same request key. Billy checks with Stripe "
            "within a few minutes and the audit log records what it finds; sending this same request again is safe and "
            "shows the outcome.",
            code=exc.code,
            outcome_unknown=True,
        )
    if isinstance(exc, StripeRateLimited):
        return StripeRateLimited(
            "Stripe kept answering “too many requests” for this account, so nothing was changed. Wait a minute and "
            "try again.",
            code=exc.code,
        )
    return exc


def plain_refusal(exc: StripeRequestFailed, permission: KeyPermission, *, missing: str, replayed: bool) -> BillyError:
    """Stripe's refusal in words a billing person can act on; anything else passes through."""
    if exc.outcome_unknown or isinstance(exc, StripeRateLimited):
        return plain_failure(exc)
    if exc.code == "permission_denied" or permission.code in exc.message:
        return StripeKeyMissingPermission(permission.missing, code="stripe_permission_missing")
    if exc.code == "resource_missing":
        return StripeRequestFailed(missing, code="resource_missing")
    if replayed and "idempotent requests" in exc.message:
        return ValidationFailed(
            "This form already saved other changes. Close it and open it again to make further changes."
        )
    return exc


def answer_replayed() -> bool:
    """Whether a write of the current intent got Stripe's saved answer (`Idempotent-Replayed`)."""
    return any(trail.replayed for trail in stripe_gateway.current_trails())


def mirror_answers(
    gateway: StripeGateway,
    answers: Sequence[tuple[str, dict[str, Any]]],
    draft: audit.AuditDraft,
    *,
    refetch: bool = False,
) -> bool:
    """Write each (kind, object) Stripe answered into the store and tell open pages. `refetch`
    re-reads every object first (a replayed answer can be older than the object; so is one the
    gateway got replayed after a lost answer). False, with a note on the audit row, when the store
    write failed: Stripe has the change, sync repairs it.

    The version stamp is Stripe's clock at its answer (`stripe_time`), never Billy's: with Billy's
    clock minutes ahead, a stamp from it would make Stripe's next events look older than the
    stored copy, and they would be dropped."""
    try:
        refetch = refetch or answer_replayed()
        read_at = gateway.stripe_time()  # before any re-read: a stamp no later than the state stored
        fresh = [(kind, gateway.retrieve(kind, obj["id"]) if refetch else obj) for kind, obj in answers]

        def write(session: Any) -> list[tuple[str, list[str]]]:
            return [
                (kind, mirror.write_objects(session, kind, [obj], read_at, replace_equal=True)) for kind, obj in fresh
            ]

        for kind, written in run_transaction(write):
            notices.publish(kind, written)
        return True
    except Exception as exc:  # noqa: BLE001 - the change itself is done
        log.warning("%s changed in Stripe but not stored yet: %s", ", ".join(o.get("id", "?") for _, o in answers), exc)
        draft.details["store_write"] = "failed; the next sync repairs it"
        return False


# A write's key is kept a month: a repeat within it (a double submit, an agent's retry the next
# day) returns the first result. Stripe keeps its own keys 24 hours, and the write reconciliation
# reads only the last day's (`write_recovery.WINDOW`), so nothing still needs an older one.
IDEMPOTENCY_RETENTION = timedelta(days=30)


def prune_idempotency_records(batch: int = 1_000, max_batches: int = 500) -> int:
    """Delete the write keys older than `IDEMPOTENCY_RETENTION`, in short batches along their
    `created_at` index (`db.delete_in_batches`). Returns how many went."""
    table = table_of(IdempotencyRecord)
    expired = table.c.created_at < clock.now() - IDEMPOTENCY_RETENTION
    pruned = delete_in_batches(table, expired, [table.c.created_at], batch=batch, max_batches=max_batches)
    if pruned:
        log.info("Pruned %d write keys older than %d days", pruned, IDEMPOTENCY_RETENTION.days)
    return pruned
