"""The catalogue's write controls and their dialogs: "New product", "Rename", "Archive"/"Restore"
and "Add price".

Each control is hidden for a role that can never use it and shown disabled, with the reason, when
the plan, an ended trial or the Stripe key's missing permission blocks it (the server refuses on its
own either way). The forms send every field with the click."""

from __future__ import annotations

import reflex as rx

from billy_app.components.tables import small_gray
from billy_app.state.products import CURRENCY_CHOICES, INTERVAL_CHOICES, ONE_OFF, Dialog, ProductsState, ProductTableRow
from services.catalog import MAX_DESCRIPTION, MAX_NAME, MAX_NICKNAME

S = ProductsState


def blocked_notes() -> rx.Component:
    """Why the row controls are disabled now (the "New product" button says its own reason)."""
    return rx.fragment(
        rx.cond(
            S.update_shown & (S.update_blocked != "") & (S.update_blocked != S.create_blocked),
            rx.callout(S.update_blocked, icon="lock", color_scheme="amber", id="rename-blocked"),
        ),
        rx.cond(
            S.price_shown & (S.price_blocked != "") & (S.price_blocked != S.create_blocked),
            rx.callout(S.price_blocked, icon="lock", color_scheme="amber", id="add-price-blocked"),
        ),
    )


def new_product_button() -> rx.Component:
    return rx.cond(
        S.create_shown,
        rx.vstack(
            rx.button(
                rx.icon("plus", size=14),
                "New product",
                on_click=S.start_create,
                disabled=S.create_blocked != "",
                white_space="nowrap",
                id="new-product",
            ),
            rx.cond(
                (S.create_blocked != "") | S.key_lacks_writes,
                rx.hstack(
                    rx.cond(
                        S.create_blocked != "",
                        small_gray(S.create_blocked, id="new-product-blocked", max_width="28em"),
                    ),
                    rx.cond(
                        S.key_lacks_writes,  # the key blocks it (not the plan or the trial): it can be fixed
                        rx.button(
                            "Check again",
                            size="1",
                            variant="ghost",
                            on_click=S.check_key_again,
                            id="check-key-again",
                            title="After editing the key in the Stripe Dashboard",
                        ),
                    ),
                    align="center",
                ),
            ),
            align="end",
            spacing="1",
        ),
    )


def row_actions(row: rx.Var[ProductTableRow]) -> rx.Component:
    """A product row's buttons, each only for the roles that may use it."""
    return rx.hstack(
        rx.cond(
            S.update_shown,
            rx.button(
                "Rename",
                size="1",
                variant="soft",
                on_click=S.start_rename(row.id),
                disabled=S.update_blocked != "",
                title=S.update_blocked,
                class_name="rename-product",
            ),
        ),
        rx.cond(
            S.archive_shown,
            rx.cond(
                row.active,
                rx.button(
                    "Archive",
                    size="1",
                    variant="soft",
                    color_scheme="amber",
                    on_click=S.start_archive(row.id),
                    disabled=S.archive_blocked != "",
                    title=S.archive_blocked,
                    class_name="archive-product",
                ),
                rx.button(
                    "Restore",
                    size="1",
                    variant="soft",
                    color_scheme="green",
                    on_click=S.start_archive(row.id),
                    disabled=S.archive_blocked != "",
                    title=S.archive_blocked,
                    class_name="restore-product",
                ),
            ),
        ),
        rx.cond(
            S.price_shown,
            rx.button(
                "Add price",
                size="1",
                variant="soft",
                on_click=S.start_price(row.id),
                disabled=(S.price_blocked != "") | ~row.active,
                title=rx.cond(row.active, S.price_blocked, "Restore the product before adding a price."),
                class_name="add-price",
            ),
        ),
        spacing="2",
        wrap="wrap",
    )


def _labelled(label: str, control: rx.Component) -> rx.Component:
    return rx.vstack(rx.text(label, size="2", weight="medium"), control, spacing="1", width="100%")


def _problem() -> rx.Component:
    return rx.cond(
        S.dialog_problem != "",
        rx.callout(S.dialog_problem, color_scheme="red", icon="triangle-alert", id="catalog-dialog-problem"),
    )


def _buttons(label: str, button_id: str, **props: object) -> rx.Component:
    """Cancel, and the dialog's submit button (a spinner while saving)."""
    return rx.hstack(
        rx.dialog.close(
            rx.button("Cancel", variant="soft", color_scheme="gray", type="button", on_click=S.close_dialog)
        ),
        rx.button(
            rx.cond(S.saving, rx.spinner(size="1")),
            label,
            disabled=S.saving,
            id=button_id,
            **props,
        ),
        justify="end",
        width="100%",
    )


def _dialog(kind: str, title: rx.Var[str] | str, *children: rx.Component, dialog_id: str) -> rx.Component:
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title(title),
            *children,
            max_width="32em",
            id=dialog_id,
        ),
        open=S.dialog == kind,
        on_open_change=S.set_dialog_open,
    )


