"""The search box in the signed-in header. Typing shows the top hits under it (after the input's
one debounce); Enter opens `/search?q=…` (billy_app/pages/search.py). The text is kept in the
tab's state, so it is still in the box on the next page.

Keyboard: ↓ moves from the box into the hits and along them, ↑ back (to the box from the first),
Enter or a click opens one, Escape closes the panel and returns to the box; Tab reaches the hits
too (they follow the box). Focus leaving the box and its panel closes the panel.
"""

from __future__ import annotations

import reflex as rx

from billy_app.state.search import MAX_QUERY, SearchBoxState, SearchState

SUGGEST_DEBOUNCE_MS = 200
PANEL_ID = "global-search-panel"
CLOSE_ID = "global-search-close"
OPTION_CLASS = "global-search-option"

# Client-side only: moving focus needs no server, and Escape and leaving "click" the panel's own
# Close button, so closing has one way in (`SearchBoxState.close`).
_CLOSE = f"document.getElementById('{CLOSE_ID}')?.click()"
KEYS_SCRIPT = f"""((e) => {{
  const area = e.currentTarget, input = area.querySelector('#global-search');
  const options = Array.from(area.querySelectorAll('.{OPTION_CLASS}'));
  const at = options.indexOf(document.activeElement);
  if (e.key === 'ArrowDown' && options.length) {{
    e.preventDefault();
    options[Math.min(at + 1, options.length - 1)].focus();
  }} else if (e.key === 'ArrowUp' && at >= 0) {{
    e.preventDefault();
    (at === 0 ? input : options[at - 1]).focus();
  }} else if (e.key === 'Escape' && document.getElementById('{CLOSE_ID}')) {{
    e.preventDefault();
    {_CLOSE};
    input?.focus();
  }}
}})"""
LEAVE_SCRIPT = f"""((e) => {{
  if (!e.relatedTarget || !e.currentTarget.contains(e.relatedTarget)) {_CLOSE};
}})"""
# A press inside the panel keeps focus where it is, so clicking a hit is not first a "leave".
KEEP_FOCUS_SCRIPT = "((e) => e.preventDefault())"

GROUPS = (
    ("customers", "Customers", SearchBoxState.customers),
    ("charges", "Charges", SearchBoxState.charges),
    ("invoices", "Invoices", SearchBoxState.invoices),
    ("subscriptions", "Subscriptions", SearchBoxState.subscriptions),
)


def suggestion(hit: rx.Var[dict[str, str]]) -> rx.Component:
    words = rx.vstack(
        rx.text(hit["title"], size="2", weight="medium", trim="both"),
        rx.text(hit["detail"], size="1", color_scheme="gray", truncate=True, max_width="100%"),
        spacing="0",
        width="100%",
    )
    return rx.el.li(
        rx.cond(
            hit["href"] != "",
            rx.link(
                words,
                href=hit["href"],
                on_click=SearchBoxState.close,
                underline="none",
                color_scheme="gray",
                high_contrast=True,
                class_name=OPTION_CLASS,
                display="block",
                padding="0.35em 0.5em",
                border_radius="var(--radius-2)",
                _hover={"background": "var(--gray-a3)"},
                _focus_visible={"background": "var(--accent-a4)", "outline": "2px solid var(--accent-8)"},
                custom_attrs={"data-id": hit["id"]},
            ),
            rx.box(words, padding="0.35em 0.5em"),
        ),
    )


def suggestion_group(kind: str, label: str, rows: rx.Var[list[dict[str, str]]]) -> rx.Component:
    heading_id = f"global-search-{kind}-heading"
    return rx.cond(
        rows.length() > 0,
        rx.box(
            rx.text(label, size="1", weight="bold", color_scheme="gray", id=heading_id, padding_left="0.5em"),
            rx.el.ul(
                rx.foreach(rows, suggestion),
                custom_attrs={"aria-labelledby": heading_id},
                list_style="none",
                margin="0",
                padding="0",
            ),
            id=f"global-search-{kind}",
            width="100%",
        ),
    )


def suggestions_panel() -> rx.Component:
    status = rx.cond(
        SearchBoxState.hint != "",
        SearchBoxState.hint,
        rx.cond(SearchBoxState.total == 0, "Nothing matches.", "Top matches: ↓ to choose, Enter for all results."),
    )
    return rx.box(
        rx.vstack(
            rx.hstack(
                rx.text(status, size="1", color_scheme="gray", id="global-search-status", role="status"),
                rx.spacer(),
                rx.icon_button(
                    rx.icon("x", size=14),
                    size="1",
                    variant="ghost",
                    color_scheme="gray",
                    type="button",
                    aria_label="Close search suggestions",
                    on_click=SearchBoxState.close,
                    id=CLOSE_ID,
                ),
                width="100%",
                align="center",
            ),
            *[suggestion_group(kind, label, rows) for kind, label, rows in GROUPS],
            rx.cond(
                SearchBoxState.total > 0,
                rx.link(
                    "All results for “",
                    SearchBoxState.searched,
                    "”",
                    href=SearchBoxState.results_href,
                    on_click=SearchBoxState.close,
                    size="2",
                    class_name=OPTION_CLASS,
                    padding="0.35em 0.5em",
                    id="global-search-all",
                ),
            ),
            spacing="2",
            width="100%",
        ),
        id=PANEL_ID,
        position="absolute",
        top="calc(100% + 4px)",
        left="0",
        width="min(30em, calc(100vw - 2em))",
        max_height="70vh",
        overflow_y="auto",
        padding="0.5em",
        background="var(--color-panel-solid)",
        border="1px solid var(--gray-a6)",
        border_radius="var(--radius-3)",
        box_shadow="var(--shadow-5)",
        z_index="50",
        custom_attrs={"role": "region", "aria-label": "Search suggestions", "onMouseDown": rx.Var(KEEP_FOCUS_SCRIPT)},
    )


def global_search_box() -> rx.Component:
    # A controlled input built on one DebounceInput (its 200 ms is the only debounce): `rx.input`
    # given `value` would wrap itself in a 300 ms one, and another around it would stack.
    box = rx.debounce_input(
        rx.input(
            rx.input.slot(rx.icon("search", size=14)),
            on_change=SearchBoxState.suggest,
            name="q",
            placeholder="Search ids, emails, names, card last 4, #order…",
            max_length=MAX_QUERY,
            id="global-search",
            aria_label="Search customers, charges, invoices and subscriptions",
            auto_complete="off",
            width="100%",
            size="2",
        ),
        value=SearchBoxState.text,
        debounce_timeout=SUGGEST_DEBOUNCE_MS,
    )
    return rx.box(
        rx.form(
            box,
            on_submit=SearchState.go,
            reset_on_submit=False,
            role="search",
            width="100%",
        ),
        rx.cond(SearchBoxState.panel_open, suggestions_panel()),
        id="global-search-area",
        position="relative",
        flex="1 1 22em",  # takes the room the title leaves, up to 22em, before anything wraps
        min_width="8em",
        max_width="22em",
        custom_attrs={"onKeyDown": rx.Var(KEYS_SCRIPT), "onBlur": rx.Var(LEAVE_SCRIPT)},
    )
