"""F4: no client can forge a log line or fill the log, and an unexpected error shows the user an id, not itself."""

from __future__ import annotations

import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from billy_app import error_handlers
from billy_app.error_handlers import LogBudget, backend_exception_handler, frontend_exception_handler
from services import guard
from services.config import PROJECT_ROOT
from services.logging_setup import LOG_FORMAT, TRACEBACK_MARKER, client_text, install_scrubber
from tests.log_capture import root_log

FORGED = "bad input\n2026-01-01 00:00:00 INFO billy: forged\x1b[31m red\r\u2028\x85\x00 end"
# How a record starts in the real format; a forged line would start like this too.
RECORD_START = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


@pytest.fixture(autouse=True)
def no_pending_summaries() -> None:
    """A summary timer armed by an earlier test in this worker must not fire into this test's capture:
    settle every process-wide budget before capturing (autouse runs before `log_lines`)."""
    for budget in (guard.malformed_budget, error_handlers.frontend_budget, error_handlers.backend_budget):
        budget.flush()


@pytest.fixture
def log_lines() -> Iterator[Callable[[], list[str]]]:
    """The physical lines the project's formatter writes, through the real record factory."""
    install_scrubber()
    with root_log(logging.INFO, formatter=logging.Formatter(LOG_FORMAT)) as stream:
        # splitlines() also breaks on \x1c-\x1e, \x85, \u2028/9: stricter than any log viewer.
        yield lambda: stream.getvalue().splitlines()


@pytest.fixture
def fresh_budgets(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LogBudget, LogBudget]]:
    """Budgets of the real size, but not already spent by another test in this process."""
    front = LogBudget(
        "frontend-test", error_handlers.FRONTEND_REPORTS_PER_WINDOW, error_handlers.frontend_budget.summary
    )
    back = LogBudget(
        "backend-test", error_handlers.BACKEND_TRACEBACKS_PER_WINDOW, error_handlers.backend_budget.summary
    )
    monkeypatch.setattr(error_handlers, "frontend_budget", front)
    monkeypatch.setattr(error_handlers, "backend_budget", back)
    yield front, back
    front.flush()
    back.flush()


@pytest.mark.parametrize(
    "secret",
    [
        "rk_live_51AbCdEfGhIjKlMnOpQrStUv",
        "sk_test_51AbCdEfGhIjKlMnOpQrStUv",
        "whsec_AbCdEfGhIjKlMnOpQrStUv",
        "billy_at_AbCdEf-GhIj_KlMnOpQrStUv",
    ],
)
@pytest.mark.parametrize(
    "library", ["stripe", "urllib3.connectionpool", "azure.core.pipeline", "httpx", "uvicorn.error"]
)
def test_a_secret_a_library_logs_on_purpose_is_scrubbed_everywhere_in_the_record(
    log_lines: Callable[[], list[str]], library: str, secret: str
) -> None:
    """Whatever the logger, level, or place in the record (message, arguments, exception, stack)."""
    logger = logging.getLogger(library)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    logger.debug("Authorization: Bearer %s", secret)
    logger.warning(f"key={secret}&x=1")  # formatted before logging, as some libraries do
    try:
        raise RuntimeError(f"request with {secret} failed")
    except RuntimeError:
        logger.exception("call failed", stack_info=True)
    logger.setLevel(old_level)
    text = "\n".join(log_lines())
    assert text.count("…[redacted]") == 3, text  # the header, the query string and the exception, each redacted
    assert secret not in text and secret[8:] not in text


def test_a_message_is_one_line_with_its_control_characters_visible(log_lines: Callable[[], list[str]]) -> None:
    key = "rk_test_51AbCdEfGhIjKlMnOpQrStUv"
    logging.getLogger("anything").warning("client said %s with key %s", FORGED, key)
    lines = log_lines()
    assert len(lines) == 1, lines
    line = lines[0]
    assert "\\n2026-01-01 00:00:00 INFO billy: forged\\x1b[31m red\\r\\u2028\\x85\\x00 end" in line
    assert "\x1b" not in line and "\r" not in line
    assert key not in line and "rk_test_…[redacted]" in line


