"""The product catalogue: products and their prices, listed from the store and changed in Stripe
(issue 12).

Everyone may read the catalogue (`products.search`). A Billing Manager, the Owner and custom roles
holding `MANAGE_PRODUCTS` may create a product, rename or describe it, archive or restore it, and
add a price to it; every write takes the one shape of `services.stripe_writes`.

What Stripe decides and Billy passes on in words:

- Archiving a product (`active=false`) leaves its prices exactly as they are: subscriptions already
  on them keep billing, but an archived product can no longer be used for new subscriptions or
  purchases until it is restored. Billy archives the product only, never its prices.
- A price's amount, currency and interval can never change once it exists: to charge differently,
  add a new price (and stop offering the old one in Stripe).

The restricted key: "Products: Write" and "Prices: Write" are recommended extras, not among the six
permissions Billy requires when the key is connected, so the connection probe does not ask for them.
`catalog_controls` asks Stripe once (updating an id that cannot exist: 404 when the key may write,
403 when it may not, as the connection probe does for the six) and remembers the answer with the
connection's other permissions; a 403 on a real write is remembered too. A key that lacks one then
shows the write controls disabled with the permission to add, and the services refuse before Stripe.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services import audit, stripe_keys, stripe_writes
from services.db import run_transaction, session_scope
from services.errors import (
    NotFound,
    StripeKeyMissingPermission,
    StripeRequestFailed,
    ValidationFailed,
)
from services.models import StripeConnection, StripePrice, StripeProduct
from services.money import SYMBOLS, format_money
from services.permissions import Actor, Control, authorize, control
from services.reports import PAGE_SIZE, Page, count_matching
from services.search import plain_words
from services.stripe_gateway import StripeGateway
from services.stripe_writes import PRICE_WRITE, PRODUCT_WRITE, KeyPermission

log = logging.getLogger(__name__)

MAX_NAME = 250
MAX_DESCRIPTION = 1000  # Billy's own bound, to keep the catalogue readable
MAX_NICKNAME = 250
MAX_QUERY = 200
MAX_PAGE_SIZE = 50
# Stripe takes amounts of up to eight digits in the currency's smallest unit, e.g. $999,999.99
# (docs: currencies#minimum-and-maximum-charge-amounts).
MAX_UNIT_AMOUNT = 99_999_999
# The longest billing interval Stripe accepts is three years (docs: api/prices/create,
# recurring.interval_count).
INTERVAL_LIMITS = {"day": 1095, "week": 156, "month": 36, "year": 3}
INTERVAL_WORDS = {
    "day": ("day", "days"),
    "week": ("week", "weeks"),
    "month": ("month", "months"),
    "year": ("year", "years"),
}
# Stripe's presentment currencies (docs: currencies), without the three-decimal ones (BHD, JOD,
# KWD, OMR, TND), whose amounts Stripe counts in thousandths and Billy's money formatting does not.
_CURRENCY_CODES = """
usd aed afn all amd ang aoa ars aud awg azn bam bbd bdt bgn bif bmd bnd bob brl bsd bwp byn bzd cad
cdf chf clp cny cop crc cve czk djf dkk dop dzd egp etb eur fjd fkp gbp gel gip gmd gnf gtq gyd hkd
hnl htg huf idr ils inr isk jmd jpy kes kgs khr kmf krw kyd kzt lak lbp lkr lrd lsl mad mdl mga mkd
mmk mnt mop mur mvr mwk mxn myr mzn nad ngn nio nok npr nzd pab pen pgk php pkr pln pyg qar ron rsd
rub rwf sar sbd scr sek sgd shp sle sos srd std szl thb tjs top try ttd twd tzs uah ugx uyu uzs vnd
vuv wst xaf xcd xof xpf yer zar zmw
"""
CURRENCIES = frozenset(_CURRENCY_CODES.split())
THREE_DECIMAL = frozenset({"bhd", "jod", "kwd", "omr", "tnd"})
PRODUCT_GONE = (
    "This product no longer exists in Stripe (it was deleted there), so nothing was changed. "
    "The next sync removes it from Billy."
)
_CURSOR = re.compile(r"^catalog:([01]):(\d{1,19}):(.{1,255})$")
_OBJECT_ID = re.compile(r"^[A-Za-z0-9_\-]{1,255}$")

# Asking Stripe whether the key may write products and prices (see the module docstring).
PROBES: dict[str, tuple[KeyPermission, str, str]] = {
    PRODUCT_WRITE.code: (PRODUCT_WRITE, "products", "prod_billyprobe"),
    PRICE_WRITE.code: (PRICE_WRITE, "prices", "price_billyprobe"),
}
RECHECK_SECONDS = 60.0  # a key found lacking one is asked again after this long (it may be fixed)
ASK_AGAIN_SECONDS = 5.0  # "Check again" after the Owner edited the key: sooner, but not on every click
_probed_at: dict[tuple[str, str], float] = {}  # (key hint, permission code) → monotonic time
_probe_lock = threading.Lock()


# --- reading the catalogue ----------------------------------------------------------------------


@dataclass(frozen=True)
class PriceRow:
    """One price as the catalogue shows it."""

    id: str
    words: str  # "$49.00 / month", "¥5,000 one-off", "$120.00 every 3 months"
    nickname: str
    active: bool
    unit_amount: int | None
    currency: str
    interval: str | None  # None: one-off
    interval_count: int


@dataclass(frozen=True)
class ProductRow:
    """One product with its prices (active ones first)."""

    id: str
    name: str
    description: str
    active: bool
    status: str  # "Active" | "Archived"
    prices: tuple[PriceRow, ...]
    created: int

    @property
    def active_prices(self) -> int:
        return sum(1 for p in self.prices if p.active)


def price_words(unit_amount: int | None, currency: str, interval: str | None, interval_count: int | None) -> str:
    """A price as a person says it: "$49.00 / month", "$120.00 every 3 months", "¥5,000 one-off"."""
    amount = "a custom amount" if unit_amount is None else format_money(unit_amount, currency)
    if not interval:
        return f"{amount} one-off"
    one, many = INTERVAL_WORDS.get(interval, (interval, f"{interval}s"))
    count = interval_count or 1
    return f"{amount} / {one}" if count == 1 else f"{amount} every {count} {many}"


def list_products(actor: Actor, query: str = "", cursor: str | None = None, limit: int = PAGE_SIZE) -> Page[ProductRow]:
    """Products whose name contains `query` (any case), active first, then newest, a keyset page
    at a time, each with its prices, all from the store."""
    audit.authorize_read(actor, "products.search")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_PAGE_SIZE:
        raise ValidationFailed(f"A page holds 1 to {MAX_PAGE_SIZE} products.")
    if not isinstance(query, str):
        raise ValidationFailed("Search products by typing part of a name.")
    text = plain_words(query)
    if len(text) > MAX_QUERY:
        raise ValidationFailed(f"Search with at most {MAX_QUERY} characters.")
    p = StripeProduct
    stmt = select(p).where(col(p.deleted).is_(False))
    if text:
        stmt = stmt.where(sa.func.lower(col(p.name)).contains(text.lower(), autoescape=True))
    filtered = stmt
    if cursor:
        active, created, after_id = _decode_cursor(cursor)
        stmt = stmt.where(sa.tuple_(col(p.active), col(p.created), col(p.id)) < (active, created, after_id))
    stmt = stmt.order_by(col(p.active).desc(), col(p.created).desc(), col(p.id).desc()).limit(limit + 1)
    with session_scope() as session:
        found = list(session.exec(stmt))
        shown = found[:limit]
        prices = _prices_of(session, [row.id for row in shown])
        items = [_product_row(row, prices.get(row.id, ())) for row in shown]
    total = count_matching(filtered)
    next_cursor = None
    if len(found) > limit:
        last = shown[-1]
        next_cursor = f"catalog:{int(last.active)}:{last.created}:{last.id}"
    return Page(items, next_cursor, "catalogue", total)


def _decode_cursor(cursor: object) -> tuple[bool, int, str]:
    match = _CURSOR.match(cursor) if isinstance(cursor, str) else None
    if match is None:
        raise ValidationFailed("That page link is no longer valid; start from the first page.")
    return match.group(1) == "1", int(match.group(2)), match.group(3)


def _prices_of(session: Session, product_ids: list[str]) -> dict[str, tuple[PriceRow, ...]]:
    """Each product's prices in one query (ix_stripe_price_product_id): active first, then oldest."""
    if not product_ids:
        return {}
    pr = StripePrice
    rows = session.exec(
        select(pr)
        .where(col(pr.product_id).in_(product_ids), col(pr.deleted).is_(False))
        .order_by(col(pr.active).desc(), col(pr.created), col(pr.id))
    )
    grouped: dict[str, list[PriceRow]] = defaultdict(list)
    for row in rows:
        grouped[row.product_id or ""].append(
            PriceRow(
                id=row.id,
                words=price_words(row.unit_amount, row.currency, row.recurring_interval, row.recurring_interval_count),
                nickname=row.nickname or "",
                active=row.active,
                unit_amount=row.unit_amount,
                currency=row.currency,
                interval=row.recurring_interval,
                interval_count=row.recurring_interval_count or 1,
            )
        )
    return {product_id: tuple(rows_) for product_id, rows_ in grouped.items()}


