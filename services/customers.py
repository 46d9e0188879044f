"""Changing a Stripe customer's details, within what the caller's role may change (issue 12).

A Billing Clerk may change a customer's email and address (`customers.update_contact`); a
Billing Manager, the Owner and custom roles holding `UPDATE_CUSTOMER` every field Billy edits
(`customers.update`). The server decides from the role which fields may change, whatever a
client sends, and names the field it refuses.

The write goes to Stripe first under the caller's idempotency key, which is stored (with the
member, the action and the customer) *before* Stripe is called: a retry after a timeout or a
double submit with the same key sends Stripe the same key, so Stripe makes one change and
answers the repeat from its record, and Billy re-reads the customer instead of storing a
possibly stale replayed answer. The customer Stripe returns is written into the store at once.

Audit rows name the customer by id and the changed fields by name only, never their values:
customer personal data must stay erasable from the store without touching the append-only log
(DESIGN, Audit log).
"""

from __future__ import annotations

import logging
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from services import audit, stripe_writes
from services.db import session_scope
from services.errors import NotFound, PermissionDenied, StripeRequestFailed, ValidationFailed
from services.models import StripeCustomer
from services.permissions import ROLES, Actor, Permission, authorize, role_of
from services.stripe_gateway import StripeGateway
from services.stripe_writes import CUSTOMER_WRITE

log = logging.getLogger(__name__)

ADDRESS_PARTS = ("line1", "line2", "city", "state", "postal_code", "country")
CONTACT_FIELDS = frozenset({"email", "address"})
ALL_FIELDS = frozenset({"name", "email", "phone", "description", "address", "metadata"})
FIELD_WORDS = {
    "name": "name",
    "email": "email address",
    "phone": "phone number",
    "description": "description",
    "address": "address",
    "metadata": "metadata",
}
# Bounds checked here so a person reads a plain refusal rather than Stripe's. Stripe's own:
# email up to 512 characters; metadata up to 50 keys, keys up to 40 characters (no square
# brackets), values up to 500 (docs: api/customers/update, api/metadata).
MAX_LENGTH = {"name": 256, "email": 512, "phone": 20, "description": 350}
MAX_ADDRESS_PART = {"line1": 200, "line2": 200, "city": 100, "state": 100, "postal_code": 20, "country": 2}
METADATA_MAX_KEYS, METADATA_MAX_KEY, METADATA_MAX_VALUE = 50, 40, 500

