"""The Owner's account pages: sign in with a mailed link, then change plan, cancel, reactivate,
or open their Billy. The lifecycle's methods, made something a person can do.

Why a mailed link and no password: the control plane keeps no password (the instance holds the
Owner's), and a link to the Owner's mailbox proves the same thing the instance's own password reset
does. A link works once, for 15 minutes, and only its hash is stored.

The session is a signed cookie on the control plane's own host: httpOnly, SameSite=Lax, and never
a Domain attribute, because every organisation lives on a subdomain of the same parent and a
cookie set for the parent would reach all of them. It names one organisation and lasts an hour
by the app's clock. Every change is a POST that must come from a page of this site (Origin, else
Referer), with SameSite as the second line, and calls one lifecycle method with the app's clock.

Asking for a link answers the same words whether or not the email owns the address, and the
lookup and the mail happen after the answer has gone, so neither the words nor the time taken
tell anyone who has an account. Asking is limited per email and per address (in this process's
memory) so the form cannot be used to flood an Owner's mailbox.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any, cast
from urllib.parse import urlencode

import sqlalchemy as sa
from fastapi import BackgroundTasks, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, Response
from itsdangerous import BadSignature, URLSafeSerializer
from limits import parse
from limits.storage import MemoryStorage
from limits.strategies import MovingWindowRateLimiter
from sqlmodel import col, select

from controlplane.billing import BillingFailed
from controlplane.config import session_key
from controlplane.lifecycle import KEEP_AFTER_CANCEL, LIVE, ControlPlane, NotAllowed
from controlplane.mail import account_link, when_words
from controlplane.pages import PriceList, monthly_price, page, redirect
from controlplane.provisioning import slug_problem
from controlplane.store import AccountLink, Organisation, OrgState, Store, record
from services.errors import BillyError, ValidationFailed
from services.identity import normalize_email
from services.origins import origins_of, posted_from
from services.plans import PLANS

log = logging.getLogger("billy.controlplane.account")

LINK_LIFETIME = timedelta(minutes=15)
SESSION_LIFETIME = timedelta(hours=1)
SESSION_COOKIE = "billy_cp_account"
COOKIE_PATH = "/account"  # the cookie goes nowhere else, not even to signup
REQUEST_LIMIT = "5/15 minutes"  # links asked for, per email and per address
SIGNED_IN_STATES = (*LIVE, OrgState.CANCELLED)  # a deleted organisation has no Owner left to sign in

SENT = "If that address owns an organisation, we sent a link to its Owner's email. It works once, for 15 minutes."
DONE = {
    "plan": "Your plan is changed and its limits apply now. Billy's invoices follow its price from here on.",
    "cancelled": "Cancelled. Your Billy is scaled to zero; its data is kept until the date below.",
    "reactivated": "Reactivated. Your Billy is running again with its data as it was.",
}
CROSS_SITE = "This form was sent from another site, so it was refused. Open your account page here and try again."


class LinkRefused(BillyError):
    """A sign-in link that opens nothing; the message says why and what to do."""

    code = "link_refused"


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class SignInLinks:
    """Single-use sign-in links: a random token, signed (so a forged one costs no database read),
    of which the store keeps only the hash."""

    def __init__(self, store: Store, key: str) -> None:
        self.store = store
        self._signer = URLSafeSerializer(key, salt="billy-controlplane:account-link")

    def issue(self, slug: str, now: datetime) -> tuple[str, datetime]:
        """A new link for `slug`'s Owner: the value for the URL, and when it stops working."""
        token = secrets.token_urlsafe(32)
        expires_at = now + LINK_LIFETIME
        with self.store.session() as session:
            # Spent and expired links are kept a day (for a look after a complaint), then dropped.
            session.execute(sa.delete(AccountLink).where(col(AccountLink.expires_at) < now - timedelta(days=1)))
            session.add(AccountLink(org_slug=slug, token_hash=_digest(token), created_at=now, expires_at=expires_at))
            record(session, slug, "account.link_sent", now)
        return self._signer.dumps({"t": token, "s": slug}), expires_at

    def spend(self, signed: str, now: datetime) -> str:
        """The slug the link signs in to, spent at `now`; `LinkRefused` saying why not."""
        try:
            payload = self._signer.loads(signed)
        except BadSignature:
            raise LinkRefused("This link is not valid: it may have been cut short when it was copied.") from None
        token = payload.get("t") if isinstance(payload, dict) else None
        if not isinstance(token, str):
            raise LinkRefused("This link is not valid.")
        with self.store.session() as session:
            row = session.exec(select(AccountLink).where(col(AccountLink.token_hash) == _digest(token))).first()
            if row is None or row.org_slug != payload.get("s"):
                raise LinkRefused("This link is not valid.")
            if row.used_at is not None:
                raise LinkRefused("This link was already used: each link signs in once.")
            if now >= row.expires_at:
                raise LinkRefused("This link has expired: links work for 15 minutes.")
            spent = cast(
                sa.CursorResult[Any],
                session.execute(
                    sa.update(AccountLink)
                    .where(col(AccountLink.id) == row.id, col(AccountLink.used_at).is_(None))
                    .values(used_at=now)
                ),
            )
            if spent.rowcount != 1:  # another click spent it a moment ago
                raise LinkRefused("This link was already used: each link signs in once.")
            record(session, row.org_slug, "account.signed_in", now)
        return row.org_slug


