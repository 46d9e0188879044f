"""The global search (the box in every page's header): one query, four groups of results.

What a query is taken to mean, in this order (`classify`):

1. **An id** (`cus_…`, `ch_…`, `py_…`, `pi_…`, `in_…`, `sub_…`, `re_…`): that object, exactly.
   A payment intent finds its charges; a refund finds the charge it refunded.
2. **Four digits**: card last four, exactly — charges paid with such a card, and customers
   with a saved payment method ending so.
3. **`#1234`, `order 1234`, `order #1234`, `order number 1234`**: the charge's order number, exactly.
4. **Anything else** (three characters or more): customers whose email or name starts with it
   (the lower-cased B-tree columns), then those whose email or name contains it, and charges
   whose description contains it, through a trigram index (SQLite: the FTS5 tables of
   migration 0009; PostgreSQL: pg_trgm GIN indexes). A single word is also tried as an
   invoice number and an order number, exactly. One or two characters are refused: a
   trigram index needs three, and a scan of every row is what the index is there to avoid.

Deleted mirror rows are never shown. Every result says what matched. Each group shows the
newest matches first, up to `limit`, and says when there are more (refine the query then).
Nothing here calls Stripe, and reading is not audited (like the lists).

**See all.** A group with more than it shows links to its list narrowed to every match
(`/customers?q=…`, `/charges?q=…`): `found_customers` and `found_charges` page through the
same rules without a cap, and `found_totals` counts what those lists count, so the link's
number and the list's are one count.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from services import audit, billing, reports
from services.billing import CustomerRow
from services.db import get_engine, session_scope
from services.errors import ValidationFailed
from services.models import (
    StripeCharge,
    StripeCustomer,
    StripeInvoice,
    StripePaymentMethod,
    StripeRefund,
    StripeSubscription,
)
from services.money import format_money
from services.permissions import Actor
from services.reports import ChargeFilters, ChargeListRow, ListQuery, ListTotal, Page

DEFAULT_LIMIT = 10
MAX_LIMIT = 50
MAX_QUERY = 200
MIN_CONTAINS = 3  # a trigram index needs three characters
# SQLite: how many FTS matches are read (in index order) before the newest `limit` are kept.
FTS_CANDIDATES = 200

KINDS = ("customers", "charges", "invoices", "subscriptions")
ID_PREFIXES: dict[str, str] = {
    "cus": "customer",
    "ch": "charge",
    "py": "charge",
    "pi": "payment intent",
    "in": "invoice",
    "sub": "subscription",
    "re": "refund",
}
_ID = re.compile(r"^(cus|ch|py|pi|in|sub|re)_[A-Za-z0-9_]{1,250}$")
_LAST4 = re.compile(r"^\d{4}$")
_ORDER = re.compile(
    r"^(?:#|order\s*(?:number\s*|no\.?\s*)?#|order(?:\s+number|\s+no\.?)?\s+)\s*([A-Za-z0-9][A-Za-z0-9-]{0,63})$",
    re.IGNORECASE,
)
_WORD = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

# --- the search objects of migrations 0009 and 0022 (not in services/models.py) ---------------

FTS_TABLES = ("stripe_customer_search", "stripe_charge_search")
_FTS5_SHADOWS = ("_data", "_idx", "_content", "_docsize", "_config")
CUSTOMER_PREFIX_TABLE = "stripe_customer_prefix"  # migrations 0022 (PostgreSQL) and 0024 (SQLite)
PREFIX_POSITION_TABLE = "stripe_prefix_position"  # SQLite only: migration 0024
SEARCH_TABLES = frozenset(
    {*(t + suffix for t in FTS_TABLES for suffix in ("", *_FTS5_SHADOWS)), CUSTOMER_PREFIX_TABLE, PREFIX_POSITION_TABLE}
)
SEARCH_INDEXES = frozenset(
    {
        "ix_stripe_customer_email_trgm",
        "ix_stripe_customer_name_trgm",
        "ix_stripe_charge_description_trgm",
        "ix_stripe_customer_email_prefix",
        "ix_stripe_customer_name_prefix",
        "ix_stripe_customer_prefix_customer",
    }
)

# The customer prefixes' row trigger of 0022 (every event); 0026 keeps a row trigger for updates
# and deletes only, and its downgrade puts this one back.
PG_CUSTOMER_PREFIX_ROW_TRIGGER = """CREATE TRIGGER stripe_customer_prefix_sync AFTER INSERT OR UPDATE OR DELETE
    ON stripe_customer FOR EACH ROW EXECUTE FUNCTION billy_customer_prefix_sync()"""

# Every text a customer-prefix filter may start at (its email, its name, and the name from each
# later word on), with the customer's id, in a B-tree (PostgreSQL: under the "C" collation).
# A prefix is then one index-only range of (text, customer id), with no customer row read:
# at 1,000,000 customers, a list filtered by "jam" (13,600 matches) read 5,000 customer rows
# one by one to fill a page (24 ms; bench/pages). Kept by a trigger; deleted customers left out.
PG_CUSTOMER_PREFIX_UP = (
    """CREATE TABLE stripe_customer_prefix (
        prefix text COLLATE "C" NOT NULL,
        customer_id varchar NOT NULL,
        PRIMARY KEY (prefix, customer_id))""",
    """CREATE FUNCTION billy_customer_prefixes(name text, email text) RETURNS SETOF text
    LANGUAGE sql IMMUTABLE AS $$
        SELECT DISTINCT t FROM (
            SELECT email AS t
            UNION ALL
            SELECT array_to_string(n.w[i:], ' ') FROM (SELECT string_to_array(name, ' ') AS w) n,
                generate_subscripts(n.w, 1) AS i
        ) s WHERE t IS NOT NULL AND t <> ''
    $$""",
    # The DELETE names the primary key's values: joined to the function instead, it was planned
    # as a scan of the whole table on a store not yet analyzed (5.8 ms a rename at 20,000).
    """CREATE FUNCTION billy_customer_prefix_sync() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF TG_OP = 'UPDATE' AND NEW.id = OLD.id AND NEW.deleted IS NOT DISTINCT FROM OLD.deleted
                AND NEW.name_lower IS NOT DISTINCT FROM OLD.name_lower
                AND NEW.email_lower IS NOT DISTINCT FROM OLD.email_lower THEN
            RETURN NULL;
        END IF;
        IF TG_OP <> 'INSERT' AND OLD.deleted IS NOT TRUE THEN
            DELETE FROM stripe_customer_prefix
            WHERE customer_id = OLD.id AND prefix = ANY (ARRAY(
                SELECT t COLLATE "C" FROM billy_customer_prefixes(OLD.name_lower, OLD.email_lower) AS t));
        END IF;
        IF TG_OP <> 'DELETE' AND NEW.deleted IS NOT TRUE THEN
            INSERT INTO stripe_customer_prefix (prefix, customer_id)
            SELECT t, NEW.id FROM billy_customer_prefixes(NEW.name_lower, NEW.email_lower) AS t
            ON CONFLICT DO NOTHING;
        END IF;
        RETURN NULL;
    END $$""",
    PG_CUSTOMER_PREFIX_ROW_TRIGGER,
)
# Since 0026 a statement's new customers get their prefixes from one INSERT over the statement's
# transition table (a backfill page of 100 customers called the row trigger's function 100
# times: a quarter of the page's write); updates and deletes keep the row trigger.
PG_CUSTOMER_PREFIX_BY_STATEMENT_UP = (
    "DROP TRIGGER stripe_customer_prefix_sync ON stripe_customer",
    """CREATE TRIGGER stripe_customer_prefix_sync AFTER UPDATE OR DELETE ON stripe_customer
    FOR EACH ROW EXECUTE FUNCTION billy_customer_prefix_sync()""",
    """CREATE FUNCTION billy_customer_prefix_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO stripe_customer_prefix (prefix, customer_id)
        SELECT t, n.id FROM inserted n, billy_customer_prefixes(n.name_lower, n.email_lower) AS t
        WHERE n.deleted IS NOT TRUE ORDER BY 1, 2
        ON CONFLICT DO NOTHING;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER stripe_customer_prefix_inserted AFTER INSERT ON stripe_customer
    REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT EXECUTE FUNCTION billy_customer_prefix_inserted()""",
)
PG_CUSTOMER_PREFIX_BY_STATEMENT_DOWN = (
    "DROP FUNCTION IF EXISTS billy_customer_prefix_inserted() CASCADE",
    "DROP TRIGGER stripe_customer_prefix_sync ON stripe_customer",
    PG_CUSTOMER_PREFIX_ROW_TRIGGER,
)
PG_CUSTOMER_PREFIX_FILL = (
    "DELETE FROM stripe_customer_prefix",
    """INSERT INTO stripe_customer_prefix (prefix, customer_id)
    SELECT t, c.id FROM stripe_customer c, billy_customer_prefixes(c.name_lower, c.email_lower) AS t
    WHERE c.deleted IS NOT TRUE ON CONFLICT DO NOTHING""",
)
PG_CUSTOMER_PREFIX_DOWN = (
    "DROP TRIGGER IF EXISTS stripe_customer_prefix_sync ON stripe_customer",
    "DROP FUNCTION IF EXISTS billy_customer_prefix_inserted() CASCADE",
    "DROP FUNCTION IF EXISTS billy_customer_prefix_sync()",
    "DROP FUNCTION IF EXISTS billy_customer_prefixes(text, text)",
    "DROP TABLE IF EXISTS stripe_customer_prefix",
)
# SQLite keeps the same table by triggers too. Its triggers cannot use a CTE, so a name's later
# words are found by joining the character positions 1..PREFIX_POSITIONS (a table of integers)
# where the name has a space. Stripe caps a name at 256 characters; a later word starting past
# PREFIX_POSITIONS would only be missed by the prefix filters, not by the search.
PREFIX_POSITIONS = 1024


def _sqlite_prefixes_of(row: str, source: str = "") -> str:
    """SELECTs of (prefix, customer id) for the customer `row` (NEW in a trigger; `c` of
    `source`, "stripe_customer c", in the fill), left out when the customer is deleted."""
    src = f"FROM {source} " if source else ""
    also = f", {source}" if source else ""
    live = f"WHERE {row}.deleted IS NOT 1 AND"
    return f"""
        SELECT {row}.email_lower, {row}.id {src}{live} {row}.email_lower <> ''
        UNION ALL SELECT {row}.name_lower, {row}.id {src}{live} {row}.name_lower <> ''
        UNION ALL SELECT substr({row}.name_lower, p.n + 1), {row}.id FROM stripe_prefix_position p{also}
            {live} p.n < length({row}.name_lower) AND substr({row}.name_lower, p.n, 1) = ' '"""  # noqa: S608 - our own names


SQLITE_CUSTOMER_PREFIX_UP = (
    "CREATE TABLE stripe_prefix_position (n INTEGER PRIMARY KEY)",
    # 1..PREFIX_POSITIONS without a CTE: the keys of a JSON array of that many zeros.
    f"""INSERT INTO stripe_prefix_position (n) SELECT key + 1 FROM json_each(
        '[' || rtrim(replace(hex(zeroblob({PREFIX_POSITIONS})), '00', '0,'), ',') || ']')""",  # noqa: S608 - a constant
    """CREATE TABLE stripe_customer_prefix (
        prefix TEXT NOT NULL,
        customer_id TEXT NOT NULL,
        PRIMARY KEY (prefix, customer_id)) WITHOUT ROWID""",
    "CREATE INDEX ix_stripe_customer_prefix_customer ON stripe_customer_prefix (customer_id)",
    f"""CREATE TRIGGER stripe_customer_prefix_insert AFTER INSERT ON stripe_customer BEGIN
        INSERT OR IGNORE INTO stripe_customer_prefix (prefix, customer_id) {_sqlite_prefixes_of("NEW")};
    END""",
    f"""CREATE TRIGGER stripe_customer_prefix_update AFTER UPDATE ON stripe_customer
    WHEN NEW.id IS NOT OLD.id OR NEW.deleted IS NOT OLD.deleted OR NEW.name_lower IS NOT OLD.name_lower
        OR NEW.email_lower IS NOT OLD.email_lower BEGIN
        DELETE FROM stripe_customer_prefix WHERE customer_id = OLD.id;
        INSERT OR IGNORE INTO stripe_customer_prefix (prefix, customer_id) {_sqlite_prefixes_of("NEW")};
    END""",  # noqa: S608 - our own SQL
    """CREATE TRIGGER stripe_customer_prefix_delete AFTER DELETE ON stripe_customer BEGIN
        DELETE FROM stripe_customer_prefix WHERE customer_id = OLD.id;
    END""",
)
SQLITE_CUSTOMER_PREFIX_FILL = (
    "DELETE FROM stripe_customer_prefix",
    "INSERT OR IGNORE INTO stripe_customer_prefix (prefix, customer_id) "
    + _sqlite_prefixes_of("c", "stripe_customer c"),
)
SQLITE_CUSTOMER_PREFIX_DOWN = (
    "DROP TRIGGER IF EXISTS stripe_customer_prefix_delete",
    "DROP TRIGGER IF EXISTS stripe_customer_prefix_update",
    "DROP TRIGGER IF EXISTS stripe_customer_prefix_insert",
    "DROP TABLE IF EXISTS stripe_customer_prefix",
    "DROP TABLE IF EXISTS stripe_prefix_position",
)

_customer_prefix = sa.table(CUSTOMER_PREFIX_TABLE, sa.column("prefix"), sa.column("customer_id"))


def is_search_object(name: str | None, type_: str) -> bool:
    """True for exactly the search tables and indexes migrations 0009, 0022 and 0024 make outside the models."""
    return (type_ == "table" and name in SEARCH_TABLES) or (type_ == "index" and name in SEARCH_INDEXES)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """alembic's `include_name` hook: compare everything but the search objects."""
    return not is_search_object(name, type_)


