"""Sync at Stripe scale (issue 16): lists walked as `created` ranges in parallel, each resumable
from its own cursor, and saved cards searchable from the first sync without a request per
customer, kept current by events. Real components: the sandbox, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import select

from services import resources, stripe_keys, sync
from services.config import get_settings
from services.db import session_scope
from services.models import StripeCharge, StripeCustomer, StripePaymentMethod, SyncRange, SyncState, table_of
from services.search import global_search
from services.stripe_events import apply_event, poll_events
from services.stripe_gateway import StripeGateway
from tests.conftest import StripePeer
from tests.stripe_helpers import make_charge
from tests.test_sync import assert_store_equals_sandbox, kill_sync_midway

BOOKKEEPING = {"raw", "synced_at", "version_at"}


@pytest.fixture
def seeded(any_store, any_store_owner, stripe_peer, monkeypatch):  # type: ignore[no-untyped-def]
    """The demo account (50 customers, about 200 charges) read five objects a page, so that
    a small account has enough pages to be split into ranges."""
    from sandbox.seed import reset_to_demo

    reset_to_demo(stripe_peer.url, customers=50)
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    monkeypatch.setattr("services.stripe_gateway.PAGE_SIZE", 5)
    return stripe_peer


def _walkers(monkeypatch: pytest.MonkeyPatch, count: int) -> None:
    monkeypatch.setenv("BILLY_SYNC_WALKERS", str(count))
    get_settings.cache_clear()


@dataclass(frozen=True)
class Call:
    resource: str
    starting_after: str | None
    span: tuple[int | None, int | None]  # the `created` range asked for: [gte, lt)
    path: str | None
    ids: tuple[str, ...]


class RecordingGateway(StripeGateway):
    """The real gateway, recording each list request (and how many ran at once); with
    `die_after`, the process "dies" (KeyboardInterrupt, which the sync does not handle) at
    that request, as a killed process would."""

    def __init__(self, die_after: int | None = None) -> None:
        super().__init__()
        self.calls: list[Call] = []
        self.die_after = die_after
        self.most_at_once = 0
        self._running = 0
        self._lock = threading.Lock()

    def list_page(  # type: ignore[override]
        self,
        resource: str,
        starting_after: str | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
        on_throttled: Any = None,
        path: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        with self._lock:
            if self.die_after is not None and len(self.calls) >= self.die_after:
                raise KeyboardInterrupt
            self._running += 1
            self.most_at_once = max(self.most_at_once, self._running)
        try:
            items, more = super().list_page(resource, starting_after, limit, params, on_throttled, path)
        finally:
            with self._lock:
                self._running -= 1
        created = (params or {}).get("created") or {}
        with self._lock:
            self.calls.append(
                Call(
                    resource,
                    starting_after,
                    (created.get("gte"), created.get("lt")),
                    path,
                    tuple(o["id"] for o in items),
                )
            )
        return items, more

    def spans(self, resource: str) -> set[tuple[int | None, int | None]]:
        return {c.span for c in self.calls if c.resource == resource}


def _store_rows() -> dict[str, dict[str, dict[str, Any]]]:
    """Every mirror row's typed columns, by table and id (bookkeeping columns left out)."""
    models = {spec.model for spec in resources.ALL} | {spec.child_model for spec in resources.ALL if spec.child_model}
    found: dict[str, dict[str, dict[str, Any]]] = {}
    with session_scope() as session:
        for model in models:
            if model is None:
                continue
            rows = session.exec(select(model)).all()
            keys = [column.name for column in sa.inspect(model).primary_key]
            found[model.__tablename__] = {  # type: ignore[attr-defined]
                "/".join(str(getattr(row, k)) for k in keys): {
                    k: v for k, v in row.model_dump().items() if k not in BOOKKEEPING
                }
                for row in rows
            }
    return found


