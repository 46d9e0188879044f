"""The layouts `page_frame` puts pages in: the signed-in shell (sidebar, header, sign-out) and the
centred card for forms; plus small pieces every page uses."""

from __future__ import annotations

import reflex as rx

from billy_app.components import light
from billy_app.components.global_search import global_search_box
from billy_app.components.native_form import native_form
from billy_app.state.nav_badges import NavBadgesState
from billy_app.state.session import SessionState, keep_alive_timer

NAV = [
    ("Dashboard", "/dashboard", "layout-dashboard"),
    ("Customers", "/customers", "users"),
    ("Charges", "/charges", "receipt"),
    ("Subscriptions", "/subscriptions", "repeat"),
    ("Invoices", "/invoices", "file-text"),
    ("Products", "/products", "package"),
    ("Failed payments", "/failed-payments", "circle-alert"),
    ("Refund requests", "/approvals", "clipboard-check"),
]
# Settings is one entry: its page shows the tabs the viewer's role may open (`settings_tabs`).
# (key, label, address, Owner only)
SETTINGS_TABS = [
    ("team", "Team", "/settings/team", True),
    ("roles", "Roles", "/settings/roles", True),
    ("spend", "Spend controls", "/settings/spend", True),
    ("audit", "Audit log", "/settings/audit", True),
    ("stripe", "Stripe connection", "/settings/stripe", True),
    ("sync", "Stripe sync", "/settings/sync", False),
    ("plan", "Plan", "/settings/plan", False),
    ("agents", "Agents", "/settings/agents", False),
]
OWNER_SETTINGS = ("Settings", "/settings/team", "settings")
MEMBER_SETTINGS = ("Settings", "/settings/sync", "settings")


# Live counts shown next to a nav entry, by its address.
NAV_BADGES: dict[str, rx.Var[int]] = {
    "/approvals": NavBadgesState.pending_approvals,
    OWNER_SETTINGS[1]: NavBadgesState.spend_alerts,  # spend alerts of the last 24 hours (issue 15)
}


def nav_badge(href: str) -> rx.Component:
    """The entry's count while above zero (e.g. refund requests waiting on the viewer's decision)."""
    count = NAV_BADGES.get(href)
    if count is None:
        return rx.fragment()
    name = href.strip("/").replace("/", "-")
    return rx.cond(
        count > 0,
        rx.badge(count, color_scheme="red", variant="solid", radius="full", id=f"nav-badge-{name}"),
    )


def nav_badges_loader() -> rx.Component:
    """Once the member is known: read the counts and keep them live (on every signed-in page)."""
    return rx.cond(
        SessionState.signed_in,
        rx.box(display="none", on_mount=NavBadgesState.load),
    )


def nav_link(label: str, href: str, icon: str) -> rx.Component:
    return rx.link(
        rx.hstack(rx.icon(icon, size=16), rx.text(label, size="3"), nav_badge(href), align="center", spacing="2"),
        href=href,
        class_name="nav-" + label.lower().replace(" ", "-"),
        underline="none",
        color_scheme="gray",
        high_contrast=True,
        width="100%",
        padding_y="0.4em",
    )


def sign_out_button() -> rx.Component:
    return native_form(
        rx.button(
            rx.icon("log-out", size=14),
            "Sign out",
            type="submit",
            variant="soft",
            color_scheme="gray",
            size="2",
            white_space="nowrap",
            id="sign-out",
        ),
        action="/api/auth/logout",
        method="post",
    )


# Radix breakpoints: [phone, 520 px, 768 px and up]. Below 768 px the sidebar folds into a menu.
PHONE_ONLY = ["flex", "flex", "none"]
WIDE_ONLY = ["none", "none", "flex"]


def nav_entries() -> list[rx.Component]:
    """The navigation's links for the viewer's role: the sidebar's, and the phone menu's."""
    return [
        *[nav_link(*item) for item in NAV],
        rx.cond(SessionState.is_owner, nav_link(*OWNER_SETTINGS), nav_link(*MEMBER_SETTINGS)),
    ]


