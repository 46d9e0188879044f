"""A list's filters and sort live in its address (issue 16: a tab that reconnects to another
worker runs the page's on_load again, and used to come back unfiltered). Applying, sorting or
clearing rewrites the address; opening that address (a reload, a reconnection, a shared link)
shows the list as it was. Reflex's real event pipeline, as a browser tab drives it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.state.charges import ChargesState
from services.permissions import Actor
from tests.reflex_events import Pipeline, Sent, event_pipeline


@pytest.fixture
def pipeline(owner: Actor) -> Iterator[Pipeline]:
    with event_pipeline() as running:
        yield running


def _address_written(sent: Sent) -> str:
    scripts = [str(e.payload.get("javascript_code", "")) for e in sent.events]
    written = [s for s in scripts if "history.replaceState" in s]
    assert len(written) == 1, scripts
    return written[0].split("'', ", 1)[1].rsplit(")", 1)[0].strip('"')


def test_applied_filters_and_the_sort_are_written_into_the_address_and_cleared_from_it(pipeline: Pipeline) -> None:
    tab = pipeline.owner_tab("/charges")
    tab.send(ChargesState, "load")
    tab.send(ChargesState, "set_filter", {"name": "status", "value": "failed"})
    applied = tab.send(ChargesState, "apply", {"form": {"q": "Acme & Co", "from": "", "to": ""}})
    assert _address_written(applied) == "/charges?q=Acme+%26+Co&status=failed"
    sorted_ = tab.send(ChargesState, "set_sort", {"value": "oldest"})
    assert _address_written(sorted_) == "/charges?q=Acme+%26+Co&status=failed&sort=oldest"
    assert _address_written(tab.send(ChargesState, "clear")) == "/charges?sort=oldest"
    refused = tab.send(ChargesState, "set_filter", {"name": "status", "value": "nonsense"})
    assert "replaceState" not in refused.text  # nothing applied: the address stays


def test_opening_that_address_again_shows_the_list_filtered_and_sorted_as_it_was(pipeline: Pipeline) -> None:
    """As after a reload, or when the tab's worker died and another runs its on_load again."""
    tab = pipeline.owner_tab("/charges?status=failed&q=Acme&sort=oldest")
    sent = tab.send(ChargesState, "load")
    assert sent.last(ChargesState, "sort") == "oldest"
    assert {k: v for k, v in sent.last(ChargesState, "filters").items() if k in {"status", "q"}} == {
        "status": "failed",
        "q": "Acme",
    }
    odd = pipeline.owner_tab("/charges?sort=drop%20table")
    assert odd.send(ChargesState, "load").last(ChargesState, "sort") == "newest"  # only a sort offered
