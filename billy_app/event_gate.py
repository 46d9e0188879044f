"""The gate every websocket event passes before any handler, or Reflex's own hydrate, sees state.

Reflex keys a tab's state by a token the browser keeps (sessionStorage, the websocket URL),
not by who is signed in. So the gate does two things for every event, whatever its handler,
including handlers added later:

1. **Binds the tab's state to the session that filled it.** It verifies the access cookie the
   connection carries (signature, expiry, the store's word on member and sign-in) and compares
   member, sign-in and role with the ones the state was filled under. On any difference (a
   sign-out, another member signing in in that tab, a replayed token with no cookie, a role
   change) every Billy substate is reset before anything is sent, so a later hydrate can only
   carry what the current session filled in.
2. **Checks the event's arguments against the handler's declared signature** (types, sizes,
   no lone surrogates), and refuses Reflex's generic setters (`setvar`, client-storage writes),
   which Billy's pages never use. A malformed event gets a plain message and no traceback; a
   signed-in member's forbidden event is audited as `denied`.
"""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, get_type_hints

import pydantic
import reflex as rx
from reflex.app import App
from reflex.middleware import Middleware
from reflex.state import BaseState, State, StateUpdate
from reflex_base.event import Event, EventHandler
from reflex_base.registry import RegistrationContext

from billy_app.blocking import in_thread
from billy_app.state.session import SessionState, actor_of_connection, remember_event_actor
from services import guard
from services.errors import NotAuthenticated
from services.logging_setup import client_text
from services.permissions import Actor

log = logging.getLogger(__name__)

MAX_TEXT = 20_000  # characters in one string argument (a note, a search, a pasted stack trace)
MAX_ITEMS = 200  # entries in one list or dict argument
MAX_DEPTH = 4  # nesting of lists and dicts

# Reflex's generic setters: Billy declares every handler it needs, so these are never legitimate.
_SETVAR = "setvar"
_CLIENT_STORAGE = "update_vars_internal"


class MalformedEvent(ValueError):
    """An event whose arguments do not match what its handler declares."""


# --- 1. the tab's state belongs to one session ---------------------------------------------------


@functools.cache
def billy_state_classes() -> tuple[type[BaseState], ...]:
    """Every state class Billy defines (Reflex's own internal states hold nothing private)."""
    found: list[type[BaseState]] = []
    pending: list[type[BaseState]] = [State]
    while pending:
        cls = pending.pop()
        for sub in cls.get_substates():
            if sub.__module__.startswith("billy_app."):
                found.append(sub)
            pending.append(sub)
    return tuple(found)


def _verified_actor(root: BaseState) -> Actor | None:
    """The member behind the connection's access cookie, checked against the store; else None."""
    try:
        return actor_of_connection(root.router)
    except NotAuthenticated:
        return None


async def bind_to_session(root: BaseState, actor: Actor | None) -> bool:
    """Reset every Billy substate unless it was filled by this very session; True if it was reset."""
    binding = actor.session_binding if actor else ""
    session = await root.get_state(SessionState)
    if session._bound_session == binding:
        return False
    for cls in billy_state_classes():
        (await root.get_state(cls)).reset()
    session._bound_session = binding
    return True


# --- 2. arguments as declared ----------------------------------------------------------------------


@dataclass(frozen=True)
class Contract:
    """What one handler accepts: each parameter's validator, and which ones it needs."""

    adapters: Mapping[str, pydantic.TypeAdapter[Any]]
    required: frozenset[str]

    def check(self, payload: object) -> dict[str, Any]:
        if not isinstance(payload, dict):
            raise MalformedEvent("the event carried no arguments object")
        unknown = set(payload) - set(self.adapters)
        if unknown:
            raise MalformedEvent(f"unexpected argument {client_text(sorted(map(str, unknown))[0], 40)}")
        missing = self.required - set(payload)
        if missing:
            raise MalformedEvent(f"missing argument {sorted(missing)[0]}")
        checked: dict[str, Any] = {}
        for name, value in payload.items():
            _check_size(value, name, depth=0)
            try:
                checked[name] = self.adapters[name].validate_python(value)
            except pydantic.ValidationError:
                raise MalformedEvent(f"argument {name} has the wrong type") from None
        return checked


