"""The header's search as the page meets it, through Reflex's real event pipeline: hits as one
types, the text kept for the next page, and "See all N" opening a list that counts the same N."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from billy_app.state.charges import ChargesState
from billy_app.state.customers import FOUND_EXPORT_NOTE, CustomersState
from billy_app.state.search import SUGGESTIONS_PER_GROUP, SearchBoxState, SearchState
from services import mirror
from services.db import session_scope
from services.permissions import Actor
from tests.reflex_events import Pipeline, event_pipeline

T = 1_770_000_000


@pytest.fixture
def pipeline(owner: Actor) -> Iterator[Pipeline]:
    customers = [
        {"id": f"cus_bulk{n:02}", "object": "customer", "created": T + n, "email": f"m{n}@bulk.example", "name": "Mo"}
        for n in range(27)
    ]
    customers.append({"id": "cus_ada", "object": "customer", "created": T, "email": "ada@x.io", "name": "Ada Marlow"})
    charges = [
        {
            "id": f"ch_bulk{n:02}",
            "object": "charge",
            "amount": 100 + n,
            "currency": "usd",
            "status": "succeeded",
            "customer": "cus_ada",
            "description": f"Widget no. {n}",
            "created": T + n,
        }
        for n in range(31)
    ]
    with session_scope() as session:
        mirror.write_objects(session, "customer", customers, T + 100)
        mirror.write_objects(session, "charge", charges, T + 100)
    with event_pipeline() as running:
        yield running


def test_typing_shows_the_top_hits_and_the_box_keeps_its_text(pipeline: Pipeline) -> None:
    tab = pipeline.owner_tab("/dashboard")
    sent = tab.send(SearchBoxState, "suggest", {"text": "marl"})
    assert sent.last(SearchBoxState, "panel_open") is True
    assert [hit["title"] for hit in sent.last(SearchBoxState, "customers")] == ["Ada Marlow"]
    assert sent.last(SearchBoxState, "results_href") == "/search?q=marl"
    widgets = tab.send(SearchBoxState, "suggest", {"text": "widget"})
    assert len(widgets.last(SearchBoxState, "charges")) == SUGGESTIONS_PER_GROUP  # the top few; the page has more
    assert widgets.last(SearchBoxState, "charges")[0]["href"] == "/charges/ch_bulk30"
    # Too short for the contains-search: the panel says what to type instead of searching.
    short = tab.send(SearchBoxState, "suggest", {"text": "wi"})
    assert "at least 3 characters" in short.last(SearchBoxState, "hint")
    assert short.last(SearchBoxState, "charges") == []
    assert tab.send(SearchBoxState, "suggest", {"text": "  "}).last(SearchBoxState, "panel_open") is False
    # Escape / leaving closes the panel; the text stays (the next page's header reads it).
    tab.send(SearchBoxState, "suggest", {"text": "widget"})
    closed = tab.send(SearchBoxState, "close")
    assert closed.last(SearchBoxState, "panel_open") is False
    assert tab.hydrate().last(SearchBoxState, "text") == "widget"
    # Enter opens the results page; the box shows what was searched, its panel closed.
    tab.send(SearchBoxState, "suggest", {"text": "widg"})
    went = tab.send(SearchState, "go", {"form": {"q": "  widget  "}})
    assert went.last(SearchBoxState, "text") == "widget" and went.last(SearchBoxState, "panel_open") is False
    assert any(e.name == "_redirect" and "/search?q=widget" in str(e.payload) for e in went.events)


def test_see_all_opens_lists_that_count_what_the_link_says(pipeline: Pipeline) -> None:
    results = pipeline.owner_tab("/search?q=widget").send(SearchState, "load")
    assert results.last(SearchState, "see_all_charges") == "See all 31 in Charges"
    assert results.last(SearchState, "see_all_charges_href") == "/charges?q=widget"
    assert results.last(SearchBoxState, "text") == "widget"  # the box shows the page's query
    charges = pipeline.owner_tab("/charges?q=widget").send(ChargesState, "load")
    assert charges.last(ChargesState, "range_label") == "1–31 of 31"
    assert charges.last(ChargesState, "filters")["q"] == "widget"  # shown in the bar's Search field

    results = pipeline.owner_tab("/search?q=bulk.ex").send(SearchState, "load")
    assert results.last(SearchState, "see_all_customers") == "See all 27 in Customers"
    tab = pipeline.owner_tab("/customers?q=bulk.ex")
    customers = tab.send(CustomersState, "load")
    assert customers.last(CustomersState, "found_by") == "bulk.ex"
    assert customers.last(CustomersState, "range_label") == "1–27 of 27"
    # Its export follows the box's search only, so it says so instead of exporting other rows.
    assert customers.last(CustomersState, "export_blocked") == FOUND_EXPORT_NOTE
    # The box's own search (or "Show all customers") leaves the finds and rewrites the address.
    back = tab.send(CustomersState, "clear_search")
    assert back.last(CustomersState, "found_by") == ""
    assert back.last(CustomersState, "range_label") == "1–28 of 28"
    assert any(e.name == "_call_script" and "replaceState" in str(e.payload) for e in back.events)


def test_a_group_that_shows_everything_offers_no_see_all(pipeline: Pipeline) -> None:
    results = pipeline.owner_tab("/search?q=marlow").send(SearchState, "load")
    assert len(results.last(SearchState, "customers")) == 1
    assert results.last(SearchState, "see_all_customers") == ""
    assert results.last(SearchState, "see_all_charges") == ""


def test_the_charges_list_refuses_to_export_search_words_it_cannot_carry(pipeline: Pipeline) -> None:
    tab = pipeline.owner_tab("/charges?q=widget")
    tab.send(ChargesState, "load")
    sent = tab.send(ChargesState, "export")
    assert any("clear Search to export" in toast for toast in sent.toasts())
    assert not any(e.name == "_download" for e in sent.events)