def _forget_the_store() -> None:
    """Empty every mirror table and the sync's bookkeeping, as a store that never synced."""
    models = {spec.model for spec in resources.ALL} | {spec.child_model for spec in resources.ALL if spec.child_model}
    with session_scope() as session:
        for model in [m for m in models if m is not None] + [SyncRange, SyncState]:
            session.execute(sa.delete(table_of(model)))


def _ranges(resource: str) -> list[SyncRange]:
    with session_scope() as session:
        return list(session.exec(select(SyncRange).where(SyncRange.resource == resource)))


def _state(resource: str) -> SyncState:
    with session_scope() as session:
        state = session.get(SyncState, resource)
        assert state is not None
        return state


def _count(model: Any) -> int:
    with session_scope() as session:
        return int(session.execute(sa.select(sa.func.count()).select_from(table_of(model))).scalar_one())


# --- ranges -----------------------------------------------------------------------------------


def test_ranges_walked_in_parallel_store_exactly_what_one_walk_stores(seeded, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _walkers(monkeypatch, 1)
    one = RecordingGateway()
    assert set(sync.backfill(one, sweep=False).values()) == {"done"}
    assert one.spans("charges") == {(None, None)} and one.most_at_once == 1  # one walk, one range
    alone = _store_rows()
    assert len(alone["stripe_charge"]) > 150 and len(alone["stripe_payment_method"]) >= 50

    _forget_the_store()
    _walkers(monkeypatch, 8)
    sandbox.set_latency(0.02)  # Stripe takes its time: walks overlap, as they do for real
    try:
        many = RecordingGateway()
        assert set(sync.backfill(many, sweep=False).values()) == {"done"}
    finally:
        sandbox.set_latency(0)
    assert many.most_at_once > 1
    assert len(many.spans("charges")) >= 3, many.spans("charges")  # the charges were split into ranges
    assert _store_rows() == alone
    for name in ("customers", "charges", "refunds"):  # each object read once: no range read twice
        assert _state(name).synced_count == len(alone[resources.LISTED[name].model.__tablename__])  # type: ignore[attr-defined]
    assert _ranges("charges") == []  # a finished resource keeps no ranges


def _count_walkers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The names of the walker threads each backfill from now on starts."""
    started: list[str] = []
    real = sync._Walks._start_walker

    def counted(walks: sync._Walks) -> None:
        real(walks)
        started.append(walks._threads[-1].name)

    monkeypatch.setattr(sync._Walks, "_start_walker", counted)
    return started


def test_walkers_join_as_ranges_go_on_up_to_the_ceiling(seeded, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Five objects a page: the charges go on for pages, so walkers join to halve them, past one
    per resource and never past the ceiling."""
    _walkers(monkeypatch, 12)
    started = _count_walkers(monkeypatch)
    sandbox.set_latency(0.02)
    try:
        walked = RecordingGateway()
        assert set(sync.backfill(walked, sweep=False).values()) == {"done"}
    finally:
        sandbox.set_latency(0)
    resources_walked = {c.resource for c in walked.calls}
    assert len(resources_walked) < len(started) <= 12, (resources_walked, started)
    assert len(walked.spans("charges")) >= 3


def test_a_small_accounts_sync_starts_one_walker_per_resource(  # type: ignore[no-untyped-def]
    any_store, any_store_owner, stripe_peer, monkeypatch
) -> None:
    """Every list fits in a page: no range goes on, so no walker joins; the ceiling (32 at the
    tests' request rate) would start and wake 32 threads for nine requests."""
    assert sync.walker_count() == sync.MAX_WALKERS
    make_charge(stripe_peer, 12_00)
    stripe_keys.connect_stripe_key(any_store_owner, stripe_peer.demo_key)
    started = _count_walkers(monkeypatch)
    walked = RecordingGateway()
    assert set(sync.backfill(walked, sweep=False).values()) == {"done"}
    assert len(started) == len({c.resource for c in walked.calls}) < sync.MAX_WALKERS
    with session_scope() as session:
        assert len(session.exec(select(StripeCharge)).all()) == 1


def _resumed_correctly(killed: list[SyncRange], resumed: RecordingGateway, resource: str) -> None:
    """Each range left unfinished was continued after its own cursor; no finished range was
    asked for again (no request's `created` span meets one)."""
    first_call: dict[tuple[int | None, int | None], str | None] = {}
    for call in resumed.calls:
        if call.resource == resource:
            first_call.setdefault(call.span, call.starting_after)
    unfinished = [r for r in killed if r.status != "done"]
    assert unfinished, "the run was killed with ranges still to walk"
    for r in unfinished:
        assert first_call[(r.created_from, r.created_before)] == r.cursor, r

    def meets(a: tuple[int | None, int | None], b: tuple[int | None, int | None]) -> bool:
        low, high = max(a[0] or 0, b[0] or 0), min(a[1] or 2**62, b[1] or 2**62)
        return low < high

    finished = [(r.created_from, r.created_before) for r in killed if r.status == "done"]
    for call in resumed.calls:
        if call.resource == resource:
            assert not any(meets(call.span, done) for done in finished), (call.span, finished)


def test_a_run_killed_midway_resumes_each_range_from_its_own_cursor(seeded, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    _walkers(monkeypatch, 6)
    sandbox.set_latency(0.02)
    try:
        with pytest.raises(KeyboardInterrupt):
            sync.backfill(RecordingGateway(die_after=24), resources=["charges"], sweep=False)
    finally:
        sandbox.set_latency(0)
    killed = _ranges("charges")
    assert len(killed) >= 2 and sum(1 for r in killed if r.cursor) >= 2  # several ranges, each with its cursor
    state = _state("charges")
    assert state.status == "running" and state.synced_count == _count(StripeCharge) > 0  # stored pages only
    assert state.synced_count == sum(r.synced_count for r in killed)

    resumed = RecordingGateway()
    assert sync.backfill(resumed, resources=["charges"], sweep=False) == {"charges": "done"}
    _resumed_correctly(killed, resumed, "charges")
    counts = assert_store_equals_sandbox(seeded, ["charges"])
    assert _state("charges").synced_count == counts["charges"]  # no charge read twice


KILLABLE_RANGED_SYNC = """
import services.stripe_gateway as gateway
gateway.PAGE_SIZE = 2  # many small pages, so there is a "midway" to be killed in
from services import sync
sync.backfill(resources=["charges"], sweep=False)
"""


def test_a_ranged_backfill_killed_with_sigkill_resumes_every_range(seeded, sandbox) -> None:  # type: ignore[no-untyped-def]
    """A real `kill -9` while several ranges are being walked: nothing runs after it, every
    range keeps its committed cursor, and the next run continues each one from there."""

    def midway() -> bool:
        ranges = [r for r in _ranges("charges") if r.cursor]
        return len(ranges) >= 3 and sum(r.synced_count for r in ranges) >= 30

    sandbox.set_latency(0.05)
    try:
        kill_sync_midway(KILLABLE_RANGED_SYNC, 4, midway)
    finally:
        sandbox.set_latency(0)
    killed = _ranges("charges")
    state = _state("charges")
    assert state.status == "running" and state.synced_count == _count(StripeCharge)  # committed pages only
    resumed = RecordingGateway()
    assert sync.backfill(resumed, resources=["charges"], sweep=False) == {"charges": "done"}
    _resumed_correctly(killed, resumed, "charges")
    counts = assert_store_equals_sandbox(seeded, ["charges"])
    assert _state("charges").synced_count == counts["charges"]


def test_pages_are_stored_by_one_writer_on_sqlite_and_side_by_side_on_postgresql(
    seeded, any_store, monkeypatch, caplog
) -> None:  # type: ignore[no-untyped-def]
    """SQLite lets one transaction write at a time: one writer stores every page. PostgreSQL's
    writers store pages at once, each range's in order, and never deadlock (a deadlock would be
    rolled back and run again, which `run_transaction` logs)."""
    from services import mirror

    real_write = mirror.write_prepared
    writers: set[str] = set()
    storing: dict[str, int] = {}  # writer → depth (a page's carried cards are written within it)
    most = [0]  # writers storing at once, at most
    lock = threading.Lock()

    def watched(session, prepared, **kwargs):  # type: ignore[no-untyped-def]
        name = threading.current_thread().name
        with lock:
            writers.add(name)
            storing[name] = storing.get(name, 0) + 1
            most[0] = max(most[0], len(storing))
        try:
            time.sleep(0.01)  # long enough for another writer to be seen storing meanwhile
            return real_write(session, prepared, **kwargs)
        finally:
            with lock:
                storing[name] -= 1
                if not storing[name]:
                    del storing[name]

    monkeypatch.setattr("services.mirror.write_prepared", watched)
    real_put = sync._Writer.put
    routed: list[tuple[str, Any]] = []  # (writer, job) as put

    def put(self, job):  # type: ignore[no-untyped-def]
        routed.append((self._thread.name, job))
        real_put(self, job)

    monkeypatch.setattr(sync._Writer, "put", put)
    _walkers(monkeypatch, 8)
    caplog.set_level("WARNING", logger="services.db")
    assert set(sync.backfill(RecordingGateway(), sweep=False).values()) == {"done"}
    assert_store_equals_sandbox(seeded, ["customers", "charges", "refunds"])
    # A range's splits and pages go through one writer, so a split is stored before the range's
    # later pages and its next split (stored after them, a kill could lose or re-read a span).
    writer_of: dict[tuple[str, int], set[str]] = {}
    for writer, job in routed:
        writer_of.setdefault((job.run.name, job.position), set()).add(writer)
    splits = [job for _, job in routed if isinstance(job, sync._Split)]
    assert splits and all(len(writers_of_range) == 1 for writers_of_range in writer_of.values())
    if any_store.kind == "sqlite":
        assert writers == {"backfill-writer-0"} and most[0] == 1
    else:
        assert len(writers) == sync.POSTGRES_WRITERS and most[0] >= 2
        assert not [r for r in caplog.records if "running it again" in r.getMessage()]


# --- saved cards --------------------------------------------------------------------------------

# Test cards whose last four digits the demo data never uses.
SOURCE_ONLY_LAST4 = "9235"  # tok_riskLevelElevated
PM_NUMBER, PM_LAST4 = "6011000990139424", "9424"
LATER_PM, LATER_LAST4 = "pm_card_mastercard_prepaid", "5100"


def _customer_with_a_default_payment_method(peer: StripePeer, name: str, number: str) -> tuple[str, str]:
    client = peer.secret_client()
    customer = client.v1.customers.create(params={"name": name, "email": f"{name.lower()}@example.com"})
    pm = client.raw_request(
        "post",
        "/v1/payment_methods",
        type="card",
        card={"number": number, "exp_month": 4, "exp_year": 2031, "cvc": "123"},
    ).data
    client.v1.payment_methods.attach(pm["id"], params={"customer": customer.id})
    client.v1.customers.update(customer.id, params={"invoice_settings": {"default_payment_method": pm["id"]}})
    return customer.id, pm["id"]


def _found_by_card(actor: Any, last4: str) -> dict[str, str]:
    """Customers the search box finds for four digits, and why."""
    return {hit.id: hit.matched for hit in global_search(actor, last4).customers}


def test_saved_cards_are_searchable_after_the_first_sync_without_a_request_per_customer(
    seeded, any_store_owner
) -> None:  # type: ignore[no-untyped-def]
    client = seeded.secret_client()
    source_customer = client.v1.customers.create(params={"name": "Sourcey", "source": "tok_riskLevelElevated"}).id
    pm_customer, pm_id = _customer_with_a_default_payment_method(seeded, "Methody", PM_NUMBER)
    gateway = RecordingGateway()
    assert set(sync.backfill(gateway, sweep=False).values()) == {"done"}
    per_customer = [c for c in gateway.calls if c.path and "/payment_methods" in c.path]
    assert per_customer == []  # no request per customer
    assert not any(c.resource == "payment_methods" for c in gateway.calls)
    # Neither customer ever paid: only their saved card can find them.
    assert _found_by_card(any_store_owner, SOURCE_ONLY_LAST4) == {
        source_customer: f"Saved card ending {SOURCE_ONLY_LAST4}"
    }
    assert _found_by_card(any_store_owner, PM_LAST4) == {pm_customer: f"Saved card ending {PM_LAST4}"}
    # Every demo customer's card came with them, and each of their charges' cards is searchable too.
    with session_scope() as session:
        owners = set(session.exec(select(StripePaymentMethod.customer_id)))
        demo = set(session.exec(select(StripeCustomer.id)))
        assert demo <= owners
        card = session.get(StripePaymentMethod, pm_id)
        assert card is not None and (card.card_brand, card.card_last4, card.exp_month) == ("discover", PM_LAST4, 4)
    state = _state("payment_methods")
    assert state.status == "done" and state.synced_count == _count(StripePaymentMethod)
    jane_charge = global_search(any_store_owner, "4242").charges
    assert jane_charge and all(hit.matched == "Card ending 4242" for hit in jane_charge)


def test_a_card_attached_after_the_first_sync_is_searchable_once_its_event_arrives(seeded, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    sync.backfill(sweep=False)
    client = seeded.secret_client()
    customer = client.v1.customers.list(params={"limit": 1}).data[0].id
    assert _found_by_card(any_store_owner, LATER_LAST4) == {}
    pm = client.v1.payment_methods.attach(LATER_PM, params={"customer": customer})
    counts = poll_events()
    assert counts.get("applied", 0) >= 1
    assert _found_by_card(any_store_owner, LATER_LAST4) == {customer: f"Saved card ending {LATER_LAST4}"}
    client.v1.payment_methods.update(pm.id, params={"card": {"exp_month": 9}})
    client.v1.payment_methods.detach(pm.id)
    poll_events()
    assert _found_by_card(any_store_owner, LATER_LAST4) == {}  # no longer the customer's card
    with session_scope() as session:
        stored = session.get(StripePaymentMethod, pm.id)
        assert stored is not None and stored.customer_id is None and stored.exp_month == 9


def test_a_saved_card_deleted_in_stripe_leaves_the_search(seeded, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """A card saved as a source and then deleted (`customer.source.deleted`) no longer finds its
    customer; the customer's next card becomes their default."""
    client = seeded.secret_client()
    customer = client.v1.customers.create(params={"name": "Twocards", "source": "tok_riskLevelElevated"})
    first = customer.default_source
    second = client.v1.customers.payment_sources.create(customer.id, params={"source": "tok_mastercard"}).id
    sync.backfill(sweep=False)
    assert _found_by_card(any_store_owner, SOURCE_ONLY_LAST4) == {customer.id: f"Saved card ending {SOURCE_ONLY_LAST4}"}
    deleted = client.v1.customers.payment_sources.delete(customer.id, first)
    assert (deleted.id, deleted.to_dict().get("deleted")) == (first, True)
    assert poll_events().get("applied", 0) >= 1
    assert _found_by_card(any_store_owner, SOURCE_ONLY_LAST4) == {}
    with session_scope() as session:
        gone = session.get(StripePaymentMethod, first)
        assert gone is not None and gone.deleted
        stored = session.get(StripeCustomer, customer.id)
        assert stored is not None and stored.raw.get("default_source") == second


def test_a_new_default_the_store_never_saw_is_fetched_when_the_customer_changes(seeded, any_store_owner) -> None:  # type: ignore[no-untyped-def]
    """A card saved before the first sync but never the default is in no list the first sync
    reads. When the customer makes it their default, `customer.updated` names it: Billy fetches it."""
    client = seeded.secret_client()
    customer = client.v1.customers.list(params={"limit": 1}).data[0].id
    pm = client.v1.payment_methods.attach(LATER_PM, params={"customer": customer})
    sync.backfill(sweep=False)
    assert _found_by_card(any_store_owner, LATER_LAST4) == {}
    since = int(time.time()) - 1
    client.v1.customers.update(customer, params={"invoice_settings": {"default_payment_method": pm.id}})
    updated = [
        e.to_dict() for e in client.v1.events.list(params={"created": {"gte": since}, "type": "customer.updated"}).data
    ]
    assert updated
    for event in updated:  # only the customer's event: the attachment's was never seen
        apply_event(event, "webhook")
    assert _found_by_card(any_store_owner, LATER_LAST4) == {customer: f"Saved card ending {LATER_LAST4}"}


def test_cards_outside_every_list_come_from_the_background_sweep_or_when_the_customer_page_opens(
    seeded, any_store_owner
) -> None:  # type: ignore[no-untyped-def]
    client = seeded.secret_client()
    customers = [c.id for c in client.v1.customers.list(params={"limit": 2}).data]
    extra = {
        c: client.v1.payment_methods.attach(LATER_PM, params={"customer": c}).id for c in customers
    }  # saved, never the default
    gateway = RecordingGateway()
    sync.backfill(gateway, sweep=False)
    assert _found_by_card(any_store_owner, LATER_LAST4) == {}
    # The customer page opened: that one customer's list, once.
    assert sync.refresh_customer_cards(any_store_owner, customers[0], gateway)
    assert _found_by_card(any_store_owner, LATER_LAST4) == {customers[0]: f"Saved card ending {LATER_LAST4}"}
    assert not sync.refresh_customer_cards(any_store_owner, customers[0], gateway)  # not again right away
    # The sweep, after everything else: every customer's own list, a batch at a time.
    before = len(gateway.calls)
    assert sync.sweep_cards(gateway) == "done"
    swept = [c for c in gateway.calls[before:] if c.path]
    assert len(swept) == _count(StripeCustomer)
    assert set(_found_by_card(any_store_owner, LATER_LAST4)) == set(customers)
    assert all(extra[c] in {i for call in swept for i in call.ids} for c in customers)
    assert not sync.sweep_due()  # done: events keep it current from here
    assert not sync.refresh_customer_cards(any_store_owner, customers[1], gateway)  # the sweep covered them
    later = len(gateway.calls)
    assert set(sync.backfill(gateway).values()) == {"done"}  # a later backfill does not sweep again
    assert not [c for c in gateway.calls[later:] if c.path]


def test_two_backfills_at_once_take_turns_and_leave_the_store_equal_to_stripe(seeded, sandbox, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """Connecting a key starts a sync, and "Sync now" may start another meanwhile: they must not
    walk the same ranges side by side (their cursors would collide); the second waits its turn."""
    _walkers(monkeypatch, 4)
    sandbox.set_latency(0.01)
    outcomes: list[dict[str, str]] = []
    try:
        runs = [threading.Thread(target=lambda: outcomes.append(sync.backfill(sweep=False))) for _ in range(2)]
        for run in runs:
            run.start()
        for run in runs:
            run.join(120)
    finally:
        sandbox.set_latency(0)
    assert len(outcomes) == 2 and all(set(o.values()) == {"done"} for o in outcomes)
    counts = assert_store_equals_sandbox(seeded, ["customers", "charges", "refunds", "subscriptions", "invoices"])
    assert _state("charges").synced_count == counts["charges"]  # the last run read each charge once