def _check_size(value: object, name: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MalformedEvent(f"argument {name} is nested too deeply")
    if isinstance(value, str):
        if len(value) > MAX_TEXT:
            raise MalformedEvent(f"argument {name} is too long")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise MalformedEvent(f"argument {name} is not valid text") from None
    elif isinstance(value, (list, dict)):
        if len(value) > MAX_ITEMS:
            raise MalformedEvent(f"argument {name} has too many entries")
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            _check_size(key, name, depth + 1)
            _check_size(item, name, depth + 1)


@functools.cache
def contract_for(handler: EventHandler) -> Contract:
    """The handler's own signature, read once: its annotations are its input contract."""
    fn = handler.fn
    hints = get_type_hints(fn)
    adapters: dict[str, pydantic.TypeAdapter[Any]] = {}
    required: set[str] = set()
    for index, param in enumerate(inspect.signature(fn).parameters.values()):
        if index == 0:
            continue  # self
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{fn.__qualname__}: event handlers declare each argument")
        adapters[param.name] = pydantic.TypeAdapter(hints.get(param.name, Any))
        if param.default is param.empty:
            required.add(param.name)
    return Contract(adapters, frozenset(required))


def _is_forbidden(handler_name: str, payload: object) -> bool:
    if handler_name == _SETVAR:
        return True
    # Billy keeps nothing in browser storage; Reflex sends this with an empty map on hydrate.
    return handler_name == _CLIENT_STORAGE and not (isinstance(payload, dict) and not payload.get("vars"))


MALFORMED_MESSAGE = "Billy could not read that request, so nothing was done. Reload the page and try again."
FORBIDDEN_MESSAGE = "That action is not available from this page, so nothing was done."


class EventGate(Middleware):
    """Runs before Reflex's hydrate middleware and before every handler (see module docstring)."""

    async def preprocess(self, app: App, state: BaseState, event: Event) -> StateUpdate | None:
        root = state._get_root_state()
        actor = await in_thread(_verified_actor, root)
        # The handler's own checks reuse this answer (the store's word once per event); None
        # also forgets an earlier event's, so a session ended since is never taken for alive.
        remember_event_actor(root.router, actor)
        was_reset = await bind_to_session(root, actor)
        registered = RegistrationContext.get().event_handlers.get(event.name)
        if registered is None:
            return await self._refuse(root, was_reset, MALFORMED_MESSAGE)
        handler_name = event.name.rsplit(".", 1)[-1]
        if _is_forbidden(handler_name, event.payload):
            if actor is not None:
                await in_thread(guard.refuse_event, actor, handler_name)
            log.warning("Refused a %s event (%s)", handler_name, "signed in" if actor else "no session")
            return await self._refuse(root, was_reset, FORBIDDEN_MESSAGE)
        try:
            checked = contract_for(registered.handler).check(event.payload)
        except MalformedEvent as exc:
            guard.note_malformed(handler_name, str(exc))
            return await self._refuse(root, was_reset, MALFORMED_MESSAGE)
        # The handler receives the values as validated (`"3"` for an int becomes 3), never raw input.
        event.payload.clear()
        event.payload.update(checked)
        return None

    @staticmethod
    async def _refuse(root: BaseState, was_reset: bool, message: str) -> StateUpdate:
        """Send what the reset emptied (if anything), and a plain message instead of running."""
        delta: dict[str, Any] = {}
        if was_reset:
            delta = dict(await root._get_resolved_delta())
            root._clean()
        events = Event.from_event_type(rx.toast.error(message, id="billy-refused"))
        return StateUpdate(delta=delta, events=list(events))