def _product_form(on_submit: object, button_label: str) -> rx.Component:
    """Name and description, pre-filled with the stored values when renaming."""
    return rx.form(
        rx.vstack(
            _labelled(
                "Name (customers see it on invoices and receipts)",
                rx.input(
                    name="name",
                    default_value=S.form_name,
                    required=True,
                    max_length=MAX_NAME,
                    width="100%",
                    id="product-name",
                ),
            ),
            _labelled(
                "Description (optional)",
                rx.text_area(
                    name="description",
                    default_value=S.form_description,
                    max_length=MAX_DESCRIPTION,
                    rows="3",
                    width="100%",
                    id="product-description",
                ),
            ),
            _problem(),
            _buttons(button_label, "save-product", type="submit"),
            spacing="3",
            width="100%",
        ),
        on_submit=on_submit,
        key=S.dialog_round.to_string(),
        width="100%",
    )


def product_dialog() -> rx.Component:
    return rx.fragment(
        _dialog(
            Dialog.CREATE,
            "New product",
            rx.dialog.description(
                "The product is created in Stripe and shown here at once; add its prices next.",
                size="2",
                color_scheme="gray",
            ),
            _product_form(S.save_new_product, "Create product"),
            dialog_id="new-product-dialog",
        ),
        _dialog(
            Dialog.RENAME,
            "Rename " + S.dialog_product_name,
            rx.dialog.description(
                "The new name and description are saved in Stripe; prices and subscriptions stay as they are.",
                size="2",
                color_scheme="gray",
            ),
            _product_form(S.save_rename, "Save"),
            dialog_id="rename-product-dialog",
        ),
    )


def archive_dialog() -> rx.Component:
    return _dialog(
        Dialog.ARCHIVE,
        rx.cond(S.archive_to, "Archive ", "Restore ") + S.dialog_product_name,
        rx.vstack(
            rx.text(S.archive_warning, size="2", id="archive-warning"),
            _problem(),
            _buttons(
                rx.cond(S.archive_to, "Archive product", "Restore product"),
                "confirm-archive",
                on_click=S.confirm_archive,
                color_scheme=rx.cond(S.archive_to, "amber", "green"),
            ),
            spacing="3",
            width="100%",
            margin_top="0.5em",
        ),
        dialog_id="archive-product-dialog",
    )


def price_dialog() -> rx.Component:
    return _dialog(
        Dialog.PRICE,
        "Add a price to " + S.dialog_product_name,
        rx.dialog.description(
            "A price's amount, currency and interval cannot be changed once it is created (Stripe does not allow "
            "it): to charge differently later, add another price.",
            size="2",
            color_scheme="gray",
            id="price-cannot-change",
        ),
        rx.form(
            rx.vstack(
                rx.hstack(
                    _labelled(
                        "Amount",
                        rx.input(
                            name="amount",
                            placeholder=rx.cond(S.price_currency == "jpy", "e.g. 5,000", "e.g. 49.00"),
                            required=True,
                            input_mode="decimal",
                            width="100%",
                            id="price-amount",
                        ),
                    ),
                    _labelled(
                        "Currency",
                        rx.select.root(
                            rx.select.trigger(id="price-currency", width="100%"),
                            rx.select.content(*[rx.select.item(label, value=code) for code, label in CURRENCY_CHOICES]),
                            value=S.price_currency,
                            on_change=S.set_price_currency,
                        ),
                    ),
                    width="100%",
                    spacing="3",
                ),
                rx.hstack(
                    _labelled(
                        "Charged",
                        rx.select.root(
                            rx.select.trigger(id="price-interval", width="100%"),
                            rx.select.content(*[rx.select.item(label, value=key) for key, label in INTERVAL_CHOICES]),
                            value=S.price_interval,
                            on_change=S.set_price_interval,
                        ),
                    ),
                    rx.cond(
                        S.price_interval != ONE_OFF,
                        _labelled(
                            "Every how many (1 = every interval)",
                            rx.input(
                                name="interval_count",
                                default_value="1",
                                input_mode="numeric",
                                width="100%",
                                id="price-interval-count",
                            ),
                        ),
                    ),
                    width="100%",
                    spacing="3",
                ),
                _labelled(
                    "Nickname (optional, only your team sees it)",
                    rx.input(name="nickname", max_length=MAX_NICKNAME, width="100%", id="price-nickname"),
                ),
                _problem(),
                _buttons("Add price", "save-price", type="submit"),
                spacing="3",
                width="100%",
                margin_top="0.5em",
            ),
            on_submit=S.save_price,
            key=S.dialog_round.to_string(),
            width="100%",
        ),
        dialog_id="add-price-dialog",
    )


def catalog_dialogs() -> rx.Component:
    return rx.fragment(product_dialog(), archive_dialog(), price_dialog())
