"""Connecting Stripe: check a pasted key, probe its permissions, keep it in the secret store.

The key passes through here as a local variable only: it is never returned, stored in
the database, logged or put in an error message (DESIGN, Stripe key custody). Audit rows
and the store name a key by its last four characters.

Settings → Stripe connection (issue 17) re-checks the connected key, rotates it and
disconnects it. A new key replaces the connected one only after every check passed (a
restricted key, the same mode, the six permissions, the same Stripe account), so a refusal
leaves the old key working. A store belongs to one Stripe account and mode (DESIGN, Sync):
the same checks guard connecting again once Billy keeps synced data.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session, col, select

from services import audit, key_watch, locks
from services.config import get_settings
from services.db import session_scope, transaction
from services.errors import BillyError, StripeKeyRejected, StripeKeyUnknown, StripeRequestFailed, StripeUnreachable
from services.models import (
    Member,
    StripeCharge,
    StripeConnection,
    StripeCustomer,
    StripeInvoice,
    StripeSubscription,
    utcnow,
)
from services.permissions import Actor, authorize
from services.secrets import get_secret_store
from services.stripe_gateway import (
    REQUIRED_PERMISSIONS,
    STRIPE_KEY_SECRET,
    account_of,
    key_finds_any,
    probe_permissions,
)

log = logging.getLogger(__name__)

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
    "other_mode": "This is a {new} mode key, but Billy is connected to Stripe's {current} mode, and one Billy never "
    "mixes the two. Create the new restricted key in {current} mode in the Stripe Dashboard and paste it again. "
    "The current key stays connected.",
    "other_account": "This key belongs to another Stripe account than the one whose data Billy keeps, so it was not "
    "used: Billy never mixes two accounts' data. Create the key in the same Stripe account (its name shows at the top "
    "left of the Stripe Dashboard) and paste it again. The current key stays connected.",
    "account_unchecked": "Billy could not check which Stripe account this key belongs to ({reason}). Nothing was "
    "changed: the current key stays connected. Try again in a minute.",
    "not_connected": "Stripe is not connected, so there is no key to check or replace. Paste a restricted key to "
    "connect Stripe.",
    "connected_key_rejected": "Stripe no longer accepts the connected key: it was revoked, rolled or has expired. "
    "Create a new restricted key in the Stripe Dashboard and paste it here to rotate it.",
}
# Key changes one at a time, in this process and across workers (`locks.named_lock`).
KEY_LOCK = "stripe-key"
# How many of the newest synced objects of each kind the same-account check tries.
ANCHORS_PER_KIND = 2


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
    rejected: bool = False  # Stripe answered 401 to it: nothing to poll until it is replaced


@dataclass(frozen=True)
class ConnectionView:
    """Settings → Stripe connection: the key as the Owner may see it (never the key itself)."""

    connected: bool
    mode: str  # "test" | "live"; "" when Stripe was never connected
    key_hint: str
    permissions: dict[str, bool]
    connected_at: datetime | None
    connected_by: str  # the member's email, "" when not known
    rotated_at: datetime | None
    rotated_by: str
    checked_at: datetime | None  # the permissions' last probe (connecting is one)
    rejected_at: datetime | None  # when Stripe stopped accepting the key
    disconnected_at: datetime | None
    disconnected_by: str


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
    """Classify, probe and keep the key, inside the caller's audited, authorized step. Once Billy
    keeps synced data, the key must reach the same account and mode (DESIGN, Sync)."""
    mode = classify_key(raw_key)
    key = raw_key.strip()
    draft.details.update(mode=mode, key_hint=key[-4:])
    with locks.named_lock(KEY_LOCK):
        granted = _probe(key, draft)
        with session_scope() as session:
            row = session.exec(select(StripeConnection)).first()
            known_mode, known_account = (row.mode, row.account_id) if row else ("", None)
            anchors = _anchors(session)
        if anchors and known_mode:
            if mode != known_mode:
                raise StripeKeyRejected(_other_mode(mode, known_mode), code="other_mode")
            account = _require_same_account(key, known_account, anchors)
        else:
            account = _account_or_none(key)
        get_secret_store().set(STRIPE_KEY_SECRET, key)
        with session_scope() as session:
            row = session.exec(select(StripeConnection)).first() or StripeConnection(
                mode=mode, secret_name="", key_hint=""
            )
            row.mode, row.secret_name, row.key_hint, row.permissions = mode, STRIPE_KEY_SECRET, key[-4:], granted
            row.connected_by, row.connected_at = actor.user_id, utcnow()
            row.account_id = account or (row.account_id if anchors else None)
            row.permissions_checked_at, row.rejected_at = row.connected_at, None
            row.disconnected_at, row.disconnected_by = None, None
            session.add(row)
    return ConnectedKey(mode, key[-4:], granted)


def _probe(key: str, draft: audit.AuditDraft) -> dict[str, bool]:
    """The six permissions of a key not yet stored; refuses an unknown key, a key missing one,
    and a Stripe that does not answer, each in words."""
    try:
        granted = probe_permissions(key)
    except StripeKeyUnknown:
        raise StripeKeyRejected(KEY_ERRORS["unknown_key"], code="unknown_key") from None
    except StripeUnreachable:
        raise StripeKeyRejected(KEY_ERRORS["stripe_unreachable"], code="stripe_unreachable") from None
    if not all(granted.values()):
        draft.details["missing"] = [n for n, ok in granted.items() if not ok]
        raise KeyMissingPermissions(granted)
    return granted


def _other_mode(new: str, current: str) -> str:
    return KEY_ERRORS["other_mode"].format(new=new, current=current)


def _anchors(session: Session) -> list[tuple[str, str]]:
    """The newest synced objects that the six required permissions can read, as (collection, id):
    charges first (Stripe never deletes a charge), then customers, invoices, subscriptions."""
    found: list[tuple[str, str]] = []
    kinds = (
        ("charges", StripeCharge),
        ("customers", StripeCustomer),
        ("invoices", StripeInvoice),
        ("subscriptions", StripeSubscription),
    )
    for collection, model in kinds:
        newest = session.exec(
            select(model.id)
            .where(col(model.deleted).is_(False))
            .order_by(col(model.created).desc())
            .limit(ANCHORS_PER_KIND)
        ).all()
        found += [(collection, str(object_id)) for object_id in newest]
    return found


def _account_or_none(key: str) -> str | None:
    """The key's account if Stripe says it (`stripe_gateway.account_of`); None if it does not answer."""
    try:
        return account_of(key)
    except BillyError:
        return None