CUSTOMER_GONE = (
    "This customer no longer exists in Stripe (it was deleted there), so nothing was changed. "
    "The next sync removes it from Billy."
)
_CUSTOMER_ID = re.compile(r"^cus_[A-Za-z0-9]{1,251}$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_PHONE = re.compile(r"^\+?[0-9 ().\-]+$")


@dataclass(frozen=True)
class CustomerView:
    """A customer as the edit form shows it, from the store (every editable field)."""

    id: str
    name: str
    email: str
    phone: str
    description: str
    address: dict[str, str]
    metadata: dict[str, str]


@dataclass(frozen=True)
class CustomerUpdate:
    """The outcome of one update: the customer as now stored, which fields the request set,
    and whether it repeated an earlier request's key (Stripe made the change once)."""

    customer: CustomerView
    fields: tuple[str, ...]
    replayed: bool = False
    stored: bool = True  # False: Stripe changed it but the store write failed (sync repairs it)


def fields_for_permissions(permissions: frozenset[Permission]) -> frozenset[str]:
    """The fields a set of permissions may change (the role's answer, before plan gates)."""
    if Permission.UPDATE_CUSTOMER in permissions:
        return ALL_FIELDS
    if Permission.UPDATE_CUSTOMER_CONTACT in permissions:
        return CONTACT_FIELDS
    return frozenset()


def editable_customer_fields(actor: Actor) -> frozenset[str]:
    """Exactly the fields the actor may change now, plan gates included (an ended trial is
    read-only), so the edit form offers those and no others. Asking is not logged."""
    for action, fields in (("customers.update", ALL_FIELDS), ("customers.update_contact", CONTACT_FIELDS)):
        try:
            authorize(actor, action)
        except PermissionDenied:
            continue
        return fields
    return frozenset()


def get_customer_view(actor: Actor, customer_id: str) -> CustomerView:
    """The stored customer with every editable field, for the edit form."""
    audit.authorize_read(actor, "customers.view", customer_id)
    with session_scope() as session:
        row = session.get(StripeCustomer, customer_id)
        if row is None or row.deleted:
            raise NotFound("No customer with that id has been synced from Stripe.")
        return _view(row)


def _view(row: StripeCustomer) -> CustomerView:
    raw = row.raw or {}
    address = raw.get("address") or {}
    return CustomerView(
        id=row.id,
        name=row.name or "",
        email=row.email or "",
        phone=row.phone or "",
        description=str(raw.get("description") or ""),
        address={part: str(address.get(part) or "") for part in ADDRESS_PARTS},
        metadata={str(k): str(v) for k, v in (raw.get("metadata") or {}).items()},
    )


def _action_for(changes: object) -> str:
    """The narrower action when only contact fields change, the wider one otherwise."""
    names = set(changes) if isinstance(changes, Mapping) else set()
    return "customers.update_contact" if names and names <= CONTACT_FIELDS else "customers.update"


def update_customer(
    actor: Actor,
    customer_id: str,
    changes: Mapping[str, Any],
    idempotency_key: str,
    gateway: StripeGateway | None = None,
) -> CustomerUpdate:
    """Change the given fields of a customer in Stripe, then in the store.

    `changes` maps a field (`ALL_FIELDS`) to its new value: text ("" clears it), `address` a
    mapping of its six parts (it is replaced whole: a part left out is cleared), `metadata` a
    mapping of keys to set ("" removes a key; keys not named are kept)."""
    gateway = gateway or StripeGateway()
    action = _action_for(changes)
    with audit.audited(actor, action, str(customer_id)[:255]) as draft:
        # The names asked for, refused or not (never their values: see the module docstring).
        draft.details["fields"] = sorted(str(n)[:40] for n in changes)[:20] if isinstance(changes, Mapping) else []
        _authorize_fields(actor, action, changes)
        if not isinstance(customer_id, str) or not _CUSTOMER_ID.match(customer_id):
            raise ValidationFailed("That is not a Stripe customer id (they start with cus_).")
        stripe_writes.require_idempotency_key(idempotency_key)
        with session_scope() as session:
            row = session.get(StripeCustomer, customer_id)
            if row is None or row.deleted:
                raise NotFound("No customer with that id has been synced from Stripe.")
            current = _view(row)
        params = _stripe_params(changes, current)
        draft.details.update(_changed_parts(params, current))
        stripe_writes.require_key_permission(CUSTOMER_WRITE)
        replayed = stripe_writes.claim_intent(
            actor, idempotency_key, action, customer_id, family="customers.update", draft=draft
        )
        if replayed:
            draft.details["replay"] = True
        try:
            answer = gateway.write("customers", "update", params, idempotency_key, object_id=customer_id)
        except StripeRequestFailed as exc:
            raise stripe_writes.plain_refusal(exc, CUSTOMER_WRITE, missing=CUSTOMER_GONE, replayed=replayed) from exc
        stored = stripe_writes.mirror_answers(gateway, [("customer", answer)], draft, refetch=replayed)
        view = get_customer_view(actor, customer_id) if stored else current
    return CustomerUpdate(view, tuple(sorted(changes)), replayed=replayed, stored=stored)


def _authorize_fields(actor: Actor, action: str, changes: object) -> None:
    """Refuse, in this order: a role that may edit nothing; a request that is not a set of
    fields or names an unknown one; a field this role may not change (named); then the action
    itself, which also applies the plan gates (an ended trial refuses every change)."""
    allowed = fields_for_permissions(role_of(actor).permissions)
    if not allowed:
        authorize(actor, "customers.update_contact")  # raises the standard refusal
    if not isinstance(changes, Mapping) or not changes:
        raise ValidationFailed("Nothing to change: send at least one field.")
    unknown = sorted(str(name) for name in changes if name not in ALL_FIELDS)
    if unknown:
        known = ", ".join(sorted(ALL_FIELDS))
        raise ValidationFailed(f"Billy cannot change a customer's {unknown[0][:40]!r}; it changes {known}.")
    refused = sorted(set(changes) - allowed)
    if refused:
        label = role_of(actor).label
        holders = [r.label for r in ROLES.values() if fields_for_permissions(r.permissions) >= set(changes)]
        may = " and ".join(FIELD_WORDS[f] for f in sorted(allowed))
        raise PermissionDenied(
            f"Your role ({label}) may change a customer's {may}, not their {FIELD_WORDS[refused[0]]}: "
            f"ask someone who can ({', '.join(holders)})."
        )
    if action == "customers.update_contact":
        authorize(actor, "customers.update_contact")
    else:
        authorize(actor, "customers.update")


# --- checking values ------------------------------------------------------------------------


def _text(field_name: str, value: object, limit: int, *, multiline: bool = False) -> str:
    words = FIELD_WORDS.get(field_name, field_name)
    if not isinstance(value, str):
        raise ValidationFailed(f"The {words} must be text.")
    text = value.strip()
    if len(text) > limit:
        raise ValidationFailed(f"The {words} can be at most {limit} characters long.")
    allowed_controls = {"\n"} if multiline else set()
    for ch in text:
        if (unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed_controls) or ch == "\u2028":
            raise ValidationFailed(f"The {words} contains a character that cannot be saved; retype it.")
    return text


def _email(value: object) -> str:
    text = _text("email", value, MAX_LENGTH["email"])
    if not text:
        return ""
    try:
        return validate_email(text, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValidationFailed(f"That email address does not look right: {exc}") from None


def _phone(value: object) -> str:
    text = _text("phone", value, MAX_LENGTH["phone"])
    if text and (not _PHONE.match(text) or sum(ch.isdigit() for ch in text) < 3):
        raise ValidationFailed("Enter the phone number with digits, spaces and + ( ) - . only, e.g. +1 555 010 0199.")
    return text


def _address(value: object) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValidationFailed("The address must give its parts: line1, line2, city, state, postal_code, country.")
    unknown = [str(part) for part in value if part not in ADDRESS_PARTS]
    if unknown:
        raise ValidationFailed(f"An address has no part {unknown[0][:40]!r}; it has {', '.join(ADDRESS_PARTS)}.")
    parts: dict[str, str] = {}
    for part in ADDRESS_PARTS:
        words = f"address's {part.replace('_', ' ')}"
        raw = value.get(part, "")
        if not isinstance(raw, str):
            raise ValidationFailed(f"The {words} must be text.")
        parts[part] = _text(words, raw, 1000)
        if len(parts[part]) > MAX_ADDRESS_PART[part] and part != "country":
            raise ValidationFailed(f"The {words} can be at most {MAX_ADDRESS_PART[part]} characters long.")
    parts["country"] = parts["country"].upper()
    if parts["country"] and not _COUNTRY.match(parts["country"]):
        raise ValidationFailed("Enter the country as its two-letter code, e.g. US, GB or DE.")
    if any(parts.values()) and not parts["country"]:
        raise ValidationFailed("Enter the address's country as its two-letter code, e.g. US, GB or DE.")
    return parts


def _metadata(value: object, current: Mapping[str, str]) -> dict[str, str]:
    if not isinstance(value, Mapping):
        raise ValidationFailed("Metadata must be keys with text values.")
    if len(value) > METADATA_MAX_KEYS:
        raise ValidationFailed(f"A customer can have at most {METADATA_MAX_KEYS} metadata keys.")
    checked: dict[str, str] = {}
    for key, item in value.items():
        name = _text("metadata key", key, 1000)
        if not name or len(name) > METADATA_MAX_KEY or "[" in name or "]" in name:
            raise ValidationFailed(
                f"Metadata keys are 1–{METADATA_MAX_KEY} characters without square brackets; {name[:50]!r} is not one."
            )
        checked[name] = _text(f"value of metadata key {name!r}", item, METADATA_MAX_VALUE, multiline=True)
    kept = {k for k in current if checked.get(k, current[k]) != ""} | {k for k, v in checked.items() if v}
    if len(kept) > METADATA_MAX_KEYS:
        raise ValidationFailed(f"A customer can have at most {METADATA_MAX_KEYS} metadata keys; remove some first.")
    return checked


def _stripe_params(changes: Mapping[str, Any], current: CustomerView) -> dict[str, Any]:
    """Stripe's update parameters for checked values ("" unsets a field in Stripe)."""
    params: dict[str, Any] = {}
    for name, value in changes.items():
        if name == "email":
            params["email"] = _email(value)
        elif name == "phone":
            params["phone"] = _phone(value)
        elif name in ("name", "description"):
            params[name] = _text(name, value, MAX_LENGTH[name], multiline=name == "description")
        elif name == "address":
            parts = _address(value)
            params["address"] = parts if any(parts.values()) else ""
        elif name == "metadata":
            params["metadata"] = _metadata(value, current.metadata)
    return params


def _changed_parts(params: Mapping[str, Any], current: CustomerView) -> dict[str, list[str]]:
    """For the audit row: which address parts and metadata keys change, by name only."""
    out: dict[str, list[str]] = {}
    if "address" in params:
        new = params["address"] or dict.fromkeys(ADDRESS_PARTS, "")
        out["address_parts"] = [p for p in ADDRESS_PARTS if new[p] != current.address.get(p, "")]
    if "metadata" in params:
        out["metadata_keys"] = sorted(k[:40] for k, v in params["metadata"].items() if current.metadata.get(k, "") != v)
    return out
