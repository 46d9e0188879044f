"""The search box in the signed-in header: submitting opens `/search?q=…` (billy_app/pages/search.py)."""

from __future__ import annotations

import reflex as rx

from billy_app.state.search import MAX_QUERY, SearchState


def global_search_box() -> rx.Component:
    return rx.form(
        rx.hstack(
            rx.input(
                rx.input.slot(rx.icon("search", size=14)),
                name="q",
                placeholder="Search ids, emails, names, card last 4, #order…",
                max_length=MAX_QUERY,
                id="global-search",
                aria_label="Search customers, charges, invoices and subscriptions",
                width="100%",
                size="2",
            ),
            spacing="2",
            align="center",
        ),
        on_submit=SearchState.go,
        reset_on_submit=False,
        role="search",
        flex="1 1 22em",  # takes the room the title leaves, up to 22em, before anything wraps
        min_width="8em",
        max_width="22em",
    )
