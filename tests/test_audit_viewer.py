"""The audit viewer's service: search, one row in full, CSV export and verify, for the Owner only.

Rows are written through `audit.record` (the one way rows get in), with the clock moved so
the date filters have days to tell apart. Every filter is checked against the rows a person
would pick out by hand; refusals are checked to be refusals and to be in the log themselves.
"""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from services import audit, audit_viewer, clock, db, timezones
from services.errors import NotFound, PermissionDenied, ValidationFailed
from services.models import utcnow
from services.permissions import Actor, Source
from tests.conftest import Instance, member_actor

DAY1 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
DAY2 = datetime(2025, 3, 2, 9, 0, tzinfo=UTC)
DAY3 = datetime(2025, 3, 3, 23, 30, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _short_head_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit, "_HEAD_WAIT_ATTEMPTS", 2)


def _at(monkeypatch: pytest.MonkeyPatch, when: datetime) -> None:
    """Rows written from now on carry this time."""
    monkeypatch.setattr(audit, "utcnow", lambda: when)


def _write(actor: Actor, action: str, outcome: str = "ok", **draft: object) -> None:
    audit.record(actor, action, outcome, audit.AuditDraft(**draft), "refused for the test" if outcome != "ok" else None)  # type: ignore[arg-type]


def _everything(owner: Actor, **filters: object) -> list[audit_viewer.AuditRecord]:
    """Every matching row, read page by page."""
    rows, cursor = [], None
    while True:
        page = audit_viewer.search(owner, audit_viewer.AuditFilters(**filters), cursor=cursor, limit=7)  # type: ignore[arg-type]
        rows += page.entries
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def _ids(rows: list[audit_viewer.AuditRecord]) -> list[int]:
    return [r.id for r in rows]


@pytest.fixture
def seeded(any_store_owner: Actor, monkeypatch: pytest.MonkeyPatch) -> dict[str, Actor]:
    """A small log: three days, five people, every source and outcome. The signup row is row 1,
    written today (after all three days)."""
    owner = any_store_owner
    ann = Actor(None, "ann@example.com", "billing_clerk", Source.DASHBOARD, "10.0.0.1", "Firefox")
    anna = Actor(None, "anna@example.com", "billing_manager", Source.API, "10.0.0.2", "curl/8")
    agent = Actor(owner.user_id, owner.email, "owner", Source.AGENT, "", "billy-agent")
    _at(monkeypatch, DAY1)
    _write(owner, "team.invite", details={"email": "ann@example.com", "role": "billing_clerk"})  # 2
    _write(ann, "charges.refund", "denied", targets=["ch_1"], amount=50_000, currency="usd")  # 3
    _write(ann, "refunds.request", targets=["ch_1"], amount=50_000, currency="usd")  # 4
    _at(monkeypatch, DAY2)
    _write(anna, "charges.refund", "failed", targets=["ch_2"], amount=1_500, currency="eur")  # 5
    _write(owner, "team.invite_revoke", targets=["7"])  # 6
    _write(agent, "charges.refund", targets=["ch_3"], amount=2_000, currency="usd")  # 7
    _at(monkeypatch, DAY3)
    _write(Actor.system(), "sync.run")  # 8
    _write(owner, "team.change_role", targets=["3"], details={"new_role": "read_only"})  # 9
    monkeypatch.setattr(audit, "utcnow", utcnow)
    return {"owner": owner, "ann": ann, "anna": anna, "agent": agent}


# --- filters ----------------------------------------------------------------------------------