class Sessions:
    """The signed session cookie's value: one organisation, until an hour after sign-in by the app's clock."""

    def __init__(self, key: str) -> None:
        self._signer = URLSafeSerializer(key, salt="billy-controlplane:account-session")

    def open(self, slug: str, now: datetime) -> str:
        return self._signer.dumps({"s": slug, "x": int((now + SESSION_LIFETIME).timestamp())})

    def slug(self, value: str | None, now: datetime) -> str:
        """The organisation a cookie is signed in to ("" for none, forged or expired)."""
        if not value:
            return ""
        try:
            payload = self._signer.loads(value)
        except BadSignature:
            return ""
        if not isinstance(payload, dict):
            return ""
        slug, until = payload.get("s"), payload.get("x")
        if not isinstance(slug, str) or not isinstance(until, int) or now.timestamp() >= until:
            return ""
        return slug


class RequestLimit:
    """How often a link may be asked for, per email and per address, counted in this process's
    memory: each ask is counted whether or not it matched, so the limit says nothing about accounts."""

    def __init__(self, rate: str = REQUEST_LIMIT) -> None:
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._item = parse(rate)

    def allow(self, email: str, slug: str) -> bool:
        by_email = self._limiter.hit(self._item, "account-link-email", email)
        by_slug = self._limiter.hit(self._item, "account-link-slug", slug)
        return by_email and by_slug


def from_our_pages(request: Request, origins: Collection[str]) -> bool:
    """CSRF defence: the instance's own rule (services.origins), for the control plane's address."""
    return posted_from(request.headers.get("origin", ""), request.headers.get("referer", ""), origins)


def typed_slug(typed: str) -> str:
    """The slug in what the person typed: `acme`, `acme.agentbilly.ai` or a pasted `https://acme.…/`."""
    text = re.sub(r"^[a-z][a-z0-9+.-]*://", "", typed.strip().lower())
    return re.split(r"[./:]", text, maxsplit=1)[0]


@dataclass(frozen=True)
class PlanChoice:
    key: str
    label: str
    price: str
    limits: str
    current: bool
    offered: bool


def plan_choices(org: Organisation, amounts: dict[str, tuple[int, str]]) -> list[PlanChoice]:
    """The three plans with Stripe's price. The current plan is marked and not offered, except
    before a plan was ever chosen: choosing the trial's own plan is how a trial (or a read-only
    Billy after it) keeps going on it."""
    chosen = org.plan_chosen_at is not None
    return [
        PlanChoice(
            plan.key,
            plan.label,
            monthly_price(*amounts[plan.key]) if plan.key in amounts else "",
            plan.limits,
            current=plan.key == org.plan,
            offered=plan.key != org.plan or not chosen,
        )
        for plan in PLANS.values()
    ]


def state_words(org: Organisation, now: datetime) -> str:
    """Where the organisation is, in the words its Owner needs (with the dates that matter)."""
    state = OrgState(org.state)
    if state == OrgState.TRIALING:
        return f"On its free trial until {when_words(org.trial_ends_at)}."
    if state == OrgState.ACTIVE:
        return "Active."
    if state == OrgState.READ_ONLY:
        return f"Read-only since its trial ended on {when_words(org.trial_ends_at)}: choose a plan to open it again."
    if state == OrgState.PAST_DUE:
        return "Past due: Billy's last invoice for it was not paid."
    if state == OrgState.CANCELLED:
        if org.delete_after is not None and now < org.delete_after:
            return (
                f"Cancelled on {when_words(org.cancelled_at)}: scaled to zero. "
                f"Deleted on {when_words(org.delete_after)} unless reactivated."
            )
        return (
            f"Cancelled on {when_words(org.cancelled_at)}; its data was kept until {when_words(org.delete_after)} "
            "and is being deleted."
        )
    if state == OrgState.DELETED:
        return (
            f"Deleted on {when_words(org.deleted_at)}: its instance, database, backups and secrets are gone for good."
        )
    return "Still being set up."


