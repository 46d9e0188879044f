"""The signed-in member, re-derived on every event from the httpOnly access cookie.

The websocket handshake carries the browser's cookies; Reflex keeps them server-side
(`router.headers.cookie` is never sent to the page). Each handler asks `actor()` afresh:
the JWT's signature and expiry, then the store's word on the member and the session.

Staying signed in all day: a hidden timer ticks every minute; when the access token has
less than ten minutes left, the page calls the refresh route over HTTP (which sets new
cookies), and the server then closes this websocket so the client's next event reopens
it with a handshake that carries the new cookie. No token is ever in state or in script.

Calling services: a handler runs every service call through `self._call(fn, *args)` (or
`off_loop(fn, *args)` when no caller is involved) and is decorated with `@guarded`, so each
handler does not repeat the same three answers (see `guarded`).
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import inspect
import time
from collections.abc import Callable
from datetime import timedelta
from http.cookies import CookieError, SimpleCookie
from typing import Any, ClassVar, Concatenate, ParamSpec, TypeVar, overload
from urllib.parse import urlencode

import reflex as rx
from reflex.istate.data import RouterData
from reflex_base.event import EventSpec

from billy_app.blocking import in_thread
from billy_app.error_handlers import explained
from services import identity, organization
from services.errors import BillyError, NotAuthenticated
from services.models import utcnow
from services.permissions import Actor, Source, control, role_label
from services.plans import trial_ended_message


def _refresh_ahead() -> timedelta:
    """Refresh with 10 minutes to spare (or half the lifetime, for short test lifetimes)."""
    return min(timedelta(minutes=10), identity.access_ttl() / 2)


def _tick_ms() -> int:
    """Every minute, or often enough to catch a short lifetime's refresh window."""
    return int(min(timedelta(minutes=1), identity.access_ttl() / 4).total_seconds() * 1000)


# Refresh once across tabs (Web Locks), retry once if another tab spent the token first.
REFRESH_SCRIPT = """
(async () => {
  const attempt = () => fetch('/api/auth/refresh', {method: 'POST', credentials: 'same-origin'}).then(r => r.ok);
  const run = async () => (await attempt()) || (await new Promise(r => setTimeout(r, 1000)), await attempt());
  return navigator.locks ? navigator.locks.request('billy-refresh', run) : run();
})()
"""


P = ParamSpec("P")
R = TypeVar("R")
Handler = TypeVar("Handler", bound=Callable[..., Any])


# The entry pages: a recovery that finds the tab already on one of them does not redirect again
# (several on_load handlers of one page can each recover; only the first keeps the deep link).
PUBLIC_PATHS = frozenset({"/login", "/signup", "/invite", "/forgot", "/reset"})


class SessionExpired(Exception):
    """The caller's session is gone or stale. Deliberately not a `BillyError`: a handler's own
    `except BillyError` (which shows a refusal) never swallows it, so it reaches `guarded`."""