def test_without_filters_every_row_comes_newest_first(seeded: dict[str, Actor]) -> None:
    rows = _everything(seeded["owner"])
    assert _ids(rows) == [9, 8, 7, 6, 5, 4, 3, 2, 1]
    assert rows[-1].action == "organization.signup"
    refused = next(r for r in rows if r.id == 3)
    assert (refused.actor_email, refused.actor_role, refused.outcome) == ("ann@example.com", "billing_clerk", "denied")
    assert (refused.target_ids, refused.amount, refused.currency, refused.amount_label) == (
        ["ch_1"],
        50_000,
        "usd",
        "$500.00",
    )
    assert refused.error == "refused for the test" and refused.at == DAY1


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"person": "ann@example.com"}, [4, 3]),  # a whole email: that person only, not anna@
        ({"person": "ANN@Example.com "}, [4, 3]),  # case and spaces do not matter
        ({"person": "ann"}, [5, 4, 3]),  # a beginning: ann@ and anna@
        ({"person": "ann*"}, [5, 4, 3]),
        ({"person": "anna@"}, [5]),
        ({"person": "owner@example.com"}, [9, 7, 6, 2, 1]),  # the agent acts in the Owner's name
        ({"person": "system"}, [8]),
        ({"person": "a%"}, []),  # wildcards are taken literally
        ({"person": "nobody@example.com"}, []),
        ({"action": "charges.refund"}, [7, 5, 3]),
        ({"action": "team.invite"}, [2]),  # exact: not team.invite_revoke
        ({"action": "team.inv*"}, [6, 2]),
        ({"action": "team"}, [9, 6, 2]),  # a family
        ({"action": "team."}, [9, 6, 2]),
        ({"action": "Team.Change_Role"}, [9]),
        ({"action": "tea"}, []),  # a family is a whole word
        ({"action": "team_*"}, []),  # "_" is not a wildcard
        ({"source": "dashboard"}, [9, 6, 4, 3, 2, 1]),
        ({"source": "api"}, [5]),
        ({"source": "agent"}, [7]),
        ({"source": "system"}, [8]),
        ({"source": "any"}, [9, 8, 7, 6, 5, 4, 3, 2, 1]),
        ({"outcome": "ok"}, [9, 8, 7, 6, 4, 2, 1]),
        ({"outcome": "denied"}, [3]),
        ({"outcome": "failed"}, [5]),
        ({"date_from": DAY2 - timedelta(hours=9)}, [9, 8, 7, 6, 5, 1]),
        ({"date_to": DAY2 - timedelta(hours=9)}, [4, 3, 2]),
        ({"date_from": DAY2, "date_to": DAY2}, []),  # `date_to` is excluded
        ({"date_from": DAY2, "date_to": DAY2 + timedelta(microseconds=1)}, [7, 6, 5]),
        ({"date_from": DAY3}, [9, 8, 1]),
        ({"date_from": DAY3 + timedelta(microseconds=1)}, [1]),  # `date_from` is included
        ({"date_to": DAY3 + timedelta(microseconds=1)}, [9, 8, 7, 6, 5, 4, 3, 2]),
    ],
)
def test_each_filter_narrows_to_the_rows_it_names(
    seeded: dict[str, Actor], filters: dict[str, object], expected: list[int]
) -> None:
    assert _ids(_everything(seeded["owner"], **filters)) == expected


def test_filters_combine(seeded: dict[str, Actor]) -> None:
    owner = seeded["owner"]
    assert _ids(_everything(owner, action="charges.refund", outcome="ok")) == [7]
    assert _ids(_everything(owner, person="ann", action="charges")) == [5, 3]
    assert _ids(_everything(owner, person="ann", action="charges", source="dashboard")) == [3]
    assert _ids(_everything(owner, person="owner@example.com", action="team", date_from=DAY2)) == [9, 6]
    assert _ids(_everything(owner, person="owner@example.com", date_from=DAY2)) == [9, 7, 6, 1]
    assert _ids(_everything(owner, person="owner@", source="agent", outcome="denied")) == []
    since, before = DAY1 - timedelta(hours=1), DAY3 - timedelta(hours=1)
    assert _ids(_everything(owner, outcome="ok", date_from=since, date_to=before)) == [7, 6, 4, 2]
    assert _ids(_everything(owner, ids=(3, 5, 7, 999))) == [7, 5, 3]  # an alert's rows, by number
    assert _ids(_everything(owner, ids=(3, 5, 7), outcome="ok")) == [7]


