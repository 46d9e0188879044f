"""A heavy picture drawn just after the page around it (`assets/after_paint.jsx`)."""

from __future__ import annotations

import reflex as rx


class AfterPaint(rx.Component):
    """Its children mounted one frame after the rest of the page (`assets/after_paint.jsx`): for
    a chart, whose mount measures its box and labels, so the numbers around it paint first. A
    box of `height` pixels holds its place meanwhile."""

    library = "$/public/after_paint.jsx"
    tag = "AfterPaint"

    height: rx.Var[int]


after_paint = AfterPaint.create
