"""The Owner's resources: the team and the audit log (every other role is refused, 403)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime

from billy_app.api.v1.calls import CurrentActor
from billy_app.api.v1.errors import READ_ERRORS
from billy_app.api.v1.models import PLAIN_TEXT, Page, page
from services import audit_viewer, team
from services.audit import VerifyResult
from services.audit_viewer import AuditFilters, AuditRecord
from services.team import TeamView

router = APIRouter(tags=["owner"])


@router.get("/team", response_model=TeamView, responses=READ_ERRORS, summary="The team: members and invites")
def list_team(actor: CurrentActor) -> TeamView:
    return team.list_team(actor)


@router.get(
    "/audit",
    response_model=Page[AuditRecord],
    responses=READ_ERRORS,
    summary="Search the audit log, newest first",
)
def search_audit(
    actor: CurrentActor,
    person: Annotated[
        str, Query(max_length=254, pattern=PLAIN_TEXT, description="An email, or its beginning (or ending in *).")
    ] = "",
    action: Annotated[
        str,
        Query(
            max_length=60, pattern=PLAIN_TEXT, description="An action, a family (`team`) or a beginning (`team.inv*`)."
        ),
    ] = "",
    source: Literal["dashboard", "api", "agent", "system"] | None = None,
    outcome: Literal["ok", "denied", "failed"] | None = None,
    date_from: Annotated[AwareDatetime | None, Query()] = None,
    date_to: Annotated[AwareDatetime | None, Query()] = None,
    cursor: Annotated[
        str | None, Query(pattern=r"^[1-9][0-9]{0,17}$", description="`next_cursor` of the page before.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=audit_viewer.PAGE_LIMIT_MAX)] = 50,
) -> Page[AuditRecord]:
    filters = AuditFilters(person, action, source or "", outcome or "", date_from, date_to)
    found = audit_viewer.search(actor, filters, int(cursor) if cursor else None, limit)
    return page(found.entries, found.next_cursor)


@router.get("/audit/{entry_id}", response_model=AuditRecord, responses=READ_ERRORS, summary="One audit row in full")
def get_audit_entry(actor: CurrentActor, entry_id: Annotated[int, Path(ge=1, le=2**63 - 1)]) -> AuditRecord:
    return audit_viewer.get_entry(actor, entry_id)


@router.post(
    "/audit/verify",
    response_model=VerifyResult,
    responses=READ_ERRORS,
    summary="Walk the hash chain and name the first broken row",
)
def verify_audit(actor: CurrentActor) -> VerifyResult:
    return audit_viewer.verify_for(actor)