def _require_same_account(key: str, known_account: str | None, anchors: list[tuple[str, str]]) -> str | None:
    """Refuse a key of another Stripe account; returns the key's account when Stripe named it.

    Two checks, each sound alone: the account Stripe names for each key (when both are known,
    they must be equal), and the synced objects themselves (when there are any, the new key must
    find at least one: Stripe ids live in one account, and another account's key gets 404 for
    every one of them). With neither, there is no synced data a wrong key could mix with."""
    try:
        account = account_of(key)
        if known_account and account and account != known_account:
            raise StripeKeyRejected(KEY_ERRORS["other_account"], code="other_account")
        if anchors and not key_finds_any(key, anchors):
            raise StripeKeyRejected(KEY_ERRORS["other_account"], code="other_account")
    except StripeRequestFailed as exc:
        raise StripeKeyRejected(
            KEY_ERRORS["account_unchecked"].format(reason=exc.message), code="account_unchecked"
        ) from None
    return account


def rotate_stripe_key(actor: Actor, raw_key: str) -> ConnectedKey:
    """Replace the connected key by another restricted key of the same Stripe account and mode.

    Every check runs against the new key before anything changes (format, mode, the six
    permissions, the account), so a refusal leaves the old key connected and working. Then the
    swap: the new key into the secret store (whose older versions are then disabled, where a
    store keeps versions), and its description into the store; a failure of the latter puts the
    old key back, so the two never disagree."""
    with audit.audited(actor, "stripe.rotate") as draft:
        authorize(actor, "stripe.rotate")
        mode = classify_key(raw_key)
        key = raw_key.strip()
        draft.details.update(mode=mode, key_hint=key[-4:])
        with locks.named_lock(KEY_LOCK):
            with session_scope() as session:
                row = session.exec(select(StripeConnection)).first()
                if row is None or not row.secret_name:
                    raise StripeKeyRejected(KEY_ERRORS["not_connected"], code="not_connected")
                current_mode, known_account = row.mode, row.account_id
                draft.details["replaces"] = row.key_hint
                anchors = _anchors(session)
            if mode != current_mode:
                raise StripeKeyRejected(_other_mode(mode, current_mode), code="other_mode")
            granted = _probe(key, draft)
            account = _require_same_account(key, known_account, anchors)
            draft.details["account_check"] = _account_check_words(known_account, account, anchors)
            draft.details["old_versions_disabled"] = _swap(actor, key, granted, account)
    return ConnectedKey(mode, key[-4:], granted)


def _account_check_words(known: str | None, account: str | None, anchors: list[tuple[str, str]]) -> str:
    """How the audit row says the same account was established (for whoever reads it later)."""
    ways = []
    if known and account:
        ways.append("account id")
    if anchors:
        ways.append("synced objects found")
    return " and ".join(ways) or "not compared: nothing synced, and Stripe named no account for both keys"