def include_object(obj: Any, name: str | None, type_: str, reflected: bool, compare_to: Any) -> bool:
    """alembic's `include_object` hook: the same rule, for objects."""
    return not is_search_object(name, type_)


# --- results ----------------------------------------------------------------------------------


class HitKind(StrEnum):
    """What a search hit is."""

    CUSTOMER = "customer"
    CHARGE = "charge"
    INVOICE = "invoice"
    SUBSCRIPTION = "subscription"


class MatchRule(StrEnum):
    """How a query was read: an object id, a card's last four digits, an order number, or text."""

    ID = "id"
    CARD_LAST4 = "card_last4"
    ORDER_NUMBER = "order_number"
    TEXT = "text"


@dataclass(frozen=True)
class SearchHit:
    kind: HitKind
    id: str
    customer_id: str  # the page a hit links to is this customer's ("" when it has none)
    title: str
    detail: str
    matched: str  # what matched, in words
    created: int


@dataclass(frozen=True)
class SearchResults:
    query: str  # as searched (whitespace collapsed)
    rule: MatchRule
    customers: list[SearchHit] = field(default_factory=list)
    charges: list[SearchHit] = field(default_factory=list)
    invoices: list[SearchHit] = field(default_factory=list)
    subscriptions: list[SearchHit] = field(default_factory=list)
    more: frozenset[str] = frozenset()  # groups with more matches than shown

    @property
    def count(self) -> int:
        return len(self.customers) + len(self.charges) + len(self.invoices) + len(self.subscriptions)


