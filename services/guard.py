"""Refusals at the event gate: forbidden events are audited, malformed ones logged sparingly."""

from __future__ import annotations

import contextlib
import logging

from services import audit
from services.errors import PermissionDenied
from services.log_budget import LogBudget
from services.logging_setup import client_text
from services.permissions import Actor, authorize

log = logging.getLogger(__name__)

FORBIDDEN_EVENT = "events.forbidden"
malformed_budget = LogBudget(
    "malformed-events", 20, "{count} more malformed events were refused without a log line{detail}", logger=log
)


def refuse_event(actor: Actor, handler_name: str) -> None:
    """A member's browser asked for a generic setter no page offers. It goes through the engine
    like any action (no role holds it, so it is refused) and is audited as denied."""
    with contextlib.suppress(PermissionDenied), audit.audited(actor, FORBIDDEN_EVENT) as draft:
        draft.details["handler"] = client_text(handler_name, 80)
        authorize(actor, FORBIDDEN_EVENT)


def note_malformed(handler_name: str, problem: str) -> None:
    """One short line per malformed event, at most 20 a minute, then a count of the rest."""
    if malformed_budget.allow():
        log.warning("Refused a malformed %s event: %s", client_text(handler_name, 80), problem)
