"""Reflex's real event pipeline, in memory: events go through the app's middleware and handlers
exactly as they do behind the websocket, and what would be sent to the browser is kept.

Only the socket is missing: `Tab.send` plays the browser (a tab token, the cookie its
connection carries, the page it is on) and returns the deltas and frontend events the server
emitted for that event and the ones it chained.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from reflex.istate.manager.memory import StateManagerMemory
from reflex.state import BaseState, StateUpdate
from reflex_base.event import Event
from reflex_base.event.processor import BaseStateEventProcessor


@dataclass
class Sent:
    """Everything the server sent to one tab in answer to one event."""

    deltas: list[Mapping[str, Any]] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All of it as the JSON a browser would receive, for `in` checks."""
        return json.dumps([list(self.deltas), [(e.name, e.payload) for e in self.events]], default=str)

    def last(self, state: type[BaseState], var: str) -> Any:
        """The last value of `state.var` sent to the tab (fails if it was not sent)."""
        name, key = state.get_full_name(), f"{var}_rx_state_"
        found = [delta[name][key] for delta in self.deltas if key in delta.get(name, {})]
        assert found, f"{state.__name__}.{var} was not sent"
        return found[-1]

    def toasts(self) -> list[str]:
        sent = (json.dumps(e.payload, default=str) for e in self.events)
        return [text for text in sent if "toast" in text]


class _Namespace:
    """Stands in for Reflex's socket namespace: it records instead of emitting."""

    def __init__(self) -> None:
        self.sent: dict[str, Sent] = {}

    async def emit_update(self, update: StateUpdate, token: str) -> None:
        into = self.sent.setdefault(token, Sent())
        if update.delta:
            into.deltas.append(update.delta)
        into.events.extend(update.events)


class Pipeline:
    """The processor lives on its own loop in a thread, started and stopped by one task (Reflex
    keeps its event context in a context variable that must be reset where it was set)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.namespace = _Namespace()
        self.state_manager = StateManagerMemory()
        self.processor = BaseStateEventProcessor(
            middleware=app, backend_exception_handler=app.backend_exception_handler
        )
        self.processor.configure(state_manager=self.state_manager, event_namespace=self.namespace)  # type: ignore[arg-type]
        self.loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self.loop.run_until_complete, args=(self._main(),), daemon=True)

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        with self.app.set_contexts():
            await self.processor.start()
            self._started.set()
            await self._stop.wait()
            await self.processor.stop()
            await self.state_manager.close()

    def __enter__(self) -> Pipeline:
        self._thread.start()
        self._started.wait(30)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._stop is not None
        self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)
        self.loop.close()

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def tab(self, cookie: str = "", path: str = "/dashboard", token: str | None = None) -> Tab:
        return Tab(self, token or str(uuid.uuid4()), cookie, path)

    def signed_in_tab(self, email: str, password: str, path: str = "/dashboard") -> Tab:
        """A new tab whose connection carries a fresh sign-in of `email`."""
        return self.tab(signed_in_cookie(email, password), path=path)

    def owner_tab(self, path: str = "/dashboard") -> Tab:
        """A new tab signed in as the test instance's Owner (`tests.conftest`)."""
        from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD

        return self.signed_in_tab(OWNER_EMAIL, OWNER_PASSWORD, path)


def signed_in_cookie(email: str, password: str) -> str:
    """The cookie a browser holds after signing in as `email` (a fresh sign-in each time)."""
    from services import identity

    tokens = identity.login(email, password, "127.0.0.1", "pytest-tab")
    return f"{identity.ACCESS_COOKIE}={tokens.access}"


@dataclass
class Tab:
    """One browser tab: its token, the cookie its current connection carries, its page."""

    pipeline: Pipeline
    token: str
    cookie: str
    path: str

    def send(self, state: type[BaseState], handler: str, payload: Mapping[str, Any] | None = None) -> Sent:
        return self.send_named(f"{state.get_full_name()}.{handler}", payload)

    def _event(self, name: str, payload: Any = None) -> Event:
        router_data = {
            "pathname": self.path,
            "query": {},
            "asPath": self.path,
            "headers": {"cookie": self.cookie, "user-agent": "pytest-tab", "origin": "http://localhost:3000"},
            "token": self.token,
            "sid": f"sid-{self.token}",
            "ip": "127.0.0.1",
        }
        return Event(name=name, router_data=router_data, payload={} if payload is None else payload)

    def send_named(self, name: str, payload: Any = None) -> Sent:
        self.pipeline.namespace.sent.pop(self.token, None)
        self.pipeline.run(self._run(self._event(name, payload)))
        return self.pipeline.namespace.sent.pop(self.token, Sent())

    def start(self, state: type[BaseState], handler: str) -> None:
        """Send an event without waiting for it: a page's live follower, which runs until the
        pipeline stops. What it sends collects in `pushed`."""
        self.pipeline.namespace.sent.pop(self.token, None)
        event = self._event(f"{state.get_full_name()}.{handler}")
        self.pipeline.run(self.pipeline.processor.enqueue(self.token, event))

    @property
    def pushed(self) -> Sent:
        """What the server sent this tab since its last `send` or `start` (a follower's pushes)."""
        return self.pipeline.namespace.sent.get(self.token) or Sent()

    async def _run(self, event: Event) -> None:
        future = await self.pipeline.processor.enqueue(self.token, event)
        await asyncio.wait_for(asyncio.shield(future), 30)
        # The events it chained; a live page's follower runs on and is left to it.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(future.wait_all(), 2)

    def hydrate(self) -> Sent:
        from reflex.state import State

        return self.send(State, "hydrate")


@contextmanager
def event_pipeline() -> Iterator[Pipeline]:
    """The app's pipeline, for a synchronous test."""
    from billy_app.billy_app import app

    with Pipeline(app) as pipeline:
        yield pipeline
