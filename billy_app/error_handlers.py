"""What Reflex calls when a browser reports an error or an event handler raises.

Reflex's defaults log the client's text raw and one traceback per failure, so anyone
(no session needed) could forge log lines or fill the log. These log escaped, truncated
text under a per-process budget, and show the user an error id instead of the exception.
"""

# No `from __future__ import annotations`: Reflex validates these handlers' annotations
# by evaluating them, so they stay real objects.

import logging
import secrets

import reflex as rx
from reflex_base.event import EventSpec

from services.errors import BillyError
from services.log_budget import LogBudget
from services.logging_setup import client_text
from services.outages import store_outage

log = logging.getLogger("billy.errors")

FRONTEND_REPORTS_PER_WINDOW = 10
BACKEND_TRACEBACKS_PER_WINDOW = 20
FRONTEND_TEXT_LIMIT = 300

USER_MESSAGE = (
    "Something went wrong on our side (error id {error_id}). "
    "Please try again; if it keeps happening, tell your Owner this id."
)


frontend_budget = LogBudget(
    "frontend",
    FRONTEND_REPORTS_PER_WINDOW,
    "{count} browser error reports suppressed in the last minute{detail}",
    logger=log,
)
backend_budget = LogBudget(
    "backend",
    BACKEND_TRACEBACKS_PER_WINDOW,
    "{count} unexpected errors in the last minute were not logged, to keep a flood out of the log{detail}",
    logger=log,
)


def frontend_exception_handler(exception: Exception) -> None:
    """A browser's error report: anyone can send one, so it is client text, escaped, cut and budgeted."""
    if frontend_budget.allow():
        log.warning("Browser error report: %s", client_text(str(exception), FRONTEND_TEXT_LIMIT))


def log_unexpected(exception: BaseException, where: str = "an event handler") -> str:
    """Log an unexpected error with its traceback under a new id (within the budget); the id is
    what the person sees and can quote."""
    error_id = secrets.token_hex(4)
    if backend_budget.allow(type(exception).__name__):
        log.error("Unexpected error in %s (error id %s)", where, error_id, exc_info=exception)
    return error_id


def explained(exception: BaseException, where: str = "an event handler") -> BillyError:
    """What to tell the person about an error that is not a Billy error: the store's outage in plain
    words (one log line, no traceback: it is not a bug), else the error id of the logged traceback."""
    outage = store_outage(exception)
    if outage is not None:
        log.warning("The store did not answer in %s (%s)", where, type(exception).__name__)
        return outage
    return BillyError(USER_MESSAGE.format(error_id=log_unexpected(exception, where)), code="unexpected")


def backend_exception_handler(exception: Exception) -> EventSpec:
    """An event handler raised: log the traceback under an id the user can quote, never show the exception."""
    return rx.toast(
        explained(exception).message,
        level="error",
        fallback_to_alert=True,
        position="top-center",
        id="backend_error",
    )