async def off_loop(fn: Callable[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R:
    """Run a blocking service call in the app's thread pool (`blocking`), so the event loop
    keeps serving other tabs; a `NotAuthenticated` from it becomes `SessionExpired`."""
    try:
        return await in_thread(fn, *args, **kwargs)
    except NotAuthenticated as exc:
        raise SessionExpired from exc


def cookie_value(cookie_header: str, name: str) -> str | None:
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(cookie_header or "")
    except CookieError:
        return None
    morsel = jar.get(name)
    return morsel.value if morsel else None


def _answer(state: SessionState, exc: Exception, handler: str, toast: bool) -> Any:
    """What a guarded handler sends when it failed with `exc` (see `guarded`)."""
    if isinstance(exc, (SessionExpired, NotAuthenticated)):
        return SessionState.recover
    if not isinstance(exc, BillyError):  # a bug (the person gets an id, never the error) or the store away
        exc = explained(exc, f"{type(state).__name__}.{handler}")
    return rx.toast.error(exc.message, id="billy-problem") if toast else state._show_problem(exc)


@overload
def guarded(handler: Handler, /) -> Handler: ...
@overload
def guarded(*, toast: bool) -> Callable[[Handler], Handler]: ...
def guarded(handler: Handler | None = None, /, *, toast: bool = False) -> Any:
    """Decorate (under `@rx.event`) a handler that calls services, so every failure is answered
    one way instead of in each handler: an ended session recovers (`SessionState.recover`); a
    `BillyError` the handler did not handle itself shows its message where the page shows problems
    (`_show_problem`, or a toast with `toast=True`); anything else is logged with its traceback
    under an error id, and the person sees only the plain message with that id, never the error.
    Generator handlers too: the answer is their last update (reset busy flags in a `finally`)."""
    if handler is None:
        return functools.partial(_guard, toast=toast)
    return _guard(handler, toast=toast)


def _guard(handler: Handler, toast: bool) -> Handler:
    name = handler.__name__
    if inspect.isasyncgenfunction(handler):

        @functools.wraps(handler)
        async def guarded_updates(self: SessionState, *args: Any, **kwargs: Any) -> Any:
            try:
                async for update in handler(self, *args, **kwargs):
                    yield update
            except Exception as exc:  # noqa: BLE001 - each kind is answered in `_answer`
                yield _answer(self, exc, name, toast)

        return guarded_updates  # type: ignore[return-value]
    if not inspect.iscoroutinefunction(handler):
        raise TypeError(f"{handler.__qualname__}: only async handlers call services")

    @functools.wraps(handler)
    async def guarded_handler(self: SessionState, *args: Any, **kwargs: Any) -> Any:
        try:
            return await handler(self, *args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - each kind is answered in `_answer`
            return _answer(self, exc, name, toast)

    return guarded_handler  # type: ignore[return-value]


# The caller verified for the event being handled, and for which connection: an event's handler
# asks for its caller once and then once more for every service it calls (`_call`), each time
# a store read of member, sign-in and organisation; under fifty busy tabs those reads queued
# for the store's connections and the interpreter (bench/load). DESIGN.md asks for the store's
# word once per event, so the first answer serves the rest of the event, for at most
# EVENT_ACTOR_SECONDS (a background task that outlives its event asks afresh).
EVENT_ACTOR_SECONDS = 1.0
_event_actor: contextvars.ContextVar[tuple[tuple[str, str, str, str], float, Actor] | None] = contextvars.ContextVar(
    "billy_event_actor", default=None
)


def _connection_of(router: RouterData) -> tuple[str, str, str, str]:
    """What an Actor is built from: the tab, its access cookie, its address and browser."""
    cookie = cookie_value(router.headers.cookie, identity.ACCESS_COOKIE) or ""
    return router.session.client_token, cookie, router.session.client_ip, router.headers.user_agent


def remember_event_actor(router: RouterData, actor: Actor | None) -> None:
    """The caller just verified for this connection's event (`event_gate`, `SessionState.actor`);
    None: nobody is (the next check asks the store)."""
    _event_actor.set(None if actor is None else (_connection_of(router), time.monotonic(), actor))


def event_actor(router: RouterData) -> Actor | None:
    """The caller verified earlier in this event for this very connection, if recent enough."""
    kept = _event_actor.get()
    if kept is None or time.monotonic() - kept[1] >= EVENT_ACTOR_SECONDS:
        return None
    return kept[2] if kept[0] == _connection_of(router) and kept[0][1] else None


def actor_of_connection(router: RouterData) -> Actor:
    """The member behind a websocket connection's access cookie, checked against the store
    (signature, expiry, member, token version, sign-in); raises `NotAuthenticated`."""
    return identity.verify_access(
        cookie_value(router.headers.cookie, identity.ACCESS_COOKIE),
        Source.DASHBOARD,
        router.session.client_ip,
        router.headers.user_agent,
    )


class SessionState(rx.State):
    """Display data about the caller (not secrets) and the one way handlers learn who calls."""

    # The var this page shows a problem in (`guarded` puts it there); "" shows it as a toast.
    problem_var: ClassVar[str] = ""

    user_email: str = ""
    user_role_label: str = ""
    org_name: str = ""
    signed_in: bool = False
    # How often the page's keep-alive ticks. Set from the instance's token lifetime when a page
    # loads, not baked into the build, so one kept build serves any BILLY_ACCESS_TOKEN_SECONDS.
    keep_alive_ms: int = 60_000
    is_owner: bool = False
    read_only_notice: str = ""  # set while an ended trial keeps Billy read-only
    stripe_key_rejected: bool = False  # Stripe rejects the connected key: the shell's banner
    # Member, sign-in and role that filled this tab's state (`billy_app.event_gate` keeps it true).
    _bound_session: str = ""
    _lists_warmed: bool = False  # `list_warmup` was started for this tab session

    def _cookie(self, name: str) -> str | None:
        return cookie_value(self.router.headers.cookie, name)

    async def actor(self) -> Actor:
        """The verified caller; raises `SessionExpired` when the session is gone or stale. Checked
        against the store once per event (`event_actor`)."""
        if (kept := event_actor(self.router)) is not None:
            return kept
        actor = await off_loop(actor_of_connection, self.router)
        remember_event_actor(self.router, actor)
        return actor

    def _show_problem(self, problem: BillyError) -> EventSpec | None:
        """Show a problem where this page shows problems: in the var `problem_var` names (its
        `<var>_kind` var, if any, becomes "error"), else as a toast. A page that shows some
        problems elsewhere (a refusal, an open dialog) overrides this."""
        if not self.problem_var:
            return rx.toast.error(problem.message, id="billy-problem")
        setattr(self, self.problem_var, problem.message)
        if f"{self.problem_var}_kind" in self.base_vars:
            setattr(self, f"{self.problem_var}_kind", "error")
        return None

    async def _call(self, fn: Callable[Concatenate[Actor, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """`fn(caller, *args, **kwargs)` off the event loop, for the caller this event verified."""
        return await off_loop(fn, await self.actor(), *args, **kwargs)

    @rx.event
    @guarded
    async def require_member(self):
        """on_load of every signed-in page: fill the header, or recover / send to sign-in."""
        self.signed_in = False  # until the caller is verified (an ended session stays so)
        actor = await self.actor()
        org = await off_loop(organization.get_organization)
        self.user_email = actor.email
        self.user_role_label = role_label(actor)
        self.is_owner = control(actor, "team.view").shown
        self.read_only_notice = trial_ended_message(actor.trial_ended_on) if actor.trial_ended_on else ""
        self.org_name = org.name if org else ""
        self.stripe_key_rejected = bool(org and org.stripe_key_rejected)
        self.keep_alive_ms = _tick_ms()
        self.signed_in = True
        if self._lists_warmed:
            return None
        self._lists_warmed = True  # once per tab session: the lists' first pages, while this one idles
        from billy_app.state.list_warmup import ListWarmupState  # it imports the list states, which import this

        return ListWarmupState.warm

    def _sign_in_then_back(self) -> str:
        """The sign-in page, then back here with the same query (an agent's connect link keeps its
        state and challenge through a sign-in)."""
        url = self.router.url
        here = (url.path or "/") + (f"?{url.query}" if url.query else "")
        return "/login?" + urlencode({"next": here})

    @rx.event
    def recover(self):
        """The access token is missing or stale: try the refresh cookie, else sign in."""
        return rx.call_script(REFRESH_SCRIPT, callback=SessionState.after_recovery)

    @rx.event
    def after_recovery(self, ok: bool):
        if ok is True:
            return rx.call_script("window.location.reload()")
        if (self.router.url.path or "/").rstrip("/") in PUBLIC_PATHS:
            return None  # a second handler's recovery, after the first already went to sign-in
        return rx.redirect(self._sign_in_then_back(), replace=True)

    @rx.event
    def keep_alive(self, _tick: str = ""):
        """Every minute: refresh ahead of expiry so a long day never meets a sign-in page."""
        expires = identity.access_expires_at(self._cookie(identity.ACCESS_COOKIE))
        if expires is None or expires - utcnow() > _refresh_ahead():
            return None
        return rx.call_script(REFRESH_SCRIPT, callback=SessionState.after_refresh)

    @rx.event
    async def after_refresh(self, ok: bool):
        if ok is not True:
            return rx.redirect(self._sign_in_then_back(), replace=True)
        # The new cookie reaches this server only with a new handshake: close this socket;
        # the client's next event (the next tick at the latest) opens a fresh one.
        from reflex.utils import prerequisites

        namespace = prerequisites.get_and_validate_app().app.event_namespace
        if namespace is not None:
            asyncio.get_running_loop().call_later(
                0.2, lambda: asyncio.ensure_future(namespace.disconnect(self.router.session.session_id))
            )
        return None


def keep_alive_timer() -> rx.Component:
    """Invisible: fires `keep_alive` every minute (sooner for short token lifetimes) on signed-in pages."""
    return rx.moment(interval=SessionState.keep_alive_ms, on_change=SessionState.keep_alive, display="none")