# --- query rules ------------------------------------------------------------------------------


def plain_words(text: object) -> str:
    """Typed search text as the stores can take it: control characters and lone surrogates
    (a NUL breaks SQLite's full-text search and PostgreSQL refuses it) dropped, spaces collapsed."""
    kept = "".join(ch for ch in str(text or "") if ch.isprintable() or ch.isspace())
    return " ".join(kept.split())


def normalize(query: str) -> str:
    text = plain_words(query)
    if len(text) > MAX_QUERY:
        raise ValidationFailed(f"A search is at most {MAX_QUERY} characters.")
    return text


def classify(query: str) -> tuple[MatchRule, str]:
    """(rule, value): which rule a normalized query falls under, and the value it looks up."""
    if _ID.match(query):
        return MatchRule.ID, query
    if _LAST4.match(query):
        return MatchRule.CARD_LAST4, query
    order = _ORDER.match(query)
    if order and order.group(1).lower() not in ("number", "no"):
        return MatchRule.ORDER_NUMBER, order.group(1)
    return MatchRule.TEXT, query


def escape_like(text: str) -> str:
    """`text` as a literal inside a LIKE pattern (with ESCAPE '\\')."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def escape_glob(text: str) -> str:
    """`text` as a literal inside a SQLite GLOB pattern."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def fts_phrase(text: str) -> str:
    """`text` as one FTS5 phrase: no query syntax of its own, a substring for the trigram tokenizer."""
    return '"' + text.replace('"', '""') + '"'


def _starts_pattern(dialect: str, needle: str) -> str:
    """The pattern `_starts_with` matches texts starting with `needle` by."""
    return escape_glob(needle) + "*" if dialect == "sqlite" else escape_like(needle) + "%"


def _starts_with(column: Any, pattern: Any, dialect: str) -> sa.ColumnElement[bool]:
    """`column` matches `pattern` (`_starts_pattern`, or a bound parameter holding one): GLOB on
    SQLite, which is case-sensitive and so uses a BINARY index as a range, where its LIKE cannot;
    LIKE on PostgreSQL."""
    return column.op("GLOB")(pattern) if dialect == "sqlite" else column.like(pattern, escape="\\")


def _email_or_name_starts(customer: Any, pattern: Any, dialect: str) -> sa.ColumnElement[bool]:
    """The customer's lower-cased email or name matches `pattern` (see `_starts_with`)."""
    return sa.or_(
        _starts_with(col(customer.email_lower), pattern, dialect),
        _starts_with(col(customer.name_lower), pattern, dialect),
    )


def _row_starts(customer: Any, needle: str, dialect: str) -> sa.ColumnElement[bool]:
    """The customer row's email, name or a later word of its name starts with `needle` (lower
    case), tested on the row itself: the "by key" walk, for a prefix matching very many."""
    pattern = _starts_pattern(dialect, needle)
    later_word = ("* " if dialect == "sqlite" else "% ") + pattern
    return sa.or_(
        _email_or_name_starts(customer, pattern, dialect),
        _starts_with(col(customer.name_lower), later_word, dialect),
    )