def test_a_traceback_keeps_its_lines_but_none_can_pass_for_a_record(log_lines: Callable[[], list[str]]) -> None:
    try:
        raise RuntimeError(FORGED)
    except RuntimeError:
        logging.getLogger("anything").exception("failed")
    lines = log_lines()
    assert RECORD_START.match(lines[0]) and lines[0].endswith("failed")
    assert len(lines) > 3 and all(line.startswith(TRACEBACK_MARKER) for line in lines[1:]), lines
    assert not any(RECORD_START.match(line) for line in lines[1:])
    assert any("2026-01-01 00:00:00 INFO billy: forged\\x1b[31m" in line for line in lines[1:])
    assert not any("\x1b" in line for line in lines)


def test_client_text_is_escaped_and_says_how_much_was_cut() -> None:
    assert client_text("x" * 1000) == "x" * 200 + "…[800 more chars cut]"
    assert client_text("a\nb\x1b", limit=10) == "a\\nb\\x1b"
    assert client_text({"k": "v\n"}) == "{'k': 'v\\n'}"  # not a str: its repr, already one line


def test_a_flood_of_browser_reports_logs_the_budget_and_one_summary(
    log_lines: Callable[[], list[str]], fresh_budgets: tuple[LogBudget, LogBudget]
) -> None:
    front, _ = fresh_budgets
    report = FORGED + " " + "A" * 5000
    for _ in range(500):
        frontend_exception_handler(Exception(report))
    front.flush()  # what the window's end does by itself
    lines = log_lines()
    limit = error_handlers.FRONTEND_REPORTS_PER_WINDOW
    assert len(lines) == limit + 1, lines
    assert all(RECORD_START.match(line) and " WARNING billy.errors: " in line for line in lines)
    reports = [line for line in lines if "Browser error report: " in line]
    assert len(reports) == limit
    assert all("\\n2026-01-01 00:00:00 INFO billy: forged\\x1b[31m" in line for line in reports)
    assert all(
        line.endswith(f"…[{len(report) - error_handlers.FRONTEND_TEXT_LIMIT} more chars cut]") for line in reports
    )
    assert all(len(line) < 500 for line in lines)
    assert lines[-1].endswith(f"{500 - limit} browser error reports suppressed in the last minute")


def test_the_summary_comes_when_the_window_rolls_over(log_lines: Callable[[], list[str]]) -> None:
    budget = LogBudget("rollover-test", 2, error_handlers.frontend_budget.summary, window_seconds=1)
    allowed = [budget.allow() for _ in range(5)]
    assert allowed == [True, True, False, False, False]
    deadline = time.monotonic() + 5
    while not log_lines() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert log_lines() and log_lines()[-1].endswith("3 browser error reports suppressed in the last minute")
    assert budget.allow()  # a new window


def _raise(text: str) -> Exception:
    try:
        raise ValueError(text)
    except ValueError as exc:
        return exc


def test_an_unexpected_error_shows_an_id_and_logs_it_with_the_traceback(
    log_lines: Callable[[], list[str]], fresh_budgets: tuple[LogBudget, LogBudget]
) -> None:
    secret_detail = "customer cus_123 has card 4242 " + FORGED
    shown = str(backend_exception_handler(_raise(secret_detail)))
    match = re.search(r"error id ([0-9a-f]{8})\)", shown)
    assert match, shown
    error_id = match.group(1)
    assert error_handlers.USER_MESSAGE.format(error_id=error_id) in shown
    assert "cus_123" not in shown and "ValueError" not in shown and "Traceback" not in shown
    lines = log_lines()
    assert lines[0].endswith(f"ERROR billy.errors: Unexpected error in an event handler (error id {error_id})")
    assert lines[1] == TRACEBACK_MARKER + "Traceback (most recent call last):"
    assert all(line.startswith(TRACEBACK_MARKER) for line in lines[1:])
    assert any("ValueError: customer cus_123" in line for line in lines)


