"""Light pieces for table rows: the DOM and class names Radix Themes renders, as plain elements.

A list page mounts 50 rows of six to eight cells. Built from Radix Themes' React components
(Table.Row and Table.Cell, Text, Flex, Badge) and react-moment for each date, the charges list
took about 80 ms of the main thread to mount its rows on this machine (a sidebar click to the
rows painted: issue 14, `bench/ui`). These produce the very same elements and classes, so the
stylesheet and every selector see no difference, without a component per element: `rt-Text
rt-r-size-1` is what `rx.text(size="1")` renders, `data-accent-color` what `color_scheme` sets.
Links keep `rx.link` (client-side navigation) and buttons keep `rx.button` (focus handling).
"""

from __future__ import annotations

import reflex as rx
from reflex.vars.base import Var

# A UTC ISO timestamp as "YYYY-MM-DD HH:mm UTC+hh:mm" in the viewer's own zone, as
# react-moment's `YYYY-MM-DD HH:mm [UTC]Z` printed it: a team across zones reads one moment,
# and the zone is said. Plain JavaScript, evaluated where the row renders.
_LOCAL_TIME_JS = (
    "((s) => {{ if (!s) return ''; const d = new Date(s); if (isNaN(d)) return String(s);"
    " const p = (n) => String(n).padStart(2, '0'); const o = -d.getTimezoneOffset(); const a = Math.abs(o);"
    " return d.getFullYear() + '-' + p(d.getMonth() + 1) + '-' + p(d.getDate()) + ' ' + p(d.getHours()) + ':'"
    " + p(d.getMinutes()) + ' UTC' + (o >= 0 ? '+' : '-') + p(Math.floor(a / 60)) + ':' + p(a % 60); }})({value})"
)


def cell(*children: rx.Component | rx.Var | str, **props: object) -> rx.Component:
    """`<td class="rt-TableCell">`, as `rx.table.cell` renders it."""
    return rx.el.td(*children, class_name="rt-TableCell", **props)  # type: ignore[arg-type]


def row(*cells: rx.Component, class_name: str = "", **props: object) -> rx.Component:
    """`<tr class="rt-TableRow …">`, as `rx.table.row` renders it."""
    return rx.el.tr(*cells, class_name=f"rt-TableRow {class_name}".strip(), **props)  # type: ignore[arg-type]


def stack(*children: rx.Component, gap: str = "0") -> rx.Component:
    """A column of pieces, as `rx.vstack(spacing=gap)` renders it."""
    return rx.el.div(*children, class_name=f"rt-Flex rt-r-fd-column rt-r-ai-start rt-r-gap-{gap} rx-Stack")


def text(
    value: rx.Var | str | rx.Component,
    *,
    size: str | None = None,
    weight: str | None = None,
    color: str | None = None,
    class_name: str = "",
) -> rx.Component:
    """`<p class="rt-Text …">`, as `rx.text(size=…, weight=…, color_scheme=…)` renders it."""
    classes = ["rt-Text", *([f"rt-r-size-{size}"] if size else []), *([f"rt-r-weight-{weight}"] if weight else [])]
    attrs = {"data-accent-color": color} if color else {}
    return rx.el.p(value, class_name=" ".join([*classes, class_name]).strip(), custom_attrs=attrs)


def note(value: rx.Var | str | rx.Component) -> rx.Component:
    """Small grey text (an id, an email under a name), as `rx.text(size="1", color_scheme="gray")`."""
    return text(value, size="1", color="gray")


def badge(label: rx.Var[str] | str, color: rx.Var[str] | str, *, class_name: str = "") -> rx.Component:
    """A small soft badge, as `rx.badge(color_scheme=color, variant="soft")` renders it."""
    return rx.el.span(
        label,
        class_name=f"rt-reset rt-Badge rt-r-size-1 rt-variant-soft {class_name}".strip(),
        custom_attrs={"data-accent-color": color},
    )


def local_time_text(iso_value: rx.Var[str]) -> rx.Var[str]:
    """The timestamp's words in the viewer's zone (see `_LOCAL_TIME_JS`)."""
    value = Var.create(iso_value)
    return Var(
        _js_expr=_LOCAL_TIME_JS.format(value=value._js_expr),
        _var_type=str,
        _var_data=value._get_all_var_data(),
    )


def local_time(iso_value: rx.Var[str]) -> rx.Component:
    """`<time class="local-time" datetime=…>` in the viewer's own zone, which it names: a team
    across zones reads the same moment, and nobody takes a local time for the server's."""
    return rx.el.time(local_time_text(iso_value), date_time=iso_value, class_name="local-time")
