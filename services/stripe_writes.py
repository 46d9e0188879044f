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
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from services import audit, mirror, notices, stripe_keys
from services.db import run_transaction
from services.errors import BillyError, StripeKeyMissingPermission, StripeRequestFailed, ValidationFailed
from services.models import IdempotencyRecord
from services.permissions import Actor, Control, control
from services.stripe_gateway import StripeGateway

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


def claim_intent(actor: Actor, key: str, action: str, target_id: str, *, family: str | None = None) -> bool:
    """Store the intent before Stripe is called; True when this key was already claimed for the
    same intent (a retry or a double submit). `family` lets related actions share keys (a
    Clerk's contact edit and a Manager's full edit are one form)."""
    family = family or action

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
    replayed = claim_intent(actor, str(key), action, target_id)
    if replayed:
        draft.details["replay"] = True
    return replayed


def plain_refusal(exc: StripeRequestFailed, permission: KeyPermission, *, missing: str, replayed: bool) -> BillyError:
    """Stripe's refusal in words a billing person can act on; anything else passes through."""
    if exc.code == "permission_denied" or permission.code in exc.message:
        return StripeKeyMissingPermission(permission.missing, code="stripe_permission_missing")
    if exc.code == "resource_missing":
        return StripeRequestFailed(missing, code="resource_missing")
    if replayed and "idempotent requests" in exc.message:
        return ValidationFailed(
            "This form already saved other changes. Close it and open it again to make further changes."
        )
    return exc


def mirror_answers(
    gateway: StripeGateway,
    answers: Sequence[tuple[str, dict[str, Any]]],
    draft: audit.AuditDraft,
    *,
    refetch: bool = False,
) -> bool:
    """Write each (kind, object) Stripe answered into the store and tell open pages. `refetch`
    re-reads every object first (a replayed answer can be older than the object). False, with a
    note on the audit row, when the store write failed: Stripe has the change, sync repairs it."""
    try:
        read_at = int(time.time())  # a version stamp in Stripe's time (vs its events): the wall clock
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