# How a list filtered by a customer prefix is read, from M matching customers (the prefix table's
# count), C customers and R rows in the list. A page of 51 rows walks about 51 × C ÷ M rows of the
# list's own order, each about 1.2 µs when tested against the matches hashed once (0.25 µs each
# to hash), about 5 µs when its customer row is read by key; gathering the matching customers'
# rows through the list's customer index costs about 8-12 µs for each of their M × R ÷ C rows.
# So (measured at 1,000,000 customers on PostgreSQL, bench/pages and a throwaway script timing
# each plan on charges, subscriptions and invoices; SQLite at 100,000 follows the same bands):
# - gather below C × sqrt(0.1 × 51 ÷ R) matches (2,300 for 1,000,000 charges, 4,100 for
#   300,000 subscriptions; 61 matches took 3.8 ms gathered, 2.1 s walked; 4,868 took 21-35 ms
#   gathered, 11-14 ms walked);
# - walk, testing each row against the hashed matches, below sqrt(750 × C) (27,000 at 1M
#   customers: "jam", 13,600 matches, 24 → 10 ms; "ja", 70,000, 8 ms by key, 25 ms hashed);
# - walk, reading each row's customer by key, above that.
# With no counts yet (PostgreSQL before the tables were first analyzed, an empty store) a list
# walks by key: right whatever the sizes, if slower.
# SQLite builds its set of matches dearer and reads a customer by key cheaper: at 100,000
# customers "mar" (7,383 matches) took 16 ms hashed and 9.7 ms by key on charges, "rob" (2,340)
# 9.0 ms hashed and 17.9 ms by key on invoices (bench/pages stores, a throwaway script), so it
# stops hashing at about half as many matches.
WALK_TO_GATHER_COST = 0.1
HASHED_WALK_FACTOR = 27.0
SQLITE_HASHED_SHARE = 0.5
PAGE_WALKED = 51


def walk_plan(needle: str, list_table: str) -> str:
    """How a list (`list_table`) filtered by a customer prefix is read: "gather" the few matching
    customers' rows through the list's customer index, walk the list's own order testing each
    row against the matches "hashed" once, or against its customer row "by key" (very many
    matches)."""
    return _plan(list_table, lambda cap: _match_estimate(needle, cap))


def _plan(
    list_table: str, matches: Callable[[int], int], walk_to_gather: float | None = None, page: int = PAGE_WALKED
) -> str:
    """The plan ("gather", "hashed" or "by key", see above) for `matches(cap)` matching customers."""
    customers, rows = _row_count("stripe_customer"), max(1, _row_count(list_table))
    cost = WALK_TO_GATHER_COST if walk_to_gather is None else walk_to_gather
    gather_below = int(customers * (cost * page / rows) ** 0.5)
    factor = HASHED_WALK_FACTOR * (SQLITE_HASHED_SHARE if get_engine().dialect.name == "sqlite" else 1.0)
    hashed_below = max(gather_below, int(factor * customers**0.5))
    found = matches(hashed_below)
    return "gather" if found < gather_below else "hashed" if found < hashed_below else "by key"


ESTIMATE_SECONDS = 60.0  # how long an estimate is reused (it only picks the faster plan)
_estimates: dict[tuple[Any, ...], tuple[float, int]] = {}
_estimates_lock = threading.Lock()


def _match_estimate(needle: str, cap: int) -> int:
    """About how many customers match (an over-count: a customer matching twice counts twice),
    stopped at `cap`: one index-only range of the prefix table.

    About a millisecond, and paging or a live refresh asks again at once, so an estimate is
    kept for ESTIMATE_SECONDS. A stale one costs speed only: every plan gives the same rows."""

    return _kept_estimate(("prefix", needle, cap), lambda: _count_up_to(_prefix_matches(needle), cap))


def _count_up_to(stmt: sa.Select[Any], cap: int) -> int:
    """How many rows `stmt` gives, counting no further than `cap`."""
    with session_scope() as session:
        capped = sa.select(sa.func.count()).select_from(stmt.limit(cap).subquery())
        return int(session.execute(capped).scalar_one())


def _kept_estimate(what: tuple[str | int, ...], count: Callable[[], int]) -> int:
    """`count()`, or its answer for `what` in this store less than ESTIMATE_SECONDS ago."""
    key, now = (str(get_engine().url), *what), time.monotonic()
    with _estimates_lock:
        kept = _estimates.get(key)
        if kept and now - kept[0] < ESTIMATE_SECONDS:
            return kept[1]
    found = count()
    with _estimates_lock:
        if len(_estimates) > 1000:
            _estimates.clear()
        _estimates[key] = (now, found)
    return found


def forget_estimates() -> None:
    """Drop kept estimates (a store swapped under the process: tests)."""
    with _estimates_lock:
        _estimates.clear()


def _row_count(table: str) -> int:
    """About how many rows `table` holds, kept as long as an estimate: PostgreSQL's planner count
    (0 before the table was first analyzed); SQLite's largest rowid (one step down its B-tree;
    rows deleted since make it an over-count)."""

    def count() -> int:
        with session_scope() as session:
            if session.get_bind().dialect.name == "postgresql":
                found = session.execute(
                    sa.text("SELECT reltuples FROM pg_class WHERE oid = to_regclass(:table)"), {"table": table}
                ).scalar()
            else:
                largest: sa.Select[Any] = sa.select(sa.func.max(sa.column("rowid"))).select_from(sa.table(table))
                found = session.execute(largest).scalar()
        return max(0, int(found or 0))

    return _kept_estimate(("rows", table), count)