@pytest.mark.parametrize(
    ("filters", "message"),
    [
        ({"source": "email"}, "The source is one of dashboard, api, agent, system."),
        ({"outcome": "maybe"}, "The outcome is one of ok, denied, failed."),
        ({"action": "team.invite'; --"}, "An action looks like team.invite"),
        ({"action": "*team"}, "An action looks like team.invite"),
        ({"person": "x" * 255}, "The person filter is too long"),
        ({"person": 7}, "The person filter must be text."),
        ({"date_from": "2025-03-01"}, "The 'from' date must be a date and time."),
        ({"date_to": datetime(2025, 3, 1)}, "The 'to' date must say its time zone"),
        ({"ids": tuple(range(1, 102))}, "Ask for at most 100 audit rows by their numbers."),
        ({"ids": ("1 OR 1=1",)}, "Ask for at most 100 audit rows by their numbers."),
        ({"ids": (0,)}, "Ask for at most 100 audit rows by their numbers."),
    ],
)
def test_filters_that_make_no_sense_are_refused_clearly(
    any_store_owner: Actor, filters: dict[str, object], message: str
) -> None:
    with pytest.raises(ValidationFailed, match=message.replace("(", r"\(").replace(".", r"\.")):
        audit_viewer.search(any_store_owner, audit_viewer.AuditFilters(**filters))  # type: ignore[arg-type]


def test_a_date_range_that_ends_before_it_starts_is_refused(any_store_owner: Actor) -> None:
    start, end = datetime(2025, 3, 2, 12, tzinfo=UTC), datetime(2025, 3, 1, 8, tzinfo=UTC)
    with pytest.raises(ValidationFailed) as refused:
        audit_viewer.search(any_store_owner, audit_viewer.AuditFilters(date_from=start, date_to=end))
    assert refused.value.message == (
        "The date range ends before it starts (from 2025-03-02 12:00 UTC to 2025-03-01 08:00 UTC): "
        "swap the dates or clear one."
    )
    with pytest.raises(ValidationFailed, match="ends before it starts"):
        audit_viewer.export(any_store_owner, audit_viewer.AuditFilters(date_from=start, date_to=end))
    audit_viewer.search(
        any_store_owner, audit_viewer.AuditFilters(date_from=start, date_to=start)
    )  # from = to: empty, not wrong


def test_days_picked_in_the_viewers_zone_become_a_utc_range() -> None:
    assert timezones.day_range("", "") == (None, None)
    assert timezones.day_range("2025-03-01", "2025-03-01") == (
        datetime(2025, 3, 1, tzinfo=UTC),
        datetime(2025, 3, 2, tzinfo=UTC),
    )
    assert timezones.day_range("2025-03-01", "2025-03-02", "Europe/Berlin") == (
        datetime(2025, 2, 28, 23, tzinfo=UTC),
        datetime(2025, 3, 2, 23, tzinfo=UTC),
    )
    assert timezones.day_range("2025-03-09", None, "America/New_York") == (datetime(2025, 3, 9, 5, tzinfo=UTC), None)
    assert timezones.day_range(None, "2025-03-09", "America/New_York") == (None, datetime(2025, 3, 10, 4, tzinfo=UTC))
    # A zone this machine does not know (or a forged one) counts as UTC.
    assert timezones.day_range("2025-03-01", "", "Mars/Olympus") == (datetime(2025, 3, 1, tzinfo=UTC), None)
    assert timezones.viewer_zone("../../etc/passwd") == "UTC"
    assert timezones.viewer_zone("Europe/Berlin") == "Europe/Berlin"

    with pytest.raises(ValidationFailed) as refused:
        timezones.day_range("2025-03-02", "2025-03-01")
    assert refused.value.message == (
        "The 'from' date (2025-03-02) is after the 'to' date (2025-03-01): swap them or clear one."
    )
    with pytest.raises(ValidationFailed, match="is not a date: use the form 2025-01-31"):
        timezones.day_range("1 March", "")
    with pytest.raises(ValidationFailed, match="is not a date"):
        timezones.day_range("", "2025-02-30")
    with pytest.raises(ValidationFailed, match="between 1970 and 9998"):
        timezones.day_range("", "9999-12-31")


# --- pages ------------------------------------------------------------------------------------