def sidebar() -> rx.Component:
    return rx.vstack(
        rx.heading("Agent Billy", size="5", as_="p"),
        rx.text(SessionState.org_name, size="2", color_scheme="gray"),
        rx.divider(),
        *nav_entries(),
        padding="1.5em",
        width="14em",
        flex_shrink="0",
        # Stays in place while a long page scrolls; scrolls on its own if it is the taller.
        position="sticky",
        top="0",
        height="100vh",
        overflow_y="auto",
        spacing="2",
        border_right="1px solid var(--gray-a5)",
        background_color="var(--gray-a2)",
        display=WIDE_ONLY,
        id="sidebar",
        custom_attrs={"role": "navigation", "aria-label": "Billy"},
    )


def phone_menu() -> rx.Component:
    """The navigation on a phone: one button opening the same links, closing once one is chosen."""
    return rx.box(
        rx.popover.root(
            rx.popover.trigger(
                rx.icon_button(rx.icon("menu", size=18), variant="soft", aria_label="Menu", id="phone-menu-button")
            ),
            rx.popover.content(
                rx.vstack(
                    rx.text(SessionState.org_name, size="2", color_scheme="gray"),
                    *[rx.popover.close(entry) for entry in nav_entries()],
                    rx.divider(),
                    rx.text(SessionState.user_email, size="2", id="phone-who-am-i"),
                    spacing="1",
                    width="100%",
                    custom_attrs={"role": "navigation", "aria-label": "Billy (menu)"},
                ),
                width="16em",
                id="phone-menu",
                aria_label="Menu",
            ),
        ),
        display=PHONE_ONLY,
    )


def shell(*children: rx.Component, title: str) -> rx.Component:
    """The signed-in page: sidebar on the left (a menu button on a phone), title and who-am-I on top."""
    return rx.hstack(
        skip_link(),  # first in the page, so the first Tab reaches it (it shows only when focused)
        sidebar(),
        nav_badges_loader(),
        rx.vstack(
            rx.hstack(
                phone_menu(),
                rx.heading(title, size="6", white_space="nowrap", id="page-title"),
                rx.spacer(),
                global_search_box(),
                rx.text(
                    SessionState.user_email,
                    size="2",
                    white_space="nowrap",
                    overflow="hidden",
                    text_overflow="ellipsis",
                    max_width="16em",
                    display=WIDE_ONLY,
                    id="who-am-i",
                ),
                rx.badge(SessionState.user_role_label, variant="soft", white_space="nowrap"),
                sign_out_button(),
                width="100%",
                align="center",
                spacing="3",
                # On a phone the search takes a line of its own instead of pushing the page wider.
                flex_wrap=["wrap", "wrap", "nowrap"],
            ),
            rx.cond(
                SessionState.read_only_notice != "",
                rx.callout(SessionState.read_only_notice, icon="clock", color_scheme="amber", id="read-only-notice"),
            ),
            stripe_key_banner(),
            *children,
            keep_alive_timer(),
            padding=["1em", "1em", "2em"],
            width="100%",
            # A flex child may otherwise grow to its widest table: tables scroll inside their own box.
            min_width="0",
            spacing="4",
            align="stretch",
            id="main",
            # From a click until the page's fresh data is in, what shows is the last visit's rows:
            # dimmed and marked busy, so nobody takes them for current (assets/billy.css).
            class_name=rx.cond(rx.State.is_hydrated, "", "refreshing"),
            custom_attrs={
                "role": "main",
                "tabindex": "-1",
                "aria-busy": rx.cond(rx.State.is_hydrated, "false", "true"),
            },
        ),
        spacing="0",
        align="start",
        width="100%",
    )