def _product_row(row: StripeProduct, prices: tuple[PriceRow, ...]) -> ProductRow:
    return ProductRow(
        id=row.id,
        name=row.name,
        description=str((row.raw or {}).get("description") or ""),
        active=row.active,
        status="Active" if row.active else "Archived",
        prices=prices,
        created=row.created,
    )


def _stored_product(product_id: str) -> ProductRow:
    with session_scope() as session:
        row = session.get(StripeProduct, product_id)
        if row is None or row.deleted:
            raise NotFound("No product with that id has been synced from Stripe.")
        return _product_row(row, _prices_of(session, [row.id]).get(row.id, ()))


def get_product(actor: Actor, product_id: str) -> ProductRow:
    """One stored product with its prices (for a dialog's pre-filled values)."""
    audit.authorize_read(actor, "products.search", str(product_id)[:255])
    return _stored_product(_checked_id(product_id))


# --- what the page offers -----------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogControls:
    """The catalogue's write controls: hidden for a role that can never use them, disabled with the
    reason when the plan, an ended trial or the key's missing permission blocks them."""

    create: Control
    update: Control
    archive: Control
    add_price: Control
    key_lacks_writes: bool = False  # Stripe said the key may not write products or prices


def catalog_controls(actor: Actor, gateway: StripeGateway | None = None, *, ask_again: bool = False) -> CatalogControls:
    """The controls for `actor`; first, for a role that may write, learn whether the connected key
    may write products and prices if that is not known yet (asking Stripe is not logged).
    `ask_again`: the member says the key was just edited in Stripe, so a "no" is asked afresh."""
    if control(actor, "products.create").shown or control(actor, "prices.create").shown:
        check_key_permissions(gateway, ask_again=ask_again)
    return CatalogControls(
        create=stripe_writes.write_control(actor, "products.create", PRODUCT_WRITE),
        update=stripe_writes.write_control(actor, "products.update", PRODUCT_WRITE),
        archive=stripe_writes.write_control(actor, "products.archive", PRODUCT_WRITE),
        add_price=stripe_writes.write_control(actor, "prices.create", PRICE_WRITE),
        key_lacks_writes=any(stripe_writes.key_may(p) is False for p in (PRODUCT_WRITE, PRICE_WRITE)),
    )


