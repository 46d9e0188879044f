"""One page frame: `@billy_page` gives a page its route, title, on_load, audience and layout.

As in Reflex's own dashboard templates (a decorator around `rx.page`): a page module says what
its page shows; the frame registers it, names it "<title> · Agent Billy", loads the signed-in
member first and wraps the content in the shared layout (`billy_app.components.layout`).

    @billy_page("/settings/team", "Settings · Team", on_load=[TeamState.load], audience=Audience.OWNER)
    def team_page() -> rx.Component:
        return rx.vstack(...)

The audience is presentation only: the services refuse whoever may not act (and audit it),
whatever a page shows, so an Owner-only page still runs its own on_load for anyone.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Any

import reflex as rx

from billy_app.components.layout import card_page, settings_tabs, shell
from billy_app.state.session import SessionState

APP_NAME = "Agent Billy"

PageFunction = Callable[[], rx.Component]


class Audience(StrEnum):
    """Who a page is for."""

    PUBLIC = "public"  # anyone: the entry pages, whose own on_load sends each visitor on
    MEMBER = "member"  # a signed-in member: `SessionState.require_member` loads first
    OWNER = "owner"  # as MEMBER, and the frame shows the page to the Owner only


class Layout(StrEnum):
    """What surrounds the page's content."""

    SHELL = "shell"  # sidebar, header with the title, who-am-I and sign-out: the signed-in pages
    CARD = "card"  # a centred card: the entry forms and the set-up wizard
    BARE = "bare"  # the content alone


def page_title(title: str | None) -> str:
    """The browser tab's title: "<title> · Agent Billy", or the app's name alone."""
    return f"{title} · {APP_NAME}" if title else APP_NAME


def page_on_load(audience: Audience, on_load: Sequence[Any]) -> list[Any]:
    """A signed-in page first checks its member (and fills the header), then loads its own state."""
    return list(on_load) if audience is Audience.PUBLIC else [SessionState.require_member, *on_load]


def refused_id(route: str) -> str:
    """The Owner-only notice's id: `/settings/team` → `team-refused`."""
    return f"{route.rstrip('/').rsplit('/', 1)[-1]}-refused"


def owner_only(content: rx.Component, notice_id: str) -> rx.Component:
    """The page for the Owner; for anyone else, once the header knows who they are, a plain notice."""
    return rx.cond(
        SessionState.is_owner,
        content,
        rx.cond(
            SessionState.signed_in,
            rx.callout(
                "Your role (" + SessionState.user_role_label + ") cannot open this page: only the Owner can.",
                icon="lock",
                color_scheme="amber",
                id=notice_id,
            ),
        ),
    )


def framed(
    content: rx.Component,
    *,
    title: str | None,
    route: str,
    audience: Audience,
    layout: Layout,
    width: str | None = None,
) -> rx.Component:
    """The page's content, shown to its audience, in its layout."""
    if audience is Audience.OWNER:
        content = owner_only(content, refused_id(route))
    if route.startswith("/settings/"):
        content = rx.vstack(settings_tabs(route), content, spacing="4", width="100%", align="stretch")
    if layout is Layout.SHELL:
        return shell(content, title=title or APP_NAME)
    if layout is Layout.CARD:
        return card_page(content, width=width) if width else card_page(content)
    return content


def billy_page(
    route: str,
    title: str | None = None,
    *,
    on_load: Sequence[Any] = (),
    audience: Audience | str = Audience.MEMBER,
    layout: Layout | str | None = None,
    width: str | None = None,
) -> Callable[[PageFunction], PageFunction]:
    """Register the decorated function as the page at `route`.

    `title` heads a signed-in page and names the tab ("<title> · Agent Billy"). `on_load`: the
    page's own loaders; signed-in pages (MEMBER, OWNER) get `require_member` before them. The
    layout is the signed-in shell unless said otherwise (PUBLIC pages: the card); `width` is a
    card's width."""
    who = Audience(audience)  # "owner" and Audience.OWNER alike
    around = Layout(layout) if layout else (Layout.CARD if who is Audience.PUBLIC else Layout.SHELL)

    def decorator(page: PageFunction) -> PageFunction:
        @functools.wraps(page)  # Reflex names the page, and mirrors its output, after the page's module
        def frame() -> rx.Component:
            return framed(page(), title=title, route=route, audience=who, layout=around, width=width)

        rx.page(route=route, title=page_title(title), on_load=page_on_load(who, on_load))(frame)
        return frame

    return decorator
