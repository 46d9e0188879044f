"""Connecting Stripe: check a pasted key, probe its permissions, keep it in the secret store.

The key passes through here as a local variable only: it is never returned, stored in
the database, logged or put in an error message (DESIGN, Stripe key custody).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

from sqlmodel import Session, select

from services import audit
from services.config import get_settings
from services.db import session_scope, transaction
from services.errors import StripeKeyRejected, StripeKeyUnknown, StripeUnreachable
from services.models import StripeConnection
from services.permissions import Actor, authorize
from services.secrets import get_secret_store
from services.stripe_gateway import REQUIRED_PERMISSIONS, STRIPE_KEY_SECRET, probe_permissions

_RESTRICTED = re.compile(r"^rk_(live|test)_[A-Za-z0-9]{10,247}$")

HOW_TO_CREATE = (
    "In the Stripe Dashboard open Developers → API keys, click “Create restricted key”, name it "
    "“Agent Billy”, enable the six permissions listed here, then copy the key that starts with rk_."
)

# Friendly refusals by code; the page shows the message and the how-to.
KEY_ERRORS: dict[str, str] = {
    "empty": "Paste your Stripe restricted key (it starts with rk_live_ or rk_test_).",
    "secret_key": "That is your full secret key (sk_…), which can do everything in your Stripe account. "
    "Billy only accepts a restricted key: create one that has just the permissions listed here, "
    "and keep your secret key to yourself.",
    "publishable_key": "That is a publishable key (pk_…), which is meant for web pages and cannot read "
    "your billing data. Create a restricted key (rk_…) instead.",
    "webhook_secret": "That is a webhook signing secret (whsec_…), not an API key. Create a restricted key (rk_…).",
    "wrong_format": "That does not look like a Stripe restricted key. It should start with rk_live_ or "
    "rk_test_ followed by letters and digits, with no spaces.",
    "unknown_key": "Stripe did not recognise this key. It may have been mistyped, revoked or expired: "
    "copy it again from the Stripe Dashboard.",
    "missing_permissions": "This key is missing some of the permissions Billy needs (marked below). "
    "Edit the key in the Stripe Dashboard, enable them, and paste it again.",
    "stripe_unreachable": "Billy could not reach Stripe to check the key. Nothing was saved; try again in a minute.",
    "demo_unavailable": "The demo key exists only when Billy runs against the local Stripe sandbox. "
    "Paste your own restricted key instead.",
    "already_connected": "Stripe is already connected, so the demo key was not used. To change keys, paste another "
    "restricted key.",
}


class KeyMissingPermissions(StripeKeyRejected):
    def __init__(self, granted: dict[str, bool]) -> None:
        super().__init__(KEY_ERRORS["missing_permissions"], code="missing_permissions")
        self.granted = granted
        self.missing = [name for name, ok in granted.items() if not ok]


class KeyMode(StrEnum):
    """Which Stripe the key reaches: test mode or live mode (`rk_test_` / `rk_live_`)."""

    TEST = "test"
    LIVE = "live"


@dataclass(frozen=True)
class ConnectedKey:
    mode: KeyMode
    key_hint: str  # last four characters, enough to recognise it
    permissions: dict[str, bool]


def classify_key(raw: str) -> KeyMode:
    """Return the key's mode, or raise `StripeKeyRejected` with a code saying why not."""
    key = raw.strip()
    if not key:
        raise StripeKeyRejected(KEY_ERRORS["empty"], code="empty")
    for prefix, code in (("sk_", "secret_key"), ("pk_", "publishable_key"), ("whsec_", "webhook_secret")):
        if key.startswith(prefix):
            raise StripeKeyRejected(KEY_ERRORS[code], code=code)
    match = _RESTRICTED.match(key)
    if not match:
        raise StripeKeyRejected(KEY_ERRORS["wrong_format"], code="wrong_format")
    return KeyMode(match.group(1))


def checklist(granted: dict[str, bool] | None) -> list[dict[str, str]]:
    """The docs' six rows, each marked granted / missing / unknown (not checked yet)."""
    rows = []
    for requirement in REQUIRED_PERMISSIONS:
        names = [p.name for p in requirement.probes]
        state = "unknown" if granted is None else ("ok" if all(granted.get(n) for n in names) else "missing")
        rows.append({"resource": requirement.resource, "access": requirement.access, "state": state})
    return rows


def connect_stripe_key(actor: Actor, raw_key: str) -> ConnectedKey:
    """Validate, probe and store the key; record who connected it (never the key)."""
    with audit.audited(actor, "stripe.connect") as draft:
        authorize(actor, "stripe.connect")
        return _store_key(actor, raw_key, draft)


def connect_demo_key(actor: Actor) -> ConnectedKey:
    """Sandbox mode: connect the sandbox's demo key on the Owner's say-so, server-side, so the
    key is never sent to a browser. The same checks and audit row as a pasted key."""
    with audit.audited(actor, "stripe.connect") as draft:
        draft.details["source"] = "sandbox_demo_key"  # refusals too: the audit says what was tried
        authorize(actor, "stripe.connect")
        settings = get_settings()
        if not (settings.sandbox and settings.sandbox_demo_key):
            raise StripeKeyRejected(KEY_ERRORS["demo_unavailable"], code="demo_unavailable")
        if connection() is not None:
            raise StripeKeyRejected(KEY_ERRORS["already_connected"], code="already_connected")
        return _store_key(actor, settings.sandbox_demo_key, draft)


def _store_key(actor: Actor, raw_key: str, draft: audit.AuditDraft) -> ConnectedKey:
    """Classify, probe and keep the key, inside the caller's audited, authorized step."""
    mode = classify_key(raw_key)
    key = raw_key.strip()
    draft.details.update(mode=mode, key_hint=key[-4:])
    try:
        granted = probe_permissions(key)
    except StripeKeyUnknown:
        raise StripeKeyRejected(KEY_ERRORS["unknown_key"], code="unknown_key") from None
    except StripeUnreachable:
        raise StripeKeyRejected(KEY_ERRORS["stripe_unreachable"], code="stripe_unreachable") from None
    if not all(granted.values()):
        draft.details["missing"] = [n for n, ok in granted.items() if not ok]
        raise KeyMissingPermissions(granted)
    get_secret_store().set(STRIPE_KEY_SECRET, key)
    with session_scope() as session:
        row = session.exec(select(StripeConnection)).first() or StripeConnection(mode=mode, secret_name="", key_hint="")
        row.mode, row.secret_name, row.key_hint, row.permissions = mode, STRIPE_KEY_SECRET, key[-4:], granted
        row.connected_by = actor.user_id
        session.add(row)
    return ConnectedKey(mode, key[-4:], granted)


def connection() -> ConnectedKey | None:
    with session_scope() as session:
        row = session.exec(select(StripeConnection)).first()
        if row is None or not row.secret_name:
            return None
        return ConnectedKey(KeyMode(row.mode), row.key_hint, dict(row.permissions))


def finish_onboarding(actor: Actor, *, session: Session | None = None) -> None:
    with audit.audited(actor, "onboarding.finish", session=session):
        authorize(actor, "onboarding.finish")
        with transaction(session) as tx:
            row = tx.exec(select(StripeConnection)).first()
            if row is None or not row.secret_name:
                raise StripeKeyRejected("Connect Stripe before finishing set-up.", code="not_connected")
            row.onboarding_done = True
