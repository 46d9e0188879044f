"""Refund requests: a refund over the requester's cap waits for someone whose cap covers it."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from billy_app.api.v1.calls import CurrentActor, WriteRequest
from billy_app.api.v1.errors import READ_ERRORS, WRITE_ERRORS
from billy_app.api.v1.models import Decision, Decline, Page, RefundRequestCreate, page
from services import refund_requests
from services.refund_requests import RequestView

router = APIRouter(prefix="/refund-requests", tags=["refund requests"])
RequestPath = Annotated[int, Path(ge=1, le=2**63 - 1, description="The refund request's number.")]
LIMIT_MAX = 100


@router.get(
    "",
    response_model=Page[RequestView],
    responses=READ_ERRORS,
    summary="List refund requests",
    description=(
        "Approvers see everyone's requests, others their own (`mine=true`: only one's own, every status). "
        "Pending requests come oldest first, the rest newest first. This list is not paged further: "
        "`has_more` says when more than `limit` match (narrow it by status)."
    ),
)
def list_requests(
    actor: CurrentActor,
    status: Literal["pending", "approved", "declined", "failed", "withdrawn", "all"] = "pending",
    mine: bool = False,
    limit: Annotated[int, Query(ge=1, le=LIMIT_MAX)] = 50,
) -> Page[RequestView]:
    if mine:
        every = refund_requests.my_requests(actor, refund_requests.QUEUE_LIMIT if status != "all" else limit + 1)
        found = [r for r in every if status in ("all", r.status)]
    else:
        found = refund_requests.list_queue(actor, status, limit + 1)
    more = len(found) > limit
    return page(found[:limit], None).model_copy(update={"has_more": more})


@router.get("/{request_id}", response_model=RequestView, responses=READ_ERRORS, summary="Get a refund request")
def get_request(actor: CurrentActor, request_id: RequestPath) -> RequestView:
    return refund_requests.get_request(actor, request_id)


@router.post(
    "",
    status_code=201,
    response_model=RequestView,
    responses=WRITE_ERRORS,
    summary="Ask for an over-cap refund to be approved",
)
def create_request(write: WriteRequest, body: RefundRequestCreate) -> JSONResponse:
    return write.run(
        body,
        lambda _key: refund_requests.submit_request(write.actor, body.charge_id, body.amount, body.reason, body.note),
        status_code=201,
    )


@router.post(
    "/{request_id}/approve",
    response_model=RequestView,
    responses=WRITE_ERRORS,
    summary="Approve a request (the refund is made in the approver's name)",
)
def approve(write: WriteRequest, request_id: RequestPath, body: Decision) -> JSONResponse:
    return write.run(body, lambda _key: refund_requests.approve(write.actor, request_id, body.note))


@router.post("/{request_id}/decline", response_model=RequestView, responses=WRITE_ERRORS, summary="Decline a request")
def decline(write: WriteRequest, request_id: RequestPath, body: Decline) -> JSONResponse:
    return write.run(body, lambda _key: refund_requests.decline(write.actor, request_id, body.note))


@router.post(
    "/{request_id}/withdraw", response_model=RequestView, responses=WRITE_ERRORS, summary="Withdraw one's own request"
)
def withdraw(write: WriteRequest, request_id: RequestPath) -> JSONResponse:
    return write.run(None, lambda _key: refund_requests.withdraw(write.actor, request_id))