def check_key_permissions(gateway: StripeGateway | None = None, *, ask_again: bool = False) -> dict[str, bool]:
    """Ask Stripe whether the connected key may write products and prices, unless already known
    (a "no" is asked again after `RECHECK_SECONDS` in this process, as the Owner may have fixed the
    key; after `ASK_AGAIN_SECONDS` when `ask_again`). Returns what is known; a Stripe that does not
    answer leaves a permission unknown."""
    window = ASK_AGAIN_SECONDS if ask_again else RECHECK_SECONDS
    connected = stripe_keys.connection()
    if connected is None:
        return {}
    known: dict[str, bool] = {}
    for code, (permission, collection, probe_id) in PROBES.items():
        said = connected.permissions.get(code)
        stamp = (connected.key_hint, code)
        with _probe_lock:
            recent = time.monotonic() - _probed_at.get(stamp, float("-inf")) < window
            if said is True or (said is False and recent):
                known[code] = said
                continue
            _probed_at[stamp] = time.monotonic()
        answer = _probe(gateway or StripeGateway(), collection, probe_id)
        if answer is None:
            continue
        _remember(permission, answer)
        known[code] = answer
    return known


def _probe(gateway: StripeGateway, collection: str, probe_id: str) -> bool | None:
    try:
        gateway.write(collection, "update", {}, "billy-probe-" + secrets.token_hex(12), object_id=probe_id)
    except StripeRequestFailed as exc:
        if exc.code == "resource_missing":
            return True
        if exc.code == "permission_denied":
            return False
        log.info("Could not learn whether the key may write %s: %s", collection, exc.message)
        return None
    return True  # an object with that id exists and the key changed nothing on it


