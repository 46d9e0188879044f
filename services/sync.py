"""Keeping the store a copy of Stripe: backfill now; webhooks and event polling in issue 5.

Backfill pages through each resource newest first, upserting every page in one
transaction together with the cursor, so a killed run resumes after the last page it
stored. Resources run in parallel; a resource that fails is reported as failed, never
as done, and the others carry on.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session, SQLModel, select

from services.db import session_scope
from services.errors import BillyError
from services.models import StripeCharge, StripeCustomer, StripeRefund, SyncState, utcnow
from services.permissions import Actor, authorize
from services.stripe_gateway import StripeGateway

log = logging.getLogger(__name__)

_ORDER = re.compile(r"order\s*(?:number|no\.?)?\s*#?\s*([A-Za-z0-9-]{2,32})", re.IGNORECASE)


def _id(value: Any) -> str | None:
    """Stripe references are ids, or whole objects when expanded."""
    if isinstance(value, dict):
        return value.get("id")
    return value


def _lower(value: str | None) -> str | None:
    return value.lower() if value else None


def customer_row(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": obj["id"],
        "email": obj.get("email"),
        "name": obj.get("name"),
        "email_lower": _lower(obj.get("email")),
        "name_lower": _lower(obj.get("name")),
        "phone": obj.get("phone"),
        "created": int(obj.get("created") or 0),
        "livemode": bool(obj.get("livemode")),
        "deleted": bool(obj.get("deleted")),
        "raw": obj,
        "synced_at": utcnow(),
    }


def order_number_of(obj: dict[str, Any]) -> str | None:
    metadata = obj.get("metadata") or {}
    for key in ("order_number", "order_id", "order"):
        if metadata.get(key):
            return str(metadata[key]).lstrip("#")[:64]
    match = _ORDER.search(obj.get("description") or "")
    return match.group(1) if match else None


def _card(obj: dict[str, Any]) -> dict[str, Any]:
    details = (obj.get("payment_method_details") or {}).get("card")
    if details:
        return details
    source = obj.get("source") or {}
    return source if source.get("object") == "card" or "last4" in source else {}


def decline_reason_of(obj: dict[str, Any]) -> str | None:
    if obj.get("status") != "failed":
        return None
    outcome = obj.get("outcome") or {}
    return outcome.get("reason") or obj.get("failure_code")


def charge_row(obj: dict[str, Any]) -> dict[str, Any]:
    card = _card(obj)
    return {
        "id": obj["id"],
        "customer_id": _id(obj.get("customer")),
        "amount": int(obj.get("amount") or 0),
        "amount_refunded": int(obj.get("amount_refunded") or 0),
        "currency": (obj.get("currency") or "usd").lower(),
        "status": obj.get("status") or "unknown",
        "paid": bool(obj.get("paid")),
        "refunded": bool(obj.get("refunded")),
        "failure_code": obj.get("failure_code"),
        "failure_message": obj.get("failure_message"),
        "outcome_type": (obj.get("outcome") or {}).get("type"),
        "decline_reason": decline_reason_of(obj),
        "description": obj.get("description"),
        "order_number": order_number_of(obj),
        "card_brand": card.get("brand"),
        "card_last4": card.get("last4"),
        "payment_intent_id": _id(obj.get("payment_intent")),
        "created": int(obj.get("created") or 0),
        "livemode": bool(obj.get("livemode")),
        "raw": obj,
        "synced_at": utcnow(),
    }


def refund_row(obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": obj["id"],
        "charge_id": _id(obj.get("charge")),
        "amount": int(obj.get("amount") or 0),
        "currency": (obj.get("currency") or "usd").lower(),
        "status": obj.get("status"),
        "reason": obj.get("reason"),
        "created": int(obj.get("created") or 0),
        "raw": obj,
        "synced_at": utcnow(),
    }


def upsert(session: Session, model: type[SQLModel], rows: Iterable[dict[str, Any]]) -> int:
    """Insert or replace rows by primary key, in the dialect's native way (one statement)."""
    rows = list(rows)
    if not rows:
        return 0
    table = model.__table__  # type: ignore[attr-defined]
    dialect = session.get_bind().dialect.name
    insert = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}[dialect]
    stmt = insert(table).values(rows)
    keys = [c.name for c in table.primary_key.columns]
    updates = {c.name: stmt.excluded[c.name] for c in table.columns if c.name not in keys}
    session.execute(stmt.on_conflict_do_update(index_elements=keys, set_=updates))
    return len(rows)