def _swap(actor: Actor, key: str, granted: dict[str, bool], account: str | None) -> bool:
    """Put the checked key in place; True when the secret store disabled the older versions."""
    store = get_secret_store()
    old = store.get(STRIPE_KEY_SECRET)
    store.set(STRIPE_KEY_SECRET, key)
    try:
        with session_scope() as session:
            row = session.exec(select(StripeConnection)).one()
            row.key_hint, row.permissions, row.secret_name = key[-4:], granted, STRIPE_KEY_SECRET
            row.account_id = account or row.account_id
            row.rotated_at = row.permissions_checked_at = utcnow()
            row.rotated_by, row.rejected_at = actor.user_id, None
            session.add(row)
    except Exception:
        if old:
            store.set(STRIPE_KEY_SECRET, old)  # the store still describes the old key
        raise
    try:
        store.disable_versions_except_latest(STRIPE_KEY_SECRET)
    except Exception:  # the new key is in place; an older version left enabled is only worth a note
        log.warning("The secret store did not disable the Stripe key's older versions", exc_info=True)
        return False
    return True


def recheck_permissions(actor: Actor) -> ConnectionView:
    """Probe the connected key's six permissions again, server-side, and keep the answer: for a key
    edited in the Stripe Dashboard since. A key Stripe no longer knows is flagged as rejected."""
    with audit.audited(actor, "stripe.recheck") as draft:
        authorize(actor, "stripe.recheck")
        with locks.named_lock(KEY_LOCK):
            key = get_secret_store().get(STRIPE_KEY_SECRET)
            current = connection()
            if not key or current is None:
                raise StripeKeyRejected(KEY_ERRORS["not_connected"], code="not_connected")
            draft.details["key_hint"] = current.key_hint
            try:
                granted = probe_permissions(key)
            except StripeKeyUnknown:
                key_watch.key_rejected(key[-4:])  # as the gateway notes a 401 to the connected key
                raise StripeKeyRejected(KEY_ERRORS["connected_key_rejected"], code="connected_key_rejected") from None
            except StripeUnreachable:
                raise StripeKeyRejected(KEY_ERRORS["stripe_unreachable"], code="stripe_unreachable") from None
            draft.details["missing"] = [n for n, ok in granted.items() if not ok]
            with session_scope() as session:
                row = session.exec(select(StripeConnection)).one()
                row.permissions, row.permissions_checked_at, row.rejected_at = granted, utcnow(), None
                session.add(row)
    return _view()


def disconnect_stripe(actor: Actor) -> None:
    """Delete the key from the secret store and mark Stripe disconnected: sync, polling and writes
    stop (they find no key and do nothing); everything already synced stays readable."""
    with audit.audited(actor, "stripe.disconnect") as draft:
        authorize(actor, "stripe.disconnect")
        with locks.named_lock(KEY_LOCK):
            current = connection()
            if current is None:
                raise StripeKeyRejected(KEY_ERRORS["not_connected"], code="not_connected")
            draft.details.update(mode=current.mode, key_hint=current.key_hint)
            # The key goes first: if the row's update then fails, a retry finds it still connected.
            get_secret_store().delete(STRIPE_KEY_SECRET)
            with session_scope() as session:
                row = session.exec(select(StripeConnection)).one()
                row.secret_name, row.rejected_at = "", None
                row.disconnected_at, row.disconnected_by = utcnow(), actor.user_id
                session.add(row)


def connection_overview(actor: Actor) -> ConnectionView:
    """What Settings → Stripe connection shows: mode, last four, who connected, rotated or
    disconnected it and when, and the permissions as last probed."""
    audit.authorize_read(actor, "stripe.view")
    return _view()


def _view() -> ConnectionView:
    with session_scope() as session:
        row = session.exec(select(StripeConnection)).first()
        if row is None:
            return ConnectionView(False, "", "", {}, None, "", None, "", None, None, None, "")
        ids = {i for i in (row.connected_by, row.rotated_by, row.disconnected_by) if i is not None}
        emails = {m.id: m.email for m in session.exec(select(Member).where(col(Member.id).in_(ids)))} if ids else {}
        return ConnectionView(
            connected=bool(row.secret_name),
            mode=row.mode,
            key_hint=row.key_hint,
            permissions=dict(row.permissions),
            connected_at=row.connected_at,
            connected_by=emails.get(row.connected_by or 0, ""),
            rotated_at=row.rotated_at,
            rotated_by=emails.get(row.rotated_by or 0, ""),
            checked_at=row.permissions_checked_at,
            rejected_at=row.rejected_at,
            disconnected_at=row.disconnected_at,
            disconnected_by=emails.get(row.disconnected_by or 0, ""),
        )


def connection() -> ConnectedKey | None:
    """The connected key's description; None when no key is connected (never, or disconnected)."""
    with session_scope() as session:
        row = session.exec(select(StripeConnection)).first()
        if row is None or not row.secret_name:
            return None
        return ConnectedKey(KeyMode(row.mode), row.key_hint, dict(row.permissions), row.rejected_at is not None)


def finish_onboarding(actor: Actor, *, session: Session | None = None) -> None:
    with audit.audited(actor, "onboarding.finish", session=session):
        authorize(actor, "onboarding.finish")
        with transaction(session) as tx:
            row = tx.exec(select(StripeConnection)).first()
            if row is None or not row.secret_name:
                raise StripeKeyRejected("Connect Stripe before finishing set-up.", code="not_connected")
            row.onboarding_done = True