def customers_starting_with(customer_col: Any, needle: str) -> sa.ColumnElement[bool]:
    """Rows whose customer (`customer_col`, or the customer rows themselves when it is
    `StripeCustomer.id`) has an email or name, or a later word of the name, starting with
    `needle` (lower case), read by `walk_plan`'s choice."""
    plan = walk_plan(needle, customer_col.expression.table.name)
    if plan != "by key":
        matches = customer_col.in_(_prefix_matches(needle))
        # `IS TRUE` keeps the IN a set built once and tested on each row of the list's own walk:
        # left bare, it is the gather (PostgreSQL made it a semi-join and sorted every match).
        return matches.is_(True) if plan == "hashed" else matches
    c = StripeCustomer
    dialect = get_engine().dialect.name
    if dialect == "sqlite":  # each row's customer tested as the walk reaches it
        if customer_col is StripeCustomer.id:
            return sa.and_(col(c.deleted).is_(False), _row_starts(c, needle, dialect))
        m = aliased(StripeCustomer, name="matching_customer")
        return sa.exists().where(col(m.id) == customer_col, col(m.deleted).is_(False), _row_starts(m, needle, dialect))
    # PostgreSQL: the customers' own condition, the planner walking
    return customer_col.in_(sa.select(col(c.id)).where(col(c.deleted).is_(False), _row_starts(c, needle, dialect)))


def _prefix_matches(needle: str) -> sa.Select[Any]:
    """The ids of the customers with a prefix starting with `needle`, from one index-only range
    (a customer matching twice, by email and name, comes twice)."""
    dialect = get_engine().dialect.name
    prefix_range = _starts_with(_customer_prefix.c.prefix, _starts_pattern(dialect, needle), dialect)
    return sa.select(_customer_prefix.c.customer_id).where(prefix_range)


def read_query(query: str) -> tuple[str, MatchRule, str]:
    """(text, rule, value): the query as searched, its rule and the value it looks up ("" text:
    nothing typed). Text too short for the trigram index is refused, saying what to type."""
    text = normalize(query)
    if not text:
        return "", MatchRule.TEXT, ""
    rule, value = classify(text)
    if rule is MatchRule.TEXT and len(text) < MIN_CONTAINS:
        raise ValidationFailed(
            f"Type at least {MIN_CONTAINS} characters to search names, emails and descriptions "
            "(or a whole id, the last 4 card digits, or #order number)."
        )
    return text, rule, value


def global_search(actor: Actor, query: str, limit: int = DEFAULT_LIMIT) -> SearchResults:
    """Search customers, charges, invoices and subscriptions at once (see the module's rules)."""
    audit.authorize_read(actor, "search.global")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise ValidationFailed(f"A search shows 1 to {MAX_LIMIT} results per group.")
    text, rule, value = read_query(query)
    if not text:
        return SearchResults("", MatchRule.TEXT)
    with session_scope() as session:
        found = _Found(limit)
        if rule is MatchRule.ID:
            _by_id(session, value, found)
        elif rule is MatchRule.CARD_LAST4:
            _by_last4(session, value, found)
        elif rule is MatchRule.ORDER_NUMBER:
            _by_order_number(session, value, found)
        else:
            _by_text(session, value, found)
        return found.results(session, text, rule)


# --- gathering hits ---------------------------------------------------------------------------


class _Found:
    """Rows found per group, in the order found, without repeats; `limit` kept, more noted."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.rows: dict[str, dict[str, tuple[Any, str]]] = {k: {} for k in KINDS}
        self.more: set[str] = set()

    def add(self, kind: str, rows: list[Any], matched: str | Any) -> None:
        group = self.rows[kind]
        for row in rows:
            if row.id in group:
                continue
            if len(group) >= self.limit:
                self.more.add(kind)
                return
            group[row.id] = (row, matched(row) if callable(matched) else matched)

    def results(self, session: Session, text: str, rule: MatchRule) -> SearchResults:
        customer_ids = {row.id for row, _ in self.rows["customers"].values()}
        for kind in ("charges", "invoices", "subscriptions"):
            customer_ids |= {row.customer_id for row, _ in self.rows[kind].values() if row.customer_id}
        names = _customer_labels(session, customer_ids)
        return SearchResults(
            query=text,
            rule=rule,
            customers=[_customer_hit(r, m) for r, m in self.rows["customers"].values()],
            charges=[_charge_hit(r, m, names) for r, m in self.rows["charges"].values()],
            invoices=[_invoice_hit(r, m, names) for r, m in self.rows["invoices"].values()],
            subscriptions=[_subscription_hit(r, m, names) for r, m in self.rows["subscriptions"].values()],
            more=frozenset(self.more),
        )


# Each search runs up to six statements. Built afresh, they cost more than running them (4-8 ms
# of a 12 ms search at 1,000,000 customers, cProfile): so each is built once per process, its
# values bound at execution (`_rows`), and SQLAlchemy's compiled form is found by the kept
# statement's own cache key.


@functools.cache
def _light(model: Any) -> Any:
    """Rows without the raw Stripe object: a hit never shows it, and parsing it is the cost."""
    return select(model).options(sa.orm.defer(model.raw), sa.orm.defer(model.synced_at))


_LIMIT = sa.bindparam("limit", type_=sa.Integer)  # a group's size plus one (to tell there is more)


def _newest(model: Any, *conditions: Any) -> Any:
    """The newest rows of `model` meeting `conditions`, :limit of them (see `_rows`)."""
    return (
        _light(model)
        .where(col(model.deleted).is_(False), *conditions)
        .order_by(col(model.created).desc(), col(model.id).desc())
        .limit(_LIMIT)
    )


@functools.cache
def _newest_where(model: Any, column: str, many: bool = False) -> Any:
    """The newest rows of `model` whose `column` is :value (`many`: is in the list :value)."""
    value: sa.BindParameter[Any] = sa.bindparam("value", expanding=many)
    target = getattr(model, column)
    return _newest(model, col(target).in_(value) if many else col(target) == value)


def _rows(session: Session, stmt: Any, found: _Found, **values: Any) -> list[Any]:
    """A kept statement's rows, for a group of `found.limit` (one more tells there are more)."""
    return list(session.exec(stmt, params={"limit": found.limit + 1, **values}))


