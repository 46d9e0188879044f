"""The control plane's public web app: signup, the slug check, Billy's own Stripe webhook, health.

A thin edge over `controlplane.lifecycle.ControlPlane`: each route reads its input, calls one
lifecycle method and turns the answer into a page or a redirect. Signup ends with a redirect to
the new instance's single-use hand-over address, so the Owner arrives on their own Billy's
onboarding wizard signed in. A Billy session belongs to an instance, on that instance's own host
(cookies there are host-only), never to the parent domain every organisation shares; the control
plane's only cookie is the Owner's account session (controlplane/account.py), host-only too.

Pages are rendered server-side by Jinja2 (autoescaped), with one small script for the address
suggestion; the form works without it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from controlplane.account import register_account_routes
from controlplane.billing import handle_webhook
from controlplane.lifecycle import ControlPlane, ProvisioningFailed, SignupInvalid, suggest_slug
from controlplane.pages import SCRIPTED_HEADERS, PriceList, monthly_price, page, redirect
from services.errors import BillyError
from services.plans import PLANS

log = logging.getLogger("billy.controlplane.web")

FORM_FIELDS = ("org_name", "slug", "plan", "owner_name", "email")  # kept on a refused form; never the password
TOO_MANY_SIGNUPS = (
    "Several organisations were created from your network in the last hour, so this one waits: try again "
    "in an hour. Already signed up? Open your Billy from its address, or manage it at /account."
)


@dataclass(frozen=True)
class PlanCard:
    key: str
    label: str
    price: str
    limits: str


def plan_cards(amounts: Mapping[str, tuple[int, str]]) -> list[PlanCard]:
    """Each plan as signup shows it: its price a month in Billy's Stripe account (what Stripe will
    charge, not a copy in code) and what it holds, in the instance's own wording."""
    return [
        PlanCard(plan.key, plan.label, monthly_price(*amounts[plan.key]) if plan.key in amounts else "", plan.limits)
        for plan in PLANS.values()
    ]


def create_app(
    plane: ControlPlane,
    *,
    address_suffix: str,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    signups_per_hour: int | None = None,
    public_url: str | None = None,
) -> FastAPI:
    """The web app over `plane`. `address_suffix` is what follows the slug in an organisation's
    address as people type it (`agentbilly.ai`, or `localhost:8000` locally); `clock` is the
    lifecycle's `now` (a test clock in tests); `public_url` is the control plane's own address
    (default `http://{address_suffix}`), where the account pages' mailed links point."""
    app = FastAPI(title="Agent Billy control plane", docs_url=None, redoc_url=None, openapi_url=None)
    prices = PriceList(plane.billing)
    signups = MovingWindowRateLimiter(MemoryStorage())
    # New organisations per client address and hour (`BILLY_CONTROLPLANE_SIGNUPS_PER_HOUR`): each one
    # starts an instance and a customer in Billy's Stripe account. Only signups that went through
    # count, so a person correcting the form is never stopped by it.
    signup_limit = parse(f"{signups_per_hour or plane.settings.signups_per_hour}/hour")
    register_account_routes(app, plane, clock, public_url=public_url or f"http://{address_suffix}", prices=prices)

    def signup_page(values: dict[str, str], errors: dict[str, str], problem: str = "", status: int = 200) -> Response:
        return page(
            "signup.html",
            status,
            scripts=True,
            values=values,
            errors=errors,
            problem=problem,
            plans=plan_cards(prices.amounts()),
            host_suffix=address_suffix,
        )

    @app.get("/", response_class=HTMLResponse)
    def signup_form(plan: str = "pro") -> Response:
        return signup_page({"plan": plan if plan in PLANS else "pro"}, {})

    @app.get("/api/slug")
    def slug_check(slug: str = "", org_name: str = "") -> JSONResponse:
        """As the person types: a suggested address from the name, and what is wrong with the one typed."""
        problem = plane.address_problem(slug) if slug else ""
        return JSONResponse({"suggested": suggest_slug(org_name), "problem": problem}, headers=SCRIPTED_HEADERS)

    @app.post("/signup")
    async def signup(request: Request) -> Response:
        form = await request.form()
        values = {key: str(form.get(key, "")) for key in (*FORM_FIELDS, "password")}
        kept = {key: values[key] for key in FORM_FIELDS}
        # The client's address: behind Caddy, uvicorn takes it from X-Forwarded-For, which it trusts
        # from the loopback proxy only (its `forwarded_allow_ips`).
        client = request.client.host if request.client else "unknown"
        if not signups.test(signup_limit, "signup", client):
            return signup_page(kept, {}, TOO_MANY_SIGNUPS, 429)
        try:
            done = await run_in_threadpool(
                plane.sign_up,
                org_name=values["org_name"],
                slug=values["slug"].strip(),
                plan=values["plan"],
                owner_name=values["owner_name"],
                email=values["email"],
                password=values["password"],
                now=clock(),
            )
        except SignupInvalid as exc:
            return signup_page(kept, {exc.field: exc.message}, "Please correct the field marked below.", 422)
        except ProvisioningFailed as exc:
            log.warning("signup of %s stopped: %s", kept["slug"], exc.code)
            return signup_page(kept, {}, exc.message, 503)
        except BillyError as exc:
            return signup_page(kept, {}, exc.message, 400)
        signups.hit(signup_limit, "signup", client)
        # The hand-over address signs the Owner in once, within 60 seconds: go there at once.
        return redirect(done.handover_url)

    @app.post("/stripe/webhook")
    async def stripe_webhook(request: Request) -> Response:
        payload = await request.body()
        try:
            outcome = await run_in_threadpool(
                handle_webhook, plane, payload, request.headers.get("stripe-signature", ""), clock()
            )
        except BillyError as exc:
            return JSONResponse({"ok": False, "error": exc.message}, status_code=400)
        return JSONResponse({"ok": True, "outcome": outcome})

    @app.get("/healthz", response_class=PlainTextResponse)
    def healthz() -> str:
        return "ok"

    return app
