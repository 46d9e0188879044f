"""Subscriptions: list, one, and the Billing Manager's changes (price or quantity after a
preview, pause and resume collection, cancel and reactivate)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse

from billy_app.api.v1.calls import CurrentActor, WriteRequest
from billy_app.api.v1.errors import READ_ERRORS, WRITE_ERRORS
from billy_app.api.v1.models import (
    CURSOR_MAX,
    ID_PATTERNS,
    PLAIN_TEXT,
    Page,
    SubscriptionCancel,
    SubscriptionChange,
    SubscriptionChangePreview,
    SubscriptionPause,
    page,
)
from services import agent_reads, reports, subscription_changes
from services.agent_reads import SubscriptionDetail
from services.reports import SubscriptionFilters, SubscriptionListRow
from services.subscription_changes import ProrationPreview, SubscriptionOptions, SubscriptionWrite

router = APIRouter(prefix="/subscriptions", tags=["subscriptions"])
SubscriptionPath = Annotated[
    str, Path(pattern=ID_PATTERNS["subscription"], description="A Stripe subscription id (sub_…).")
]
Status = Literal["active", "past_due", "trialing", "unpaid", "paused", "incomplete", "incomplete_expired", "canceled"]


@router.get("", response_model=Page[SubscriptionListRow], responses=READ_ERRORS, summary="List subscriptions")
def list_subscriptions(
    actor: CurrentActor,
    status: Status | None = None,
    customer: Annotated[
        str | None, Query(max_length=200, pattern=PLAIN_TEXT, description="cus_… or the start of an email or name.")
    ] = None,
    sort: Literal["newest", "oldest", "amount_desc", "amount_asc"] = "newest",
    cursor: Annotated[str | None, Query(max_length=CURSOR_MAX)] = None,
    limit: Annotated[int, Query(ge=1, le=reports.MAX_PAGE_SIZE)] = reports.PAGE_SIZE,
) -> Page[SubscriptionListRow]:
    filters = SubscriptionFilters(status=status or "", customer=customer or "")
    found = reports.search_subscriptions(actor, filters, sort, cursor, limit)
    return page(found.items, found.next_cursor, found.total or reports.count_subscriptions(actor, filters))


@router.get(
    "/{subscription_id}", response_model=SubscriptionDetail, responses=READ_ERRORS, summary="Get a subscription"
)
def get_subscription(actor: CurrentActor, subscription_id: SubscriptionPath) -> SubscriptionDetail:
    return agent_reads.subscription_detail(actor, subscription_id)


@router.get(
    "/{subscription_id}/options",
    response_model=SubscriptionOptions,
    responses=READ_ERRORS,
    summary="What can be changed now (Billing Manager, Owner)",
    description="The prices it can move to and, for each change, why it is not possible now (empty when it is).",
)
def options(actor: CurrentActor, subscription_id: SubscriptionPath) -> SubscriptionOptions:
    return subscription_changes.subscription_options(actor, subscription_id)


@router.post(
    "/{subscription_id}/preview-change",
    response_model=ProrationPreview,
    responses=READ_ERRORS,
    summary="Preview a price or quantity change (nothing changes)",
)
def preview_change(
    actor: CurrentActor, subscription_id: SubscriptionPath, body: SubscriptionChangePreview
) -> ProrationPreview:
    return subscription_changes.preview_subscription_change(actor, subscription_id, body.price_id, body.quantity)


@router.post(
    "/{subscription_id}/change",
    response_model=SubscriptionWrite,
    responses=WRITE_ERRORS,
    summary="Change the price or quantity, prorated as previewed",
)
def change(write: WriteRequest, subscription_id: SubscriptionPath, body: SubscriptionChange) -> JSONResponse:
    return write.run(
        body,
        lambda key: subscription_changes.change_subscription(
            write.actor, subscription_id, body.price_id, body.quantity, body.proration_date, key
        ),
    )


@router.post(
    "/{subscription_id}/pause", response_model=SubscriptionWrite, responses=WRITE_ERRORS, summary="Pause collection"
)
def pause(write: WriteRequest, subscription_id: SubscriptionPath, body: SubscriptionPause) -> JSONResponse:
    return write.run(
        body,
        lambda key: subscription_changes.pause_collection(
            write.actor, subscription_id, body.behavior, body.resumes_at, key
        ),
    )


@router.post(
    "/{subscription_id}/resume", response_model=SubscriptionWrite, responses=WRITE_ERRORS, summary="Resume collection"
)
def resume(write: WriteRequest, subscription_id: SubscriptionPath) -> JSONResponse:
    return write.run(None, lambda key: subscription_changes.resume_collection(write.actor, subscription_id, key))


@router.post(
    "/{subscription_id}/cancel",
    response_model=SubscriptionWrite,
    responses=WRITE_ERRORS,
    summary="Cancel at the period end, or now",
)
def cancel(write: WriteRequest, subscription_id: SubscriptionPath, body: SubscriptionCancel) -> JSONResponse:
    return write.run(
        body,
        lambda key: subscription_changes.cancel_subscription(write.actor, subscription_id, body.at_period_end, key),
    )


@router.post(
    "/{subscription_id}/reactivate",
    response_model=SubscriptionWrite,
    responses=WRITE_ERRORS,
    summary="Withdraw a pending cancellation",
)
def reactivate(write: WriteRequest, subscription_id: SubscriptionPath) -> JSONResponse:
    return write.run(None, lambda key: subscription_changes.reactivate_subscription(write.actor, subscription_id, key))