def _by_id(session: Session, value: str, found: _Found) -> None:
    prefix = value.split("_", 1)[0]
    if prefix == "cus":
        found.add("customers", _rows(session, _newest_where(StripeCustomer, "id"), found, value=value), "Customer id")
    elif prefix in ("ch", "py"):
        found.add("charges", _rows(session, _newest_where(StripeCharge, "id"), found, value=value), "Charge id")
    elif prefix == "pi":
        rows = _rows(session, _newest_where(StripeCharge, "payment_intent_id"), found, value=value)
        found.add("charges", rows, f"Payment intent {value}")
    elif prefix == "in":
        found.add("invoices", _rows(session, _newest_where(StripeInvoice, "id"), found, value=value), "Invoice id")
    elif prefix == "sub":
        rows = _rows(session, _newest_where(StripeSubscription, "id"), found, value=value)
        found.add("subscriptions", rows, "Subscription id")
    elif prefix == "re":
        refund = session.exec(
            select(StripeRefund).where(col(StripeRefund.id) == value, col(StripeRefund.deleted).is_(False))
        ).first()
        if refund is not None and refund.charge_id:
            rows = _rows(session, _newest_where(StripeCharge, "id"), found, value=refund.charge_id)
            found.add("charges", rows, f"Refunded by {value}")


def _by_last4(session: Session, value: str, found: _Found) -> None:
    charges = _rows(session, _newest_where(StripeCharge, "card_last4"), found, value=value)
    found.add("charges", charges, f"Card ending {value}")
    owners = _rows(session, _newest_card_owners(_card_plan(value)), found, last4=value)
    found.add("customers", owners, f"Saved card ending {value}")


@functools.cache
def _newest_card_owners(plan: str) -> Any:
    """The newest customers with a saved card ending in :last4, read by `plan`: their ids first,
    then their rows, so a walk reads the customers' created index alone
    (ix_stripe_customer_created_id includes `deleted` on PostgreSQL), not each walked row."""
    c = StripeCustomer
    newest = (
        select(col(c.id))
        .where(col(c.deleted).is_(False), _card_condition(col(c.id), sa.bindparam("last4"), plan))
        .order_by(col(c.created).desc(), col(c.id).desc())
        .limit(_LIMIT)
    )
    return _newest(c, col(c.id).in_(newest))


# A card search shows 11 customers, and its walk reads the customers' created index alone (about
# 0.33 µs an entry), where gathering reads each owner's row by key (about 7 µs): measured at
# 1,000,000 customers (bench/pages, a throwaway script), "4242" with 2,115 owners took 25-30 ms
# gathered and 3.3 ms walked; "1234" with 100, 1.3 ms gathered and 310 ms walked.
CARD_WALK_TO_GATHER_COST = 0.05
CARD_PAGE = DEFAULT_LIMIT + 1


def card_owners_condition(customer_col: Any, last4: str) -> sa.ColumnElement[bool]:
    """Customers (`customer_col`) with a saved card ending in `last4`, read by `_card_plan`'s
    choice."""
    return _card_condition(customer_col, last4, _card_plan(last4))


def _card_plan(last4: str) -> str:
    """A rare card's owners are gathered; a common one's (a test-mode account's 4242) are tested
    on a walk of the customers, hashed once or looked up by key per customer (`_plan`)."""

    def owners(cap: int) -> int:
        return _kept_estimate(("card", last4, cap), lambda: _count_up_to(_card_owners(last4), cap))

    return _plan("stripe_customer", owners, CARD_WALK_TO_GATHER_COST, CARD_PAGE)


def _card_condition(customer_col: Any, last4: Any, plan: str) -> sa.ColumnElement[bool]:
    if plan == "by key":
        pm = StripePaymentMethod
        return sa.exists().where(
            col(pm.customer_id) == customer_col, col(pm.card_last4) == last4, col(pm.deleted).is_(False)
        )
    matches = customer_col.in_(_card_owners(last4))
    return matches.is_(True) if plan == "hashed" else matches


def _card_owners(last4: Any) -> Any:
    """Ids of the customers with a saved payment method whose card ends in `last4` (one index-only
    range of ix_stripe_payment_method_card_owner; an owner of two such cards comes twice)."""
    pm = StripePaymentMethod
    return select(pm.customer_id).where(
        col(pm.card_last4) == last4, col(pm.deleted).is_(False), col(pm.customer_id).is_not(None)
    )


def _by_order_number(session: Session, value: str, found: _Found) -> None:
    rows = _rows(session, _newest_where(StripeCharge, "order_number"), found, value=value)
    found.add("charges", rows, f"Order number {value}")


def _by_text(session: Session, text: str, found: _Found) -> None:
    needle = text.lower()
    dialect = session.get_bind().dialect.name
    if _WORD.match(text):
        numbers = sorted({text, text.upper()})
        invoices = _rows(session, _newest_where(StripeInvoice, "number", many=True), found, value=numbers)
        found.add("invoices", invoices, "Invoice number")
        orders = _rows(session, _newest_where(StripeCharge, "order_number"), found, value=text)
        found.add("charges", orders, f"Order number {text}")

    # Customers: prefix first (B-tree ranges on the lower-cased columns), then contains (trigrams).
    prefix_rows = _rows(session, _customers_starting(dialect), found, pattern=_starts_pattern(dialect, needle))
    found.add("customers", prefix_rows, lambda r: _customer_matched(r, needle, "starts with"))
    if "customers" not in found.more:  # else the group is full: a contains match would not be shown
        rows = _rows(session, _customers_containing(dialect), found, **_contains_values(dialect, needle))
        found.add("customers", rows, lambda r: _customer_matched(r, needle, "contains"))
    rows = _rows(session, _charges_containing(dialect), found, **_contains_values(dialect, text))
    found.add("charges", rows, f"Description contains “{text}”")


@functools.cache
def _customers_starting(dialect: str) -> Any:
    """Customers whose email or name starts as :pattern says (`_starts_pattern`), from the B-tree
    ranges on the lower-cased columns."""
    return _newest(
        StripeCustomer, _email_or_name_starts(StripeCustomer, sa.bindparam("pattern", type_=sa.String), dialect)
    )


def _contains_values(dialect: str, text: str) -> dict[str, str]:
    """The bound values of `_customers_containing` / `_charges_containing` for `text`."""
    return {"phrase": fts_phrase(text)} if dialect == "sqlite" else {"pattern": "%" + escape_like(text) + "%"}


def _fts_candidates(table: str) -> Any:
    """The newest FTS_CANDIDATES ids of an FTS5 trigram table matching :phrase."""
    fts = sa.table(table, sa.column("rowid", sa.Integer), sa.column("id", sa.String))
    return (
        sa.select(fts.c.id)
        .where(sa.text(f"{table} MATCH :phrase"))
        .order_by(fts.c.rowid.desc())
        .limit(FTS_CANDIDATES)
        .subquery()
    )