def test_pages_cover_every_row_exactly_once_and_do_not_shift_as_rows_arrive(
    any_store_owner: Actor, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = any_store_owner
    for i in range(60):
        _write(owner, "charges.refund" if i % 3 else "team.invite", targets=[f"ch_{i}"])
    everything = list(range(61, 0, -1))

    seen, cursor, sizes = [], None, []
    while True:
        page = audit_viewer.search(owner, cursor=cursor, limit=25)
        seen += _ids(page.entries)
        sizes.append(len(page.entries))
        if len(sizes) == 1:
            _write(owner, "team.invite")  # a new row (62) while the Owner reads: later pages stay as they were
        if page.next_cursor is None:
            break
        assert page.next_cursor == page.entries[-1].id
        cursor = page.next_cursor
    assert seen == everything and sizes == [25, 25, 11]
    assert len(set(seen)) == len(seen)

    invites = _everything(owner, action="team.invite")
    assert _ids(invites) == [62] + [n for n in everything if n != 1 and (n - 2) % 3 == 0]
    assert audit_viewer.search(owner, cursor=1).entries == []
    assert len(audit_viewer.search(owner, limit=0).entries) == 1  # at least one row a page
    monkeypatch.setattr(audit_viewer, "PAGE_LIMIT_MAX", 20)
    assert len(audit_viewer.search(owner, limit=10_000).entries) == 20  # and at most PAGE_LIMIT_MAX
    with pytest.raises(ValidationFailed, match="The page size must be a number"):
        audit_viewer.search(owner, limit="50")  # type: ignore[arg-type]
    for bad in (0, -5, "10", 2.5, True):
        with pytest.raises(ValidationFailed, match="That page of the audit log does not exist"):
            audit_viewer.search(owner, cursor=bad)  # type: ignore[arg-type]


def test_reading_is_not_logged(seeded: dict[str, Actor]) -> None:
    owner = seeded["owner"]
    before = _everything(owner)
    audit_viewer.search(owner, audit_viewer.AuditFilters(action="team"))
    audit_viewer.get_entry(owner, 3)
    audit_viewer.known_actions(owner)
    assert _ids(_everything(owner)) == _ids(before)


# --- one row in full ---------------------------------------------------------------------------


def test_a_row_opens_in_full_with_its_hashes(any_store: Instance, seeded: dict[str, Actor]) -> None:
    owner = seeded["owner"]
    row = audit_viewer.get_entry(owner, 2)
    assert (row.id, row.action, row.actor_email, row.source, row.client_address, row.user_agent) == (
        2,
        "team.invite",
        "owner@example.com",
        "dashboard",
        "127.0.0.1",
        "pytest",
    )
    assert row.details == {"email": "ann@example.com", "role": "billing_clerk"}
    assert row.prev_hash == audit_viewer.get_entry(owner, 1).hash and len(row.hash) == 64
    assert row.sealed

    for missing in (999, 0, -1, "2", None):
        with pytest.raises(NotFound):
            audit_viewer.get_entry(owner, missing)  # type: ignore[arg-type]

    _drop_triggers(any_store.kind)
    _sql("UPDATE audit_log SET details = :d WHERE id = 2", d='{"email": "someone@else.com"}')
    assert not audit_viewer.get_entry(owner, 2).sealed


def test_known_actions_lists_what_the_log_holds(seeded: dict[str, Actor]) -> None:
    assert audit_viewer.known_actions(seeded["owner"]) == [
        "charges.refund",
        "organization.signup",
        "refunds.request",
        "sync.run",
        "team.change_role",
        "team.invite",
        "team.invite_revoke",
    ]


# --- export -----------------------------------------------------------------------------------


def _parse(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_the_export_holds_exactly_the_filtered_rows(seeded: dict[str, Actor]) -> None:
    owner = seeded["owner"]
    filters = audit_viewer.AuditFilters(action="charges.refund", date_to=DAY3)
    with clock.freeze(datetime(2025, 3, 4, 10, 5, 6, tzinfo=UTC)):
        done = audit_viewer.export(owner, filters)
    assert done.filename == "billy-audit-log-20250304-100506.csv"
    assert (done.rows, done.truncated, done.describe()) == (3, False, "Exported 3 rows.")
    assert done.text.startswith(",".join(audit_viewer.EXPORT_COLUMNS) + "\r\n")
    rows = _parse(done.text)
    expected = _everything(owner, action="charges.refund", date_to=DAY3)
    assert [int(r["id"]) for r in rows] == _ids(expected) == [7, 5, 3]
    for line, entry in zip(rows, expected, strict=True):
        assert line["actor_email"] == entry.actor_email and line["actor_role"] == entry.actor_role
        assert line["source"] == entry.source and line["outcome"] == entry.outcome
        assert line["action"] == entry.action and line["target_ids"] == " ".join(entry.target_ids)
        assert line["amount_minor_units"] == str(entry.amount) and line["currency"] == entry.currency
        assert line["error"] == (entry.error or "")
        assert line["hash"] == entry.hash and line["prev_hash"] == entry.prev_hash
        assert datetime.fromisoformat(line["at_utc"]) == entry.at
    assert rows[0]["user_agent"] == "billy-agent" and rows[1]["client_address"] == "10.0.0.2"
    assert audit_viewer.export_csv(owner, filters) == done.text

    everything = _parse(audit_viewer.export_csv(owner))
    assert len(everything) == 11  # the nine rows and the two exports before this one
    signup = everything[-1]
    assert signup["action"] == "organization.signup" and signup["actor_id"] == str(owner.user_id)
    assert signup["amount_minor_units"] == "" and signup["details"].startswith("{")

    # The export itself is in the log: who, which filters, how many rows.
    newest = audit_viewer.search(owner, limit=1).entries[0]
    assert (newest.action, newest.outcome, newest.actor_email) == ("audit.export", "ok", owner.email)
    assert newest.details == {"filters": {}, "rows": 11, "truncated": False}
    first_export = audit_viewer.get_entry(owner, 10)
    assert first_export.details["filters"] == {"action": "charges.refund", "date_to": DAY3.isoformat()}


def test_an_export_with_nothing_matching_is_a_header(seeded: dict[str, Actor]) -> None:
    done = audit_viewer.export(seeded["owner"], audit_viewer.AuditFilters(person="nobody@example.com"))
    assert done.rows == 0 and done.text == ",".join(audit_viewer.EXPORT_COLUMNS) + "\r\n"
    assert done.describe() == "Exported 0 rows."


def test_a_big_export_stops_at_the_limit_and_says_so(seeded: dict[str, Actor], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(audit_viewer, "EXPORT_LIMIT", 4)
    done = audit_viewer.export(seeded["owner"])
    assert (done.rows, done.truncated) == (4, True)
    assert [int(r["id"]) for r in _parse(done.text)] == [9, 8, 7, 6]  # the newest
    assert done.describe() == (
        "Exported the newest 4 matching rows: an export holds at most 4. Narrow the dates to export the older ones."
    )
    assert audit_viewer.search(seeded["owner"], limit=1).entries[0].details["truncated"] is True


def test_cells_a_spreadsheet_would_run_are_exported_as_text(any_store_owner: Actor) -> None:
    sly = Actor(None, "=cmd@example.com", "read_only", Source.API, "+1", '=HYPERLINK("http://evil.example")')
    _write(sly, "customers.search", "denied", targets=["-2+3"], details={"q": "@SUM(1)"})
    row = _parse(audit_viewer.export_csv(any_store_owner))[0]
    assert row["actor_email"] == "'=cmd@example.com"
    assert row["user_agent"] == '\'=HYPERLINK("http://evil.example")'
    assert row["client_address"] == "'+1" and row["target_ids"] == "'-2+3"
    assert row["details"] == '{"q": "@SUM(1)"}'  # JSON starts with "{": nothing to run


def test_a_failed_export_is_logged_as_failed(any_store_owner: Actor) -> None:
    with pytest.raises(ValidationFailed):
        audit_viewer.export(any_store_owner, audit_viewer.AuditFilters(outcome="sideways"))
    newest = audit_viewer.search(any_store_owner, limit=1).entries[0]
    assert (newest.action, newest.outcome) == ("audit.export", "failed")
    assert newest.error == "The outcome is one of ok, denied, failed."


# --- only the Owner ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", ["billing_clerk", "billing_manager", "read_only"])
def test_everyone_but_the_owner_is_refused_and_the_refusal_is_logged(seeded: dict[str, Actor], role: str) -> None:
    owner = seeded["owner"]
    other = member_actor(role, f"{role}@example.com")
    before = len(_everything(owner))
    attempts = [
        lambda: audit_viewer.search(other),
        lambda: audit_viewer.search(other, audit_viewer.AuditFilters(action="team")),
        lambda: audit_viewer.get_entry(other, 2),
        lambda: audit_viewer.known_actions(other),
        lambda: audit_viewer.export(other),
        lambda: audit_viewer.export_csv(other, audit_viewer.AuditFilters(person="ann")),
        lambda: audit_viewer.verify_for(other),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied, match="cannot open the audit log: only the Owner can"):
            attempt()

    logged = _everything(owner, person=other.email)
    assert len(_everything(owner)) == before + len(attempts)
    assert [(r.action, r.outcome) for r in reversed(logged)] == [
        ("audit.view", "denied"),
        ("audit.view", "denied"),
        ("audit.view", "denied"),
        ("audit.view", "denied"),
        ("audit.export", "denied"),
        ("audit.export", "denied"),
        ("audit.verify", "denied"),
    ]
    assert all(r.actor_role == role and "only the Owner can" in (r.error or "") for r in logged)
    assert logged[-3].target_ids == ["2"]  # which row they tried to open


def test_a_role_this_instance_does_not_know_is_refused(any_store_owner: Actor) -> None:
    stranger = Actor(99, "x@example.com", "superuser", Source.API)
    with pytest.raises(PermissionDenied, match="Your role is not known"):
        audit_viewer.search(stranger)
    newest = audit_viewer.search(any_store_owner, limit=1).entries[0]
    assert (newest.actor_email, newest.action, newest.outcome) == ("x@example.com", "audit.view", "denied")


# --- verify -----------------------------------------------------------------------------------


def _sql(statement: str, **params: object) -> None:
    with db.get_engine().begin() as conn:
        conn.execute(sa.text(statement), params)


def _drop_triggers(kind: str) -> None:
    """What an intruder with database access does first (as in test_audit_log)."""
    if kind == "sqlite":
        for name in ("audit_log_no_update", "audit_log_no_delete", "audit_log_no_replace"):
            _sql(f"DROP TRIGGER {name}")
    else:
        for name in ("audit_log_no_update_delete", "audit_log_no_truncate"):
            _sql(f"DROP TRIGGER {name} ON audit_log")


def test_verify_for_reports_an_intact_log_then_names_the_altered_row(
    any_store: Instance, seeded: dict[str, Actor]
) -> None:
    owner = seeded["owner"]
    result = audit_viewer.verify_for(owner)
    assert (result.ok, result.rows_checked, result.first_bad_id) == (True, 9, None)
    assert result.describe().startswith("Audit log intact: 9 rows checked, one unbroken chain.")
    logged = audit_viewer.search(owner, limit=1).entries[0]
    assert (logged.action, logged.outcome, logged.id) == ("audit.verify", "ok", 10)
    assert logged.details == {"intact": True, "rows_checked": 9}
    assert audit_viewer.verify_for(owner).rows_checked == 10  # its own row is part of the chain

    _drop_triggers(any_store.kind)
    _sql("UPDATE audit_log SET amount = 5 WHERE id = 3")  # ann's refused $500 becomes 5 cents
    result = audit_viewer.verify_for(owner)
    assert (result.ok, result.first_bad_id, result.problem) == (False, 3, "row 3 was altered")
    assert result.describe() == "Audit log BROKEN at row 3: row 3 was altered. (3 rows checked up to there.)"
    logged = audit_viewer.search(owner, limit=1).entries[0]
    assert (logged.action, logged.outcome) == ("audit.verify", "ok")  # the check ran; what it found is in details
    assert logged.details == {"intact": False, "rows_checked": 3, "first_bad_id": 3, "problem": "row 3 was altered"}


def test_verify_for_names_rows_cut_off_the_end(any_store: Instance, seeded: dict[str, Actor]) -> None:
    owner = seeded["owner"]
    _drop_triggers(any_store.kind)
    _sql("DELETE FROM audit_log WHERE id >= 8")
    result = audit_viewer.verify_for(owner)
    assert (result.ok, result.first_bad_id) == (False, 8)
    assert "rows after 7 were removed" in result.describe()