def _remember(permission: KeyPermission, allowed: bool) -> None:
    """Keep what Stripe said of the key with the connection's probed permissions."""

    def write(session: Session) -> None:
        row = session.exec(select(StripeConnection)).first()
        if row is None or not row.secret_name or row.permissions.get(permission.code) is allowed:
            return
        row.permissions = {**row.permissions, permission.code: allowed}
        session.add(row)

    try:
        run_transaction(write)
    except Exception as exc:  # noqa: BLE001 - only a hint for the page; the write itself decides
        log.warning("Could not record the key's %s permission: %s", permission.code, exc)


# --- changing the catalogue ---------------------------------------------------------------------


@dataclass(frozen=True)
class CatalogChange:
    """The outcome of one catalogue write: what the member is told, the product as now stored
    (None when the store write failed: Stripe has the change, sync repairs the store), and
    whether the request repeated an earlier one's key (Stripe made the change once)."""

    product_id: str
    message: str
    product: ProductRow | None
    price_id: str = ""
    replayed: bool = False

    @property
    def stored(self) -> bool:
        return self.product is not None


def create_product(
    actor: Actor,
    name: str,
    description: str,
    idempotency_key: str,
    gateway: StripeGateway | None = None,
) -> CatalogChange:
    """Create a product in Stripe, then in the store."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "products.create") as draft:
        authorize(actor, "products.create")
        params = {"name": _name(name)}
        text = _description(description)
        if text:
            params["description"] = text
        draft.details["fields"] = sorted(params)
        replayed = stripe_writes.claim_write(
            actor, idempotency_key, "products.create", "new product", PRODUCT_WRITE, draft
        )
        try:
            answer = gateway.write("products", "create", params, idempotency_key)
        except StripeRequestFailed as exc:
            raise _refused(exc, PRODUCT_WRITE, replayed) from exc
        _remember(PRODUCT_WRITE, True)
        draft.targets.append(str(answer.get("id", "")))
        product = _mirrored(gateway, "product", answer, draft, replayed)
        message = f"Created “{params['name']}” in Stripe. Add a price to it to start selling it."
        return CatalogChange(str(answer["id"]), message, product, replayed=replayed)


def update_product(
    actor: Actor,
    product_id: str,
    name: str,
    description: str,
    idempotency_key: str,
    gateway: StripeGateway | None = None,
) -> CatalogChange:
    """Rename and describe a product ("" clears its description)."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "products.update", str(product_id)[:255]) as draft:
        authorize(actor, "products.update")
        current = _stored_product(_checked_id(product_id))
        params = {"name": _name(name), "description": _description(description)}
        draft.details["fields"] = sorted(
            f for f, now in (("name", current.name), ("description", current.description)) if params[f] != now
        )
        replayed = stripe_writes.claim_write(
            actor, idempotency_key, "products.update", current.id, PRODUCT_WRITE, draft
        )
        try:
            answer = gateway.write("products", "update", params, idempotency_key, object_id=current.id)
        except StripeRequestFailed as exc:
            raise _refused(exc, PRODUCT_WRITE, replayed) from exc
        _remember(PRODUCT_WRITE, True)
        product = _mirrored(gateway, "product", answer, draft, replayed)
        return CatalogChange(current.id, f"Saved “{params['name']}” in Stripe.", product, replayed=replayed)