def stripe_key_banner() -> rx.Component:
    """While Stripe rejects Billy's key (`services.key_watch`): the Owner is told what to do and where;
    everyone else that the Owner has something to fix. One flag, loaded with the member."""
    return rx.cond(
        SessionState.stripe_key_rejected,
        rx.callout(
            rx.cond(
                SessionState.is_owner,
                rx.text(
                    "Stripe rejected Billy's key (it was revoked, rolled or has expired), so nothing reaches Stripe "
                    "until you rotate it in ",
                    rx.link(
                        "Settings → Stripe connection",
                        href="/settings/stripe",
                        underline="always",
                        id="stripe-key-banner-link",
                    ),
                    ".",
                ),
                rx.text(
                    "Stripe connection needs the Owner's attention: what you see is the data synced so far, and "
                    "changes cannot reach Stripe for now."
                ),
            ),
            icon="triangle-alert",
            color_scheme="red",
            role="alert",
            id="stripe-key-banner",
        ),
    )


def settings_tabs(route: str) -> rx.Component:
    """The settings' sub-navigation: one tab per settings page the viewer's role opens, the
    current one marked for sight and for screen readers."""

    def tab(key: str, label: str, href: str) -> rx.Component:
        current = href == route.rstrip("/")
        return rx.link(
            label,
            href=href,
            id=f"settings-tab-{key}",
            underline="none",
            weight="bold" if current else "regular",
            color_scheme="gray",
            high_contrast=current,
            padding="0.5em 0.75em",
            border_bottom="2px solid " + ("var(--accent-9)" if current else "transparent"),
            white_space="nowrap",
            custom_attrs={"aria-current": "page"} if current else {},
        )

    tabs = [
        rx.cond(SessionState.is_owner, tab(key, label, href)) if owner_only else tab(key, label, href)
        for key, label, href, owner_only in SETTINGS_TABS
    ]
    return rx.hstack(
        *tabs,
        spacing="1",
        width="100%",
        overflow_x="auto",
        border_bottom="1px solid var(--gray-a5)",
        id="settings-tabs",
        custom_attrs={"role": "navigation", "aria-label": "Settings"},
    )


def skip_link() -> rx.Component:
    """The first thing Tab reaches: straight to the page's content, past the navigation."""
    return rx.link(
        "Skip to content",
        href="#main",
        id="skip-link",
        position="absolute",
        left="-9999px",
        top="0.5em",
        z_index="1000",
        padding="0.5em 1em",
        background_color="var(--color-background)",
        _focus={"left": "0.5em"},
    )


def card_page(*children: rx.Component, width: str = "28em") -> rx.Component:
    """A centred card, for signup, sign-in and the wizard."""
    return rx.center(
        rx.card(
            rx.vstack(*children, spacing="4", width="100%"),
            width=width,
            max_width="95vw",
            size="4",
            custom_attrs={"role": "main"},
        ),
        min_height="100vh",
        background_color="var(--gray-a2)",
        padding="2em",
    )


def message_callout(message: rx.Var[str], kind: rx.Var[str] | str) -> rx.Component:
    """A form's outcome: green with an info icon for `info`, else red with a warning."""
    callout = status_callout(message, kind == "info", role="alert", id="form-message", width="100%")
    return rx.cond(message != "", callout)


def status_callout(
    message: rx.Var[str] | str,
    good: rx.Var[bool] | bool,
    good_icon: str = "info",
    bad_icon: str = "triangle-alert",
    **props: object,
) -> rx.Component:
    """A callout that is green with `good_icon` when `good`, else red with `bad_icon`. Each icon is
    named outright: an icon named by a Var compiles to lucide's DynamicIcon, which brings every
    lucide icon into the build as its own chunk (1,600 files, a slower build) and makes the page
    fetch the icon after it renders."""
    return rx.cond(
        good,
        rx.callout(message, icon=good_icon, color_scheme="green", **props),
        rx.callout(message, icon=bad_icon, color_scheme="red", **props),
    )


# A UTC timestamp in the viewer's own zone, which it names ("… UTC+02:00"); the pages import it
# from here with the rest of the layout.
local_time = light.local_time
