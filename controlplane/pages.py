"""What the control plane's pages share: the templates, the security headers, Billy's prices.

Signup (controlplane/web.py) and the Owner's account pages (controlplane/account.py) render
through `page`, so both send one policy: nothing loads from elsewhere, no framing, no referrer to
other origins, no caching of pages that show an organisation's state.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, select_autoescape

from controlplane.billing import BillyStripe
from services.errors import BillyError

log = logging.getLogger("billy.controlplane.pages")

TEMPLATES = Environment(
    loader=FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; "
    # form-action reaches other origins: signup and "Open my Billy" end on the organisation's own host.
    "form-action 'self' http: https:"
)
HEADERS = {
    "Content-Security-Policy": _POLICY,
    "X-Content-Type-Options": "nosniff",
    # Not no-referrer: under it browsers send `Origin: null` on a same-site form post, and the
    # account pages' origin check could not tell our own forms from anyone's. Other origins (an
    # organisation's host after the hand-over) get no referrer, so never a token in one.
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
# The signup page's one inline script (the address suggestion) and the check it calls.
SCRIPTED_HEADERS = {**HEADERS, "Content-Security-Policy": f"{_POLICY}; script-src 'unsafe-inline'; connect-src 'self'"}


def page(name: str, status: int = 200, *, scripts: bool = False, **context: Any) -> HTMLResponse:
    """A template rendered with the control plane's headers (`scripts`: the page runs its inline script)."""
    headers = SCRIPTED_HEADERS if scripts else HEADERS
    return HTMLResponse(TEMPLATES.get_template(name).render(**context), status_code=status, headers=headers)


def redirect(where: str) -> RedirectResponse:
    return RedirectResponse(where, status_code=303, headers=HEADERS)


def monthly_price(amount: int, currency: str) -> str:
    """A plan's price as both pages print it: "$79 a month", "79.50 EUR a month"."""
    figure = f"{amount / 100:,.0f}" if amount % 100 == 0 else f"{amount / 100:,.2f}"
    return f"${figure} a month" if currency == "usd" else f"{figure} {currency.upper()} a month"


class PriceList:
    """Billy's prices as Stripe has them, read at most once a minute: every page view would otherwise
    be a Stripe request. An unreachable Stripe shows the plans without prices, never an error page."""

    def __init__(self, billing: BillyStripe, max_age: float = 60) -> None:
        self.billing, self.max_age = billing, max_age
        self._read_at = -max_age
        self._amounts: dict[str, tuple[int, str]] = {}
        self._lock = threading.Lock()

    def amounts(self) -> dict[str, tuple[int, str]]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.max_age:
                try:
                    self._amounts = self.billing.monthly_amounts()
                except BillyError as exc:
                    log.warning("plan prices unavailable: %s", exc.code)
                self._read_at = time.monotonic()
            return self._amounts

    def price(self, plan: str) -> str:
        amounts = self.amounts()
        return monthly_price(*amounts[plan]) if plan in amounts else ""
