"""Settings → Audit log: the Owner searches, opens, exports and verifies the audit log.

Only the Owner may; `services.audit` decides that on every call, whatever this page shows,
and logs a refused attempt. Every handler argument is untrusted: a row id is parsed here and
looked up by the service, the filters are checked there, and the time zone the browser
reports is used only if this machine knows it. The filters a page, an export or a verify
works on are the ones last applied (kept server-side), not whatever is typed in the bar.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
from enum import StrEnum
from typing import ClassVar

import reflex as rx
from reflex_base.event import EventSpec

from billy_app.state.session import SessionState, guarded
from services import audit_viewer, timezones
from services.audit_viewer import AuditFilters, AuditRecord
from services.errors import BillyError, PermissionDenied
from services.permissions import ROLES

PAGE_SIZE = 50
SOURCE_CHOICES = [
    ("any", "Any source"),
    ("dashboard", "Dashboard"),
    ("api", "API"),
    ("agent", "Agent"),
    ("system", "System"),
]
OUTCOME_CHOICES = [("any", "Any outcome"), ("ok", "OK"), ("denied", "Denied"), ("failed", "Failed")]
SOURCE_LABELS = dict(SOURCE_CHOICES[1:])
OUTCOME_LABELS = dict(OUTCOME_CHOICES[1:])
# The browser's IANA zone; the page shows times in it and reads picked dates in it.
ZONE_SCRIPT = "Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'"
TEXT_FIELDS = {"person": 254, "action": 60, "from": 10, "to": 10}


def ids_from_query(text: object) -> tuple[int, ...]:
    """`?ids=12,13`: the rows a spend alert links to. Anything that is not a row number is left out."""
    if not isinstance(text, str):
        return ()
    found = [int(part) for part in text.split(",")[: audit_viewer.IDS_MAX] if part.strip().isdigit()]
    return tuple(dict.fromkeys(i for i in found if 0 < i < 2**62))


def _role_label(role: str) -> str:
    return ROLES[role].label if role in ROLES else role


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditTableRow:
    """One row of the audit table, as the page shows it."""

    id: str = ""
    at: str = ""  # ISO 8601, shown in the viewer's zone
    who: str = ""
    role: str = ""
    action: str = ""
    targets: str = ""
    amount: str = ""
    source: str = ""
    outcome: str = ""  # the outcome key (colours the badge)
    outcome_label: str = ""
    error: str = ""


@dataclasses.dataclass(frozen=True, kw_only=True)
class AuditDetail(AuditTableRow):
    """One audit row in full, for the detail dialog (all blank while none is open)."""

    at_utc: str = ""
    actor_id: str = ""
    client_address: str = ""
    user_agent: str = ""
    details: str = ""  # the row's details as indented JSON, or ""
    prev_hash: str = ""
    hash: str = ""
    sealed: bool = False  # the row's hash matches its content


def acted_on(record: AuditRecord) -> str:
    """What a row acted on, as people read it: its targets, and what its details name when the
    targets alone do not (an invite's address and role, an agent's client, an API call)."""
    found = list(record.target_ids)
    details = record.details or {}
    if details.get("email"):
        role = f" as {_role_label(str(details['role']))}" if details.get("role") else ""
        found.append(f"{details['email']}{role}")
    if details.get("client"):
        found.append(f"agent “{details['client']}”")
    if details.get("call"):
        found.append(str(details["call"]))
    if details.get("label") and record.action.startswith("roles."):
        found.append(f"role “{details['label']}”")
    return ", ".join(str(f) for f in found)


def entry_row(record: AuditRecord) -> AuditTableRow:
    return AuditTableRow(
        id=str(record.id),
        at=record.at.isoformat(),
        who=record.actor_email or "—",
        role=record.actor_role_label or _role_label(record.actor_role),
        action=record.action,
        targets=acted_on(record),
        amount=record.amount_label,
        source=SOURCE_LABELS.get(record.source, record.source),
        outcome=record.outcome,
        outcome_label=OUTCOME_LABELS.get(record.outcome, record.outcome),
        error=record.error or "",
    )


def entry_detail(record: AuditRecord) -> AuditDetail:
    details = json.dumps(record.details, indent=2, sort_keys=True, ensure_ascii=False) if record.details else ""
    return AuditDetail(
        **{
            **dataclasses.asdict(entry_row(record)),
            "targets": acted_on(record) or "—",
            "amount": record.amount_label or "—",
        },
        at_utc=record.at.strftime("%Y-%m-%d %H:%M:%S.%f UTC"),
        actor_id="" if record.actor_id is None else str(record.actor_id),
        client_address=record.client_address or "—",
        user_agent=record.user_agent or "—",
        details=details,
        prev_hash=record.prev_hash,
        hash=record.hash,
        sealed=record.sealed,
    )


class VerifyOutcome(StrEnum):
    """What the last integrity check found (the result callout's `data-kind`)."""

    NOT_RUN = ""
    OK = "ok"
    BAD = "bad"


def _choice(value: object, choices: list[tuple[str, str]]) -> str | None:
    return value if isinstance(value, str) and value in dict(choices) else None


class AuditViewerState(SessionState):
    problem_var: ClassVar[str] = "message"

    rows: list[AuditTableRow] = []
    refused: bool = False
    error: str = ""  # why this person may not see the log
    problem: str = ""  # why the filters were not applied (the table keeps the last good ones)
    message: str = ""
    message_kind: str = "info"
    # The filter bar as typed and picked.
    filter_person: str = ""
    filter_action: str = ""
    filter_source: str = "any"
    filter_outcome: str = "any"
    filter_from: str = ""
    filter_to: str = ""
    zone: str = "UTC"
    actions: list[str] = []  # suggestions for the action filter
    page_number: int = 1
    has_older: bool = False
    detail_open: bool = False
    detail: AuditDetail = AuditDetail()
    verify_kind: VerifyOutcome = VerifyOutcome.NOT_RUN
    verify_message: str = ""
    verifying: bool = False
    exporting: bool = False
    showing_ids: str = ""  # "#12, #13" when the page shows only the rows a link named
    # Server-side only: the filters in force and the cursor each page was read with (0: the first).
    _applied: dict[str, str] = {}
    _cursors: list[int] = [0]
    _next_cursor: int = 0

    # --- reading ------------------------------------------------------------------------------

    def _filters(self, applied: dict[str, str] | None = None) -> AuditFilters:
        chosen = self._applied if applied is None else applied
        date_from, date_to = timezones.day_range(chosen.get("from", ""), chosen.get("to", ""), self.zone)
        return AuditFilters(
            person=chosen.get("person", ""),
            action=chosen.get("action", ""),
            source=chosen.get("source", ""),
            outcome=chosen.get("outcome", ""),
            date_from=date_from,
            date_to=date_to,
            ids=ids_from_query(chosen.get("ids", "")),
        )

    async def _read(self, cursor: int, filters: AuditFilters | None = None) -> None:
        page = await self._call(audit_viewer.search, filters or self._filters(), cursor or None, PAGE_SIZE)
        self.rows = [entry_row(entry) for entry in page.entries]
        self._next_cursor = page.next_cursor or 0
        self.has_older = page.next_cursor is not None

    def _refuse(self, message: str) -> None:
        """Refused: nothing of the log stays on the page."""
        self.refused, self.error = True, message
        self.rows, self.actions, self.detail, self.detail_open = [], [], AuditDetail(), False
        self.has_older, self.verify_kind, self.verify_message = False, VerifyOutcome.NOT_RUN, ""

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """A refusal empties the page; other problems show above the table."""
        if isinstance(problem, PermissionDenied):
            self._refuse(problem.message)
            return None
        return super()._show_problem(problem)

    @rx.event
    @guarded
    async def load(self):
        self.refused, self.error, self.problem, self.message = False, "", "", ""
        (
            self.filter_person,
            self.filter_action,
            self.filter_source,
            self.filter_outcome,
            self.filter_from,
            self.filter_to,
        ) = (
            "",
            "",
            "any",
            "any",
            "",
            "",
        )
        self.detail_open, self.detail, self.verify_kind, self.verify_message = (
            False,
            AuditDetail(),
            VerifyOutcome.NOT_RUN,
            "",
        )
        self.verifying = self.exporting = False
        ids = ids_from_query(self.router.url.query_parameters.get("ids"))
        self.showing_ids = ", ".join(f"#{i}" for i in ids)
        self._applied, self._cursors, self.page_number = {"ids": ",".join(map(str, ids))} if ids else {}, [0], 1
        try:
            await self._read(0)
            self.actions = await self._call(audit_viewer.known_actions)
        except BillyError as exc:
            self._show_problem(exc)
        if self.refused:
            return None
        return rx.call_script(ZONE_SCRIPT, callback=AuditViewerState.set_zone)

    @rx.event
    def set_zone(self, zone: str):
        self.zone = timezones.viewer_zone(zone)

    # --- the filter bar (values are only kept here until applied; the service checks them) ---

    @rx.event
    def set_person(self, value: str):
        self.filter_person = str(value)[: TEXT_FIELDS["person"]]

    @rx.event
    def set_action(self, value: str):
        self.filter_action = str(value)[: TEXT_FIELDS["action"]]

    @rx.event
    def set_from(self, value: str):
        self.filter_from = str(value)[: TEXT_FIELDS["from"]]

    @rx.event
    def set_to(self, value: str):
        self.filter_to = str(value)[: TEXT_FIELDS["to"]]

    @rx.event
    def set_source(self, value: str):
        self.filter_source = _choice(value, SOURCE_CHOICES) or "any"

    @rx.event
    def set_outcome(self, value: str):
        self.filter_outcome = _choice(value, OUTCOME_CHOICES) or "any"

    @rx.event
    @guarded
    async def apply(self, form_data: dict):
        """Apply the filter bar: read the first page of what matches, or say what is wrong."""
        data = form_data if isinstance(form_data, dict) else {}
        typed: dict[str, str] = {}
        for name, limit in TEXT_FIELDS.items():
            value = data.get(name, getattr(self, f"filter_{name}"))
            typed[name] = value.strip()[: limit + 1] if isinstance(value, str) else ""
        source = _choice(data.get("source", self.filter_source), SOURCE_CHOICES)
        outcome = _choice(data.get("outcome", self.filter_outcome), OUTCOME_CHOICES)
        self.filter_person, self.filter_action, self.filter_from, self.filter_to = (
            typed["person"],
            typed["action"],
            typed["from"],
            typed["to"],
        )
        self.problem, self.message = "", ""
        if source is None or outcome is None:
            self.problem = "Choose a source and an outcome from the lists."
            return None
        self.filter_source, self.filter_outcome = source, outcome
        applied = {**typed, "source": "" if source == "any" else source, "outcome": "" if outcome == "any" else outcome}
        try:
            await self._read(0, self._filters(applied))
        except PermissionDenied:
            raise  # not a problem with the filters: the page is refused (`_show_problem`)
        except BillyError as exc:
            self.problem = exc.message  # the table keeps showing the filters in force
            return None
        self._applied, self._cursors, self.page_number = applied, [0], 1
        self.showing_ids = ""
        return None

    @rx.event
    @guarded
    async def clear(self):
        self.filter_person, self.filter_action, self.filter_from, self.filter_to = "", "", "", ""
        self.filter_source, self.filter_outcome = "any", "any"
        self.problem, self.message, self.showing_ids = "", "", ""
        self._applied, self._cursors, self.page_number = {}, [0], 1
        await self._read(0)

    # --- pages ----------------------------------------------------------------------------------

    @rx.event
    @guarded
    async def older(self):
        if not self.has_older or not self._next_cursor:
            return
        cursor = self._next_cursor
        await self._read(cursor)
        self._cursors = [*self._cursors, cursor]
        self.page_number = len(self._cursors)

    @rx.event
    @guarded
    async def newer(self):
        if len(self._cursors) < 2:
            return
        cursors = self._cursors[:-1]
        await self._read(cursors[-1])
        self._cursors, self.page_number = cursors, len(cursors)

    @rx.event
    @guarded
    async def refresh(self):
        """Back to the newest rows under the filters in force."""
        self.message = ""
        await self._read(0)
        self._cursors, self.page_number = [0], 1

    # --- one row in full ------------------------------------------------------------------------

    @rx.event
    @guarded
    async def open_detail(self, entry_id: str):
        text = str(entry_id)[:20]
        if not text.isdigit():
            self.message, self.message_kind = "That audit row does not exist.", "error"
            return
        record = await self._call(audit_viewer.get_entry, int(text))
        self.detail, self.detail_open = entry_detail(record), True

    @rx.event
    def set_detail_open(self, value: bool):
        if value is not True:
            self.detail_open, self.detail = False, AuditDetail()

    # --- export and verify (both are logged by the service) ------------------------------------

    @rx.event
    @guarded
    async def export(self):
        """Download the rows that match the filters in force, as CSV."""
        if self.exporting:
            return
        self.exporting, self.message = True, ""
        yield
        try:
            done = await self._call(audit_viewer.export, self._filters())
        finally:
            self.exporting = False
        self.message, self.message_kind = done.describe(), "error" if done.truncated else "info"
        yield rx.download(data=done.text, filename=done.filename, mime_type="text/csv")
        await self._quiet_reread()  # the export's own row, if the newest rows are on screen

    @rx.event
    @guarded
    async def verify(self):
        """Walk the hash chain and say whether it holds, or where it breaks."""
        if self.verifying:
            return
        self.verifying, self.verify_kind, self.verify_message = True, VerifyOutcome.NOT_RUN, ""
        yield
        try:
            result = await self._call(audit_viewer.verify_for)
        except PermissionDenied:
            raise  # the page is refused (`_show_problem`)
        except BillyError as exc:
            self.verify_kind, self.verify_message = VerifyOutcome.BAD, exc.message
            return
        finally:
            self.verifying = False
        self.verify_kind = VerifyOutcome.OK if result.ok else VerifyOutcome.BAD
        self.verify_message = result.describe()
        await self._quiet_reread()

    async def _quiet_reread(self) -> None:
        """Show the row an export or verify just added, when the first page is on screen."""
        if self.page_number != 1:
            return
        with contextlib.suppress(BillyError):  # the outcome is already on screen
            await self._read(0)
