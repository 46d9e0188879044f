"""Charges (list with filters, one in full) and refunds (preview, create)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from billy_app.api.v1.calls import CurrentActor, WriteRequest
from billy_app.api.v1.errors import READ_ERRORS, WRITE_ERRORS
from billy_app.api.v1.models import CURSOR_MAX, ID_PATTERNS, PLAIN_TEXT, Page, RefundCreate, RefundPreviewRequest, page
from services import billing, charge_detail, reports
from services.billing import RefundPreview, RefundResult
from services.charge_detail import ChargeDetail
from services.reports import ChargeFilters, ChargeListRow

router = APIRouter(tags=["charges and refunds"])
ChargePath = Annotated[str, Path(pattern=ID_PATTERNS["charge"], description="A Stripe charge id (ch_… or py_…).")]
Sort = Literal["newest", "oldest", "amount_desc", "amount_asc"]
Cursor = Annotated[str | None, Query(max_length=CURSOR_MAX, description="`next_cursor` of the page before.")]
Limit = Annotated[int, Query(ge=1, le=reports.MAX_PAGE_SIZE)]


def charge_filters(
    status: Annotated[Literal["succeeded", "failed", "pending", "refunded"] | None, Query()] = None,
    reason: Annotated[
        Literal["expired_card", "insufficient_funds", "fraud", "other"] | None,
        Query(description="Failed charges of one failure group."),
    ] = None,
    date_from: Annotated[AwareDatetime | None, Query(description="Created at or after (with a time zone).")] = None,
    date_to: Annotated[AwareDatetime | None, Query(description="Created before (with a time zone).")] = None,
    amount_min: Annotated[int | None, Query(ge=0, le=10**15, description="Minor units.")] = None,
    amount_max: Annotated[int | None, Query(ge=0, le=10**15, description="Minor units.")] = None,
    currency: Annotated[str | None, Query(pattern=r"^[A-Za-z]{3}$")] = None,
    customer: Annotated[
        str | None, Query(max_length=200, pattern=PLAIN_TEXT, description="cus_… or the start of an email or name.")
    ] = None,
) -> ChargeFilters:
    return ChargeFilters(
        status=status or "",
        reason=reason or "",
        date_from=date_from,
        date_to=date_to,
        amount_min=amount_min,
        amount_max=amount_max,
        currency=currency or "",
        customer=customer or "",
    )


ChargeQuery = Annotated[ChargeFilters, Depends(charge_filters)]


@router.get("/charges", response_model=Page[ChargeListRow], responses=READ_ERRORS, summary="List charges")
def list_charges(
    actor: CurrentActor, filters: ChargeQuery, sort: Sort = "newest", cursor: Cursor = None, limit: Limit = 25
) -> Page[ChargeListRow]:
    found = reports.search_charges(actor, filters, sort, cursor, limit)
    return page(found.items, found.next_cursor, found.total or reports.count_charges(actor, filters))


@router.get("/charges/{charge_id}", response_model=ChargeDetail, responses=READ_ERRORS, summary="Get a charge")
def get_charge(actor: CurrentActor, charge_id: ChargePath) -> ChargeDetail:
    return charge_detail.charge_detail(actor, charge_id)


@router.post(
    "/refunds/preview",
    response_model=RefundPreview,
    responses=READ_ERRORS,
    summary="Preview a refund (nothing changes)",
)
def preview_refund(actor: CurrentActor, body: RefundPreviewRequest) -> RefundPreview:
    return billing.preview_refund(actor, body.charge_id, body.amount)


@router.post(
    "/refunds",
    status_code=201,
    response_model=RefundResult,
    responses=WRITE_ERRORS,
    summary="Refund a charge",
    description=(
        "Refunds within the caller's cap (the role's, or the agent token's lower one) on everything refunded "
        "on the charge; over it, 403 `refund_cap_exceeded` names the cap (ask for approval with "
        "POST /refund-requests instead)."
    ),
)
def create_refund(write: WriteRequest, body: RefundCreate) -> JSONResponse:
    return write.run(
        body,
        lambda key: billing.issue_refund(
            write.actor,
            body.charge_id,
            body.amount,
            body.reason,
            key,
            note=body.note,
            email_customer=body.email_customer,
        ),
        status_code=201,
    )


RefundPath = Annotated[str, Path(pattern=r"^(re|pyr)_[A-Za-z0-9_]{1,250}$", description="The refund (re_…).")]


@router.post(
    "/refunds/{refund_id}/confirmation-email",
    response_model=RefundResult,
    responses=WRITE_ERRORS,
    summary="Email the customer a refund confirmation",
    description="For a refund already made (when the confirmation was not sent with it). One email per call.",
)
def email_refund_confirmation(write: WriteRequest, refund_id: RefundPath) -> JSONResponse:
    return write.run(None, lambda _key: billing.send_refund_confirmation(write.actor, refund_id))