def set_product_archived(
    actor: Actor,
    product_id: str,
    archived: bool,
    idempotency_key: str,
    gateway: StripeGateway | None = None,
) -> CatalogChange:
    """Archive a product (no longer offered for new subscriptions) or restore it. Its prices are
    left exactly as they are (see the module docstring)."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "products.archive", str(product_id)[:255]) as draft:
        authorize(actor, "products.archive")
        if not isinstance(archived, bool):
            raise ValidationFailed("Say whether to archive the product (true) or restore it (false).")
        current = _stored_product(_checked_id(product_id))
        draft.details.update(archived=archived, active_prices=current.active_prices)
        replayed = stripe_writes.claim_write(
            actor, idempotency_key, "products.archive", current.id, PRODUCT_WRITE, draft
        )
        try:
            answer = gateway.write(
                "products", "update", {"active": not archived}, idempotency_key, object_id=current.id
            )
        except StripeRequestFailed as exc:
            raise _refused(exc, PRODUCT_WRITE, replayed) from exc
        _remember(PRODUCT_WRITE, True)
        product = _mirrored(gateway, "product", answer, draft, replayed)
        return CatalogChange(
            current.id, archive_outcome(current.name, archived, current.active_prices), product, replayed=replayed
        )


def archive_outcome(name: str, archived: bool, active_prices: int) -> str:
    """What archiving or restoring did, in the words the member reads (also the dialog's warning)."""
    if not archived:
        return f"Restored “{name}”: it can be used for new subscriptions again."
    if not active_prices:
        return f"Archived “{name}”: it can no longer be used for new subscriptions. Restore it at any time."
    prices = "its active price stays" if active_prices == 1 else f"its {active_prices} active prices stay"
    return (
        f"Archived “{name}”: {prices} in Stripe as they were, so subscriptions already on them keep billing, "
        "but an archived product can no longer be used for new subscriptions. Restore it at any time."
    )


def archive_warning(name: str, archiving: bool, active_prices: int) -> str:
    """What archiving or restoring will do, for the dialog that asks to confirm it."""
    if not archiving:
        return f"Restore “{name}”? It can be used for new subscriptions again."
    if not active_prices:
        return f"Archive “{name}”? It can no longer be used for new subscriptions; you can restore it at any time."
    prices = "Its active price stays" if active_prices == 1 else f"Its {active_prices} active prices stay"
    return (
        f"Archive “{name}”? {prices} in Stripe as they are: subscriptions already on them keep billing, "
        "but an archived product can no longer be used for new subscriptions. You can restore it at any time."
    )


def create_price(
    actor: Actor,
    product_id: str,
    amount: int,
    currency: str,
    interval: str | None,
    interval_count: int,
    idempotency_key: str,
    nickname: str = "",
    gateway: StripeGateway | None = None,
) -> CatalogChange:
    """Add a price to a product: `amount` in the currency's smallest unit (cents; yen for JPY),
    `interval` None for a one-off price, else day, week, month or year every `interval_count`."""
    gateway = gateway or StripeGateway()
    with audit.audited(actor, "prices.create", str(product_id)[:255]) as draft:
        authorize(actor, "prices.create")
        cur = _currency(currency)
        unit_amount = _amount(amount, cur)
        draft.amount, draft.currency = unit_amount, cur
        recurring = _recurring(interval, interval_count)
        label = _text(nickname, "price's nickname", MAX_NICKNAME)
        draft.details.update(interval=recurring["interval"] if recurring else None)
        if recurring:
            draft.details["interval_count"] = recurring["interval_count"]
        current = _stored_product(_checked_id(product_id))
        if not current.active:
            raise ValidationFailed(f"“{current.name}” is archived: restore it before adding a price.")
        params: dict[str, Any] = {"product": current.id, "unit_amount": unit_amount, "currency": cur}
        if recurring:
            params["recurring"] = recurring
        if label:
            params["nickname"] = label
        replayed = stripe_writes.claim_write(actor, idempotency_key, "prices.create", current.id, PRICE_WRITE, draft)
        try:
            answer = gateway.write("prices", "create", params, idempotency_key)
        except StripeRequestFailed as exc:
            raise _refused(exc, PRICE_WRITE, replayed) from exc
        _remember(PRICE_WRITE, True)
        draft.targets.append(str(answer.get("id", "")))
        product = _mirrored(gateway, "price", answer, draft, replayed)
        words = price_words(
            unit_amount,
            cur,
            recurring["interval"] if recurring else None,
            recurring["interval_count"] if recurring else 1,
        )
        message = (
            f"Added {words} to “{current.name}”. A price's amount cannot be changed later (Stripe does not "
            "allow it): to charge differently, add another price."
        )
        return CatalogChange(current.id, message, product, price_id=str(answer["id"]), replayed=replayed)


def _refused(exc: StripeRequestFailed, permission: KeyPermission, replayed: bool) -> Exception:
    """Stripe's refusal in plain words; a 403 is remembered so the controls say what to add."""
    plain = stripe_writes.plain_refusal(exc, permission, missing=PRODUCT_GONE, replayed=replayed)
    if isinstance(plain, StripeKeyMissingPermission):
        _remember(permission, False)
    return plain


def _mirrored(
    gateway: StripeGateway, kind: str, answer: dict[str, Any], draft: audit.AuditDraft, replayed: bool
) -> ProductRow | None:
    """Store what Stripe answered (re-read when replayed) and read the product back from the store."""
    if not stripe_writes.mirror_answers(gateway, [(kind, answer)], draft, refetch=replayed):
        return None
    product_id = answer["id"] if kind == "product" else str(answer.get("product") or "")
    try:
        return _stored_product(product_id)
    except NotFound:
        return None


# --- checking values ------------------------------------------------------------------------------


def _checked_id(product_id: object) -> str:
    if not isinstance(product_id, str) or not _OBJECT_ID.match(product_id):
        raise ValidationFailed("That is not a Stripe product id (they look like prod_…).")
    return product_id


def _text(value: object, what: str, limit: int, *, multiline: bool = False) -> str:
    if not isinstance(value, str):
        raise ValidationFailed(f"The {what} must be text.")
    text = value.strip()
    if len(text) > limit:
        raise ValidationFailed(f"The {what} can be at most {limit:,} characters long ({len(text):,} now).")
    allowed = {"\n"} if multiline else set()
    for ch in text:
        if (unicodedata.category(ch) in ("Cc", "Cs") and ch not in allowed) or ch == "\u2028":
            raise ValidationFailed(f"The {what} contains a character that cannot be saved; retype it.")
    return text


def _name(value: object) -> str:
    name = _text(value, "product name", MAX_NAME)
    if not name:
        raise ValidationFailed("Give the product a name, as customers will see it on invoices and receipts.")
    return name


def _description(value: object) -> str:
    return _text(value, "description", MAX_DESCRIPTION, multiline=True)


def _currency(value: object) -> str:
    cur = value.strip().lower() if isinstance(value, str) else ""
    if cur in THREE_DECIMAL:
        raise ValidationFailed(f"Billy cannot take prices in {cur.upper()} yet (Stripe counts it in thousandths).")
    if cur not in CURRENCIES:
        raise ValidationFailed("Choose the currency by its three-letter code, e.g. USD, EUR, GBP or JPY.")
    return cur


def _amount(value: object, currency: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationFailed("Enter the amount as a number.")
    if value <= 0:
        raise ValidationFailed("Enter an amount above zero.")
    if value > MAX_UNIT_AMOUNT:
        raise ValidationFailed(
            f"Stripe takes prices of at most {format_money(MAX_UNIT_AMOUNT, currency)}; enter a smaller amount."
        )
    return value


def _recurring(interval: object, interval_count: object) -> dict[str, Any] | None:
    """Stripe's `recurring` for a repeating price; None for a one-off one."""
    if isinstance(interval_count, bool) or not isinstance(interval_count, int):
        raise ValidationFailed("Enter how many intervals pass between charges as a whole number, e.g. 1.")
    if interval in (None, ""):
        if interval_count != 1:
            raise ValidationFailed("A one-off price is charged once: leave “every” at 1, or choose an interval.")
        return None
    if interval not in INTERVAL_LIMITS:
        raise ValidationFailed("Choose how often the price is charged: every day, week, month or year, or once.")
    limit = INTERVAL_LIMITS[str(interval)]
    if not 1 <= interval_count <= limit:
        many = INTERVAL_WORDS[str(interval)][1]
        raise ValidationFailed(f"Charge every 1 to {limit} {many}: Stripe's longest billing interval is three years.")
    return {"interval": interval, "interval_count": interval_count}


def currency_choices() -> list[tuple[str, str]]:
    """The currencies the Add price dialog offers: common ones first, then the rest by code."""
    common = ["usd", "eur", "gbp", "cad", "aud", "jpy"]
    rest = sorted(CURRENCIES - set(common))
    return [(c, f"{c.upper()} ({SYMBOLS[c]})" if c in SYMBOLS else c.upper()) for c in common + rest]
