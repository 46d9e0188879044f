"""The sign-in family of pages (sign-in, invite, reset, forgot) share one state per tab, so the
message one page read from its flash must not stand on the next page while that page loads.

CI saw it: after signing out, a used invite link opened in the same tab showed "You are signed
out." on the invite page until its own loader ran, and the member read the wrong notice."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import quote

import pytest

from billy_app.api import flash
from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.state.entry import EntryState
from tests.reflex_events import Pipeline, event_pipeline

SIGNED_OUT = "You are signed out."


@pytest.fixture
def pipeline(owner) -> Iterator[Pipeline]:  # type: ignore[no-untyped-def]
    with event_pipeline() as running:
        yield running


def test_one_pages_message_is_not_shown_on_the_next(pipeline: Pipeline) -> None:
    tab = pipeline.tab(path=f"/login/?flash={quote(flash.pack(SIGNED_OUT, kind='info'))}")
    assert tab.send(EntryState, "load_login").last(EntryState, "page_message") == SIGNED_OUT

    # The same tab opens an invite link: the page hydrates before its loader has run.
    tab.path = "/invite/"
    assert tab.hydrate().last(EntryState, "page_message") == ""
    shown = tab.send(EntryState, "load_invite").last(EntryState, "page_message")
    assert shown == "Open the invite link from your email to join your team."

    # And back on sign-in with no flash: nothing from the invite page either.
    tab.path = "/login/"
    assert tab.hydrate().last(EntryState, "page_message") == ""
    assert tab.send(EntryState, "load_login").last(EntryState, "page_message") == ""