@functools.cache
def _customers_containing(dialect: str) -> Any:
    """Customers whose email or name contains the text (lower case, 3+ characters;
    `_contains_values`), from the trigram index: SQLite's FTS5 table (its first FTS_CANDIDATES
    matches, newest first after), PostgreSQL's GIN indexes (newest first)."""
    c = StripeCustomer
    if dialect == "sqlite":
        candidates = _fts_candidates("stripe_customer_search")
        return (
            _light(c)
            .join(candidates, candidates.c.id == col(c.id))
            .where(col(c.deleted).is_(False))
            .order_by(col(c.created).desc(), col(c.id).desc())
            .limit(_LIMIT)
        )
    return _newest(c, _email_or_name_contains(c, sa.bindparam("pattern", type_=sa.String)))


def _email_or_name_contains(customer: Any, pattern: Any) -> sa.ColumnElement[bool]:
    """PostgreSQL: the customer's lower-cased email or name is LIKE `pattern` ("%text%"; the
    trigram indexes answer it)."""
    return sa.or_(
        col(customer.email_lower).like(pattern, escape="\\"), col(customer.name_lower).like(pattern, escape="\\")
    )


@functools.cache
def _charges_containing(dialect: str) -> Any:
    """Charges whose description contains the text (any case, 3+ characters), from the trigram
    index."""
    ch = StripeCharge
    if dialect == "sqlite":
        candidates = _fts_candidates("stripe_charge_search")
        return (
            _light(ch)
            .join(candidates, candidates.c.id == col(ch.id))
            .where(col(ch.deleted).is_(False))
            .order_by(col(ch.created).desc(), col(ch.id).desc())
            .limit(_LIMIT)
        )
    return _newest(ch, col(ch.description).ilike(sa.bindparam("pattern"), escape="\\"))


def customers_containing_stmt(dialect: str, needle: str, limit: int) -> Any:
    """`_customers_containing` with its values bound (to look at its plan)."""
    return _customers_containing(dialect).params(limit=limit + 1, **_contains_values(dialect, needle))


def charges_containing_stmt(dialect: str, text: str, limit: int) -> Any:
    """`_charges_containing` with its values bound (to look at its plan)."""
    return _charges_containing(dialect).params(limit=limit + 1, **_contains_values(dialect, text))


# --- see all: every match of a group, as its list pages through them ------------------------------
#
# The conditions are the union of what `_by_id`, `_by_last4`, `_by_order_number` and `_by_text`
# gather from, without their caps (SQLite's contains-search above reads its first FTS_CANDIDATES
# matches; these read them all). So every hit the search shows is a row of its list, and the
# list's count (`reports.count_matching` of the same statement) is the number the link gives.

SEE_ALL_KINDS = ("customers", "charges")


def _matching_fts(table: str, text: str) -> sa.Select[Any]:
    """The ids an FTS5 trigram table holds for rows containing `text` (any case), all of them."""
    fts = sa.table(table, sa.column("id", sa.String))
    return sa.select(fts.c.id).where(sa.text(f"{table} MATCH :phrase").bindparams(phrase=fts_phrase(text)))


def found_customers_condition(dialect: str, rule: MatchRule, text: str, value: str) -> sa.ColumnElement[bool]:
    """The customers `global_search` finds for a read query (`read_query`), every one of them."""
    c = StripeCustomer
    if rule is MatchRule.ID:
        return col(c.id) == value if value.startswith("cus_") else sa.false()
    if rule is MatchRule.CARD_LAST4:
        return card_owners_condition(col(c.id), value)
    if rule is MatchRule.ORDER_NUMBER:
        return sa.false()
    needle = text.lower()
    if dialect == "sqlite":
        contains: sa.ColumnElement[bool] = col(c.id).in_(_matching_fts("stripe_customer_search", needle))
    else:
        contains = _email_or_name_contains(c, "%" + escape_like(needle) + "%")
    return sa.or_(_email_or_name_starts(c, _starts_pattern(dialect, needle), dialect), contains)


def found_charges_condition(dialect: str, rule: MatchRule, text: str, value: str) -> sa.ColumnElement[bool]:
    """The charges `global_search` finds for a read query (`read_query`), every one of them."""
    ch = StripeCharge
    if rule is MatchRule.ID:
        prefix = value.split("_", 1)[0]
        if prefix in ("ch", "py"):
            return col(ch.id) == value
        if prefix == "pi":
            return col(ch.payment_intent_id) == value
        if prefix == "re":
            r = StripeRefund
            refunded = select(r.charge_id).where(
                col(r.id) == value, col(r.deleted).is_(False), col(r.charge_id).is_not(None)
            )
            return col(ch.id).in_(refunded)
        return sa.false()
    if rule is MatchRule.CARD_LAST4:
        return col(ch.card_last4) == value
    if rule is MatchRule.ORDER_NUMBER:
        return col(ch.order_number) == value
    if dialect == "sqlite":
        contains: sa.ColumnElement[bool] = col(ch.id).in_(_matching_fts("stripe_charge_search", text))
    else:
        contains = col(ch.description).ilike("%" + escape_like(text) + "%", escape="\\")
    return sa.or_(contains, col(ch.order_number) == text) if _WORD.match(text) else contains


def _read_for_list(query: str) -> tuple[str, MatchRule, str]:
    text, rule, value = read_query(query)
    if not text:
        raise ValidationFailed("Type what to search for: an id, the last 4 card digits, #order, or words.")
    return text, rule, value


def found_customers_query(query: str) -> ListQuery[CustomerRow]:
    """The customers list (newest first) narrowed to every customer the search finds for `query`
    (the caller authorizes)."""
    base = billing.customers_query()
    text, rule, value = _read_for_list(query)
    condition = found_customers_condition(get_engine().dialect.name, rule, text, value)
    return replace(base, stmt=base.stmt.where(condition))


def found_charges_query(
    query: str, filters: ChargeFilters | None = None, sort: str = "newest"
) -> ListQuery[ChargeListRow]:
    """The charges list, under its own filters and sort, narrowed to every charge the search
    finds for `query` (the caller authorizes)."""
    base = reports.charges_query(filters, sort)
    text, rule, value = _read_for_list(query)
    condition = found_charges_condition(get_engine().dialect.name, rule, text, value)
    return replace(base, stmt=base.stmt.where(condition))