def _refused_status(exc: BillyError) -> int:
    if isinstance(exc, ValidationFailed):
        return 400
    if isinstance(exc, NotAllowed):
        return 409
    return 503 if isinstance(exc, BillingFailed) else 502


def register_account_routes(
    app: FastAPI,
    plane: ControlPlane,
    clock: Callable[[], datetime],
    *,
    public_url: str,
    prices: PriceList | None = None,
) -> None:
    """`/account…` on `app`: the sign-in form and link, the account page and its actions.

    `public_url` is the control plane's own address as browsers reach it: the links mailed point
    there, forms must post from there, and the cookie is Secure when it is https."""
    key = session_key(plane.settings)
    prices = prices or PriceList(plane.billing)
    links = SignInLinks(plane.store, key)
    sessions = Sessions(key)
    limit = RequestLimit()
    origins = frozenset(origins_of(public_url))
    secure = public_url.startswith("https://")
    base = public_url.rstrip("/")

    def signed_in(request: Request, slug: str) -> Organisation | None:
        """The organisation, if this browser's session is for it."""
        if not slug or sessions.slug(request.cookies.get(SESSION_COOKIE), clock()) != slug:
            return None
        return plane.store.org(slug)

    def to_sign_in(slug: str = "") -> Response:
        """To the form, the address filled in: an instance's Settings → Plan links to `/account/<slug>`."""
        where = f"/account?{urlencode({'address': slug})}" if slug and not slug_problem(slug) else "/account"
        return redirect(where)

    def formpage(
        status: int = 200, *, values: dict[str, str] | None = None, errors: dict[str, str] | None = None, **extra: Any
    ) -> Response:
        return page(
            "account_signin.html",
            status,
            values=values or {},
            errors=errors or {},
            base_domain=plane.settings.base_domain,
            **extra,
        )

    def accountpage(org: Organisation, status: int = 200, *, problem: str = "", done: str = "") -> Response:
        now = clock()
        amounts = prices.amounts()
        state = OrgState(org.state)
        plan = PLANS.get(org.plan)
        return page(
            "account.html",
            status,
            org=org,
            address=org.instance_url or f"https://{org.slug}.{plane.settings.base_domain}",
            plan_label=plan.label if plan else org.plan,
            plan_price=monthly_price(*amounts[org.plan]) if org.plan in amounts else "",
            state=state_words(org, now),
            live=state in LIVE,
            deleted=state == OrgState.DELETED,
            can_reactivate=state == OrgState.CANCELLED and org.delete_after is not None and now < org.delete_after,
            choices=plan_choices(org, amounts),
            problem=problem,
            done=DONE.get(done, ""),
        )

    def guarded(request: Request, slug: str) -> Organisation | Response:
        """A POST's organisation, or the answer refusing it: another site's form, or no session for `slug`."""
        if not from_our_pages(request, origins):
            return formpage(403, problem=CROSS_SITE)
        org = signed_in(request, slug)
        return org if org is not None else to_sign_in(slug)

    def acted(org: Organisation, doing: Callable[[], Any], done: str) -> Response:
        """Run one lifecycle change; its outcome on the page after a redirect, or its refusal now."""
        try:
            doing()
        except BillyError as exc:
            return accountpage(plane.org(org.slug), _refused_status(exc), problem=exc.message)
        return redirect(f"/account/{org.slug}?{urlencode({'done': done})}")

    def send_link(email: str, slug: str, now: datetime) -> None:
        """After the answer has gone: a link only when `email` owns `slug`, else nothing at all."""
        org = plane.store.org(slug)
        if org is None or org.state not in SIGNED_IN_STATES:
            return
        if not hmac.compare_digest(org.owner_email.encode(), email.encode()):
            return
        signed, expires_at = links.issue(slug, now)
        url = f"{base}/account/open?{urlencode({'token': signed})}"
        try:
            plane.mailer.send(account_link(org, url, expires_at))
        except BillyError as exc:  # nobody waits for this answer: the log is where it shows
            log.warning("account sign-in link for %s not sent: %s", slug, exc.code)

    @app.get("/account", response_class=HTMLResponse)
    def ask_form(request: Request, address: str = "") -> Response:
        return formpage(
            values={"address": address[:60]}, signed_in_as=sessions.slug(request.cookies.get(SESSION_COOKIE), clock())
        )

    @app.post("/account")
    def ask_for_link(
        background: BackgroundTasks,
        email: Annotated[str, Form()] = "",
        address: Annotated[str, Form()] = "",
    ) -> Response:
        values = {"email": email.strip(), "address": address.strip()}
        errors: dict[str, str] = {}
        typed_email = ""
        if not values["email"]:
            errors["email"] = "Enter the email address you signed up with."
        else:
            try:
                typed_email = normalize_email(values["email"])
            except ValidationFailed as exc:
                errors["email"] = exc.message
        slug = typed_slug(values["address"])
        if not slug:
            errors["address"] = "Enter your Billy's address, the name before the first dot."
        elif slug_problem(slug):
            errors["address"] = slug_problem(slug)
        if errors:
            return formpage(422, values=values, errors=errors, problem="Please correct the fields marked below.")
        if not limit.allow(typed_email, slug):
            return formpage(
                429,
                values=values,
                problem="Links for that email or address were asked for too often. Wait 15 minutes and try again.",
            )
        background.add_task(send_link, typed_email, slug, clock())
        return formpage(sent=SENT)

    @app.get("/account/open", response_class=HTMLResponse)
    def open_link(request: Request, token: str | None = None) -> Response:
        if token is None:  # "open" is an allowed slug: without a token this is that organisation's page
            return show_account(request, "open")
        now = clock()
        try:
            slug = links.spend(token, now)
        except LinkRefused as exc:
            return formpage(400, problem=f"{exc.message} Ask for a new link below.")
        response = redirect(f"/account/{slug}")
        # Host-only (no Domain): the parent domain is shared by every organisation's own host.
        response.set_cookie(
            SESSION_COOKIE,
            sessions.open(slug, now),
            max_age=int(SESSION_LIFETIME.total_seconds()),
            path=COOKIE_PATH,
            httponly=True,
            secure=secure,
            samesite="lax",
        )
        return response

    @app.post("/account/sign-out")
    def sign_out(request: Request) -> Response:
        if not from_our_pages(request, origins):
            return formpage(403, problem=CROSS_SITE)
        response = to_sign_in()
        response.delete_cookie(SESSION_COOKIE, path=COOKIE_PATH, httponly=True, secure=secure, samesite="lax")
        return response

    @app.get("/account/{slug}", response_class=HTMLResponse)
    def show_account(request: Request, slug: str, done: str = "") -> Response:
        org = signed_in(request, slug)
        return accountpage(org, done=done) if org is not None else to_sign_in(slug)

    @app.post("/account/{slug}/plan")
    def change_plan(request: Request, slug: str, plan: Annotated[str, Form()] = "") -> Response:
        org = guarded(request, slug)
        if isinstance(org, Response):
            return org
        return acted(org, lambda: plane.change_plan(slug, plan, clock()), "plan")

    @app.get("/account/{slug}/cancel", response_class=HTMLResponse)
    def confirm_cancel(request: Request, slug: str) -> Response:
        org = signed_in(request, slug)
        if org is None:
            return to_sign_in(slug)
        if org.state not in LIVE:
            return redirect(f"/account/{slug}")
        return page("account_cancel.html", org=org, delete_on=when_words(clock() + KEEP_AFTER_CANCEL))

    @app.post("/account/{slug}/cancel")
    def cancel(request: Request, slug: str, confirm: Annotated[str, Form()] = "") -> Response:
        org = guarded(request, slug)
        if isinstance(org, Response):
            return org
        if confirm != "yes":  # only the confirmation page's button cancels
            return redirect(f"/account/{slug}/cancel")
        return acted(org, lambda: plane.cancel(slug, clock(), reason="requested by the Owner"), "cancelled")

    @app.post("/account/{slug}/reactivate")
    def reactivate(request: Request, slug: str) -> Response:
        org = guarded(request, slug)
        if isinstance(org, Response):
            return org
        return acted(org, lambda: plane.reactivate(slug, clock()), "reactivated")

    @app.post("/account/{slug}/open-billy")
    def open_billy(request: Request, slug: str) -> Response:
        org = guarded(request, slug)
        if isinstance(org, Response):
            return org
        if org.state not in LIVE:
            words = state_words(org, clock())
            return accountpage(org, 409, problem=f"Your Billy cannot be opened now. {words}")
        try:
            url = plane.writer.handover(plane.spec(org))
        except BillyError as exc:
            return accountpage(org, _refused_status(exc), problem=exc.message)
        # A single-use sign-in that lives 60 seconds: the browser follows it at once.
        return redirect(url)


__all__ = ["LinkRefused", "RequestLimit", "Sessions", "SignInLinks", "register_account_routes"]
