"""The "Edit customer" button and dialog: exactly the fields the member's role may change,
pre-filled with the stored values. A form, so every field reaches the server with the click."""

from __future__ import annotations

import reflex as rx

from billy_app.state.customer import ADDRESS_INPUT, CustomerState

ADDRESS_LABELS = (
    ("line1", "Address line 1"),
    ("line2", "Address line 2"),
    ("city", "City"),
    ("state", "State / region"),
    ("postal_code", "Postal code"),
    ("country", "Country (two letters, e.g. US)"),
)


def _offered(field: str, *children: rx.Component) -> rx.Component:
    """Shown only when the role may change `field` (the server checks again on save)."""
    return rx.cond(CustomerState.edit_fields.contains(field), rx.fragment(*children))


def _input(label: str, name: str, value: rx.Var[str], **props: object) -> rx.Component:
    return rx.vstack(
        rx.text(label, size="2", weight="medium"),
        rx.input(name=name, default_value=value, id=f"edit-{name}", width="100%", **props),
        spacing="1",
        width="100%",
    )


def edit_customer_button() -> rx.Component:
    """Hidden when the role (or an ended trial) lets the member change nothing."""
    return rx.cond(
        CustomerState.can_edit,
        rx.button(
            rx.icon("pencil", size=14),
            "Edit customer",
            variant="soft",
            on_click=CustomerState.start_edit,
            id="edit-customer",
        ),
    )


def customer_edit_dialog() -> rx.Component:
    form = CustomerState.edit_form
    return rx.dialog.root(
        rx.dialog.content(
            rx.dialog.title("Edit customer"),
            rx.dialog.description("Changes are saved in Stripe and shown here at once.", size="2", color_scheme="gray"),
            rx.form(
                rx.vstack(
                    _offered("name", _input("Name", "name", form.name, max_length=256)),
                    _offered("email", _input("Email", "email", form.email, type="email", max_length=512)),
                    _offered("phone", _input("Phone", "phone", form.phone, type="tel", max_length=20)),
                    _offered(
                        "address",
                        *[
                            _input(label, f"{ADDRESS_INPUT}{part}", getattr(form, part))
                            for part, label in ADDRESS_LABELS
                        ],
                    ),
                    _offered(
                        "description",
                        rx.vstack(
                            rx.text("Description", size="2", weight="medium"),
                            rx.text_area(
                                name="description",
                                default_value=form.description,
                                max_length=350,
                                rows="2",
                                width="100%",
                                id="edit-description",
                            ),
                            spacing="1",
                            width="100%",
                        ),
                    ),
                    _offered(
                        "metadata",
                        rx.vstack(
                            rx.text("Metadata (one key = value per line; delete a line to remove it)", size="2"),
                            rx.text_area(
                                name="metadata",
                                default_value=form.metadata,
                                rows="3",
                                width="100%",
                                id="edit-metadata",
                            ),
                            spacing="1",
                            width="100%",
                        ),
                    ),
                    rx.cond(
                        CustomerState.edit_problem != "",
                        rx.callout(
                            CustomerState.edit_problem,
                            color_scheme="red",
                            icon="triangle-alert",
                            id="customer-edit-problem",
                        ),
                    ),
                    rx.hstack(
                        rx.dialog.close(
                            rx.button(
                                "Cancel",
                                variant="soft",
                                color_scheme="gray",
                                type="button",
                                on_click=CustomerState.close_edit,
                            )
                        ),
                        rx.button(
                            rx.cond(CustomerState.edit_saving, rx.spinner(size="1")),
                            "Save",
                            type="submit",
                            disabled=CustomerState.edit_saving,
                            id="save-customer",
                        ),
                        justify="end",
                        width="100%",
                    ),
                    spacing="3",
                    width="100%",
                ),
                on_submit=CustomerState.save_edit,
                key=CustomerState.edit_round.to_string(),
                width="100%",
            ),
            max_width="32em",
        ),
        open=CustomerState.edit_open,
        on_open_change=CustomerState.set_edit_open,
    )