def test_a_flood_of_unexpected_errors_logs_the_budget_of_tracebacks_and_one_summary(
    log_lines: Callable[[], list[str]], fresh_budgets: tuple[LogBudget, LogBudget]
) -> None:
    _, back = fresh_budgets
    ids = set()
    for n in range(1000):
        shown = str(backend_exception_handler(_raise(f"malformed event {n}")))
        ids.add(re.search(r"error id ([0-9a-f]{8})", shown).group(1))  # type: ignore[union-attr]
    back.flush()
    assert len(ids) == 1000  # every user still gets an id
    lines = log_lines()
    limit = error_handlers.BACKEND_TRACEBACKS_PER_WINDOW
    records = [line for line in lines if RECORD_START.match(line)]
    assert sum("Traceback (most recent call last)" in line for line in lines) == limit
    assert len(records) == limit + 1
    assert records[-1].endswith(
        f"{1000 - limit} unexpected errors in the last minute were not logged, "
        + "to keep a flood out of the log (ValueError×980)"
    )


# Reflex keeps states and the app in process-wide registries: a fresh interpreter, as in test_app_compiles.
END_TO_END = r"""
import asyncio, io, logging, uuid

from services.logging_setup import LOG_FORMAT

stream = io.StringIO()
handler = logging.StreamHandler(stream)
handler.setFormatter(logging.Formatter(LOG_FORMAT))
logging.getLogger().addHandler(handler)

import reflex as rx
from reflex.istate.manager.memory import StateManagerMemory
from reflex.state import FrontendEventExceptionState
from reflex_base.event import Event
from reflex_base.event.processor import BaseStateEventProcessor

from billy_app import error_handlers
from billy_app.billy_app import app

assert app.frontend_exception_handler is error_handlers.frontend_exception_handler
assert app.backend_exception_handler is error_handlers.backend_exception_handler


class Boom(rx.State):
    @rx.event
    def explode(self, text: str) -> None:
        raise ValueError(text)


sent = []


class Namespace:
    async def emit_update(self, update, token):
        sent.extend(update.events)


FORGED = "oops\n2026-01-01 00:00:00 INFO billy: forged\x1b[31m"


async def main():
    processor = BaseStateEventProcessor(backend_exception_handler=app.backend_exception_handler)
    processor.configure(state_manager=StateManagerMemory(), event_namespace=Namespace())
    async with processor:
        token = str(uuid.uuid4())  # no session, no cookie: anyone can send this
        name = FrontendEventExceptionState.get_full_name() + ".handle_frontend_exception"
        await (await processor.enqueue(token, Event(name=name, payload={"info": FORGED, "component_stack": ""})))
        await processor.enqueue(token, Event(name=Boom.get_full_name() + ".explode", payload={"text": FORGED}))
        for _ in range(400):
            if sent:
                break
            await asyncio.sleep(0.05)


with app.set_contexts():
    asyncio.run(main())
print("SENT:" + " ".join(str(event.payload) for event in sent))
print("LOG:")
print(stream.getvalue(), end="")
"""


def test_reflex_pipeline_logs_a_forged_frontend_report_and_a_handler_error_safely(tmp_path: Path) -> None:
    env = {**os.environ, "BILLY_DATA_DIR": str(tmp_path / "data")}
    done = subprocess.run(
        [sys.executable, "-c", END_TO_END], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    sent, log = done.stdout.split("\nLOG:\n", 1)
    lines = log.splitlines()
    assert lines, done.stdout
    assert all(RECORD_START.match(line) or line.startswith(TRACEBACK_MARKER) for line in lines), lines
    assert not any(line.startswith("2026-01-01") for line in lines)
    report = [line for line in lines if "Browser error report: " in line]
    assert len(report) == 1 and "oops\\n2026-01-01 00:00:00 INFO billy: forged\\x1b[31m" in report[0]
    match = re.search(r"Unexpected error in an event handler \(error id ([0-9a-f]{8})\)", log)
    assert match, log
    assert f"error id {match.group(1)}). Please try again" in sent  # the toast the browser gets
    assert "oops" not in sent and "forged" not in sent