@dataclass(frozen=True)
class Resource:
    name: str  # the StripeClient.v1 service and the sync_state key
    model: type[SQLModel]
    to_row: Callable[[dict[str, Any]], dict[str, Any]]


RESOURCES: dict[str, Resource] = {
    r.name: r
    for r in (
        Resource("customers", StripeCustomer, customer_row),
        Resource("charges", StripeCharge, charge_row),
        Resource("refunds", StripeRefund, refund_row),
    )
}


def store_objects(session: Session, resource: str, objects: Iterable[dict[str, Any]]) -> int:
    spec = RESOURCES[resource]
    return upsert(session, spec.model, (spec.to_row(o) for o in objects))


def _state(session: Session, resource: str) -> SyncState:
    state = session.get(SyncState, resource)
    if state is None:
        state = SyncState(resource=resource)
        session.add(state)
    return state


def backfill_resource(gateway: StripeGateway, resource: str) -> None:
    """Copy one resource, resuming after the saved cursor if a previous run stopped midway."""
    with session_scope() as session:
        state = _state(session, resource)
        if state.status in ("done", "failed") or state.cursor is None:
            state.synced_count, state.cursor = 0, None
        state.status, state.started_at, state.finished_at, state.last_error = "running", utcnow(), None, None
        cursor = state.cursor
    try:
        for page in gateway.iterate(resource, cursor):
            with session_scope() as session:
                stored = store_objects(session, resource, page)
                state = _state(session, resource)
                state.cursor = page[-1]["id"]
                state.synced_count += stored
    except BillyError as exc:
        _finish(resource, "failed", str(exc))
        raise
    except Exception as exc:
        _finish(resource, "failed", f"internal error ({type(exc).__name__})")
        raise
    _finish(resource, "done", None)


def _finish(resource: str, status: str, error: str | None) -> None:
    with session_scope() as session:
        state = _state(session, resource)
        state.status, state.last_error, state.finished_at = status, error, utcnow()
        if status == "done":
            state.cursor = None


def backfill(gateway: StripeGateway | None = None, resources: Iterable[str] = tuple(RESOURCES)) -> dict[str, str]:
    """Backfill resources in parallel; returns each resource's final status."""
    gateway = gateway or StripeGateway()
    names = list(resources)
    with ThreadPoolExecutor(max_workers=len(names) or 1, thread_name_prefix="backfill") as pool:
        futures = {name: pool.submit(backfill_resource, gateway, name) for name in names}
    outcome = {}
    for name, future in futures.items():
        exc = future.exception()
        if exc is not None:
            log.warning("Backfill of %s failed: %s", name, exc)
        outcome[name] = "failed" if exc else "done"
    return outcome


@dataclass(frozen=True)
class ResourceProgress:
    resource: str
    status: str
    synced_count: int
    last_error: str | None
    finished_at: datetime | None


def progress(actor: Actor) -> list[ResourceProgress]:
    authorize(actor, "sync.view")
    with session_scope() as session:
        states = {s.resource: s for s in session.exec(select(SyncState))}
    result = []
    for name in RESOURCES:
        s = states.get(name)
        result.append(
            ResourceProgress(name, s.status, s.synced_count, s.last_error, s.finished_at)
            if s
            else ResourceProgress(name, "pending", 0, None, None)
        )
    return result


class BackgroundSync:
    """At most one backfill at a time per process, run off the web server's event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, gateway: StripeGateway | None = None) -> bool:
        with self._lock:
            if self.running:
                return False
            self._thread = threading.Thread(target=self._run, args=(gateway,), name="billy-sync", daemon=True)
            self._thread.start()
            return True

    def _run(self, gateway: StripeGateway | None) -> None:
        try:
            backfill(gateway)
        except Exception:  # reported per resource in sync_state
            log.exception("Background sync stopped")

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)


background_sync = BackgroundSync()


def start_sync(actor: Actor) -> bool:
    """Start a backfill in the background (Owner action: it spends the Stripe rate limit)."""
    authorize(actor, "sync.run")
    return background_sync.start()