def found_customers(
    actor: Actor, query: str, cursor: str | None = None, limit: int = billing.PAGE_SIZE
) -> Page[CustomerRow]:
    """One page of the customers list narrowed to what the search finds (`/customers?q=…`)."""
    audit.authorize_read(actor, "customers.search")
    reports.check_page_limit(limit, billing.MAX_PAGE_SIZE)
    return reports.read_page(found_customers_query(query), cursor, limit, ("found_customers", query))


def found_charges(
    actor: Actor,
    query: str,
    filters: ChargeFilters | None = None,
    sort: str = "newest",
    cursor: str | None = None,
    limit: int = reports.PAGE_SIZE,
) -> Page[ChargeListRow]:
    """One page of the charges list narrowed to what the search finds (`/charges?q=…`), under
    the list's other filters and sort."""
    audit.authorize_read(actor, "charges.search")
    reports.check_page_limit(limit, reports.MAX_PAGE_SIZE)
    found = found_charges_query(query, filters, sort)
    return reports.read_page(found, cursor, limit, ("found_charges", query, filters))


def count_found_customers(actor: Actor, query: str) -> ListTotal | None:
    """How many customers `found_customers` holds: the total its page came without."""
    audit.authorize_read(actor, "customers.search")
    return reports.late_totals.count(("found_customers", query), found_customers_query(query).stmt)


def count_found_charges(actor: Actor, query: str, filters: ChargeFilters | None = None) -> ListTotal | None:
    """How many charges `found_charges` holds under `filters`: the total its page came without."""
    audit.authorize_read(actor, "charges.search")
    found = found_charges_query(query, filters)  # checks the filters first
    return reports.late_totals.count(("found_charges", query, filters), found.stmt)


# The header search's "See all N" counts as long as a list's own total could before totals were
# counted apart from the page: the search answers in one event, and waits for these.
SEE_ALL_COUNT_BUDGET_MS = 15


def found_totals(actor: Actor, query: str, kinds: tuple[str, ...] = SEE_ALL_KINDS) -> dict[str, ListTotal | None]:
    """How many rows each list's "see all" holds for `query`: the very count the list itself
    shows (None when counting was too dear for the search to wait; the list, opened, counts it
    after its rows)."""
    audit.authorize_read(actor, "search.global")
    lists: dict[str, Callable[[str], ListQuery[Any]]] = {
        "customers": found_customers_query,
        "charges": found_charges_query,
    }
    if any(kind not in lists for kind in kinds):
        raise ValidationFailed(f"See all works for {' and '.join(SEE_ALL_KINDS)}.")
    return {kind: reports.count_matching(lists[kind](query).stmt, SEE_ALL_COUNT_BUDGET_MS) for kind in kinds}


def rebuild_search_index(session: Session) -> None:
    """Re-fill what triggers keep beside the base tables: the customer prefixes (after a
    PostgreSQL `TRUNCATE`, which fires no row trigger, or a restore) and SQLite's FTS tables
    (after a `VACUUM`, which may renumber rowids, or to repair them)."""
    if session.get_bind().dialect.name == "postgresql":
        for statement in PG_CUSTOMER_PREFIX_FILL:
            session.execute(sa.text(statement))
        return
    for statement in (
        *SQLITE_CUSTOMER_PREFIX_FILL,
        "DELETE FROM stripe_customer_search",
        "INSERT INTO stripe_customer_search (rowid, id, email, name) "
        "SELECT rowid, id, email, name FROM stripe_customer WHERE NOT deleted",
        "DELETE FROM stripe_charge_search",
        "INSERT INTO stripe_charge_search (rowid, id, description) "
        "SELECT rowid, id, description FROM stripe_charge WHERE NOT deleted AND description IS NOT NULL",
    ):
        session.execute(sa.text(statement))


# --- turning rows into hits -------------------------------------------------------------------


def _customer_matched(row: StripeCustomer, needle: str, how: str) -> str:
    email, name = (row.email or "").lower(), (row.name or "").lower()
    test = (lambda s: s.startswith(needle)) if how == "starts with" else (lambda s: needle in s)
    field_name = "Email" if test(email) else "Name" if test(name) else "Email or name"
    return f"{field_name} {how} “{needle}”"


def _customer_labels(session: Session, ids: set[str]) -> dict[str, str]:
    return {cid: ref.label for cid, ref in reports.customer_refs(session, ids).items()}


def _customer_hit(row: StripeCustomer, matched: str) -> SearchHit:
    return SearchHit(
        HitKind.CUSTOMER, row.id, row.id, row.name or row.email or row.id, row.email or "", matched, row.created
    )


def _charge_hit(row: StripeCharge, matched: str, names: dict[str, str]) -> SearchHit:
    card = f" · {(row.card_brand or 'card').title()} •••• {row.card_last4}" if row.card_last4 else ""
    who = names.get(row.customer_id or "", row.customer_id or "no customer")
    title = f"{format_money(row.amount, row.currency)} · {row.status}"
    detail = f"{who}{card}" + (f" · {row.description}" if row.description else "")
    return SearchHit(HitKind.CHARGE, row.id, row.customer_id or "", title, detail, matched, row.created)


def _invoice_hit(row: StripeInvoice, matched: str, names: dict[str, str]) -> SearchHit:
    who = names.get(row.customer_id or "", row.customer_email or row.customer_id or "no customer")
    title = f"{row.number or row.id} · {format_money(row.total, row.currency)} · {row.status or 'unknown'}"
    return SearchHit(HitKind.INVOICE, row.id, row.customer_id or "", title, who, matched, row.created)


def _subscription_hit(row: StripeSubscription, matched: str, names: dict[str, str]) -> SearchHit:
    who = names.get(row.customer_id or "", row.customer_id or "no customer")
    title = f"{row.status.replace('_', ' ')} · {format_money(row.mrr, row.currency)}/month"
    return SearchHit(HitKind.SUBSCRIPTION, row.id, row.customer_id or "", title, who, matched, row.created)
