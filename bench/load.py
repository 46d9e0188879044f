"""Many signed-in sessions at once: how much slower does each action get? (issue 16)

    python -m bench.load [--sessions 50] [--seconds 60] [--period 2.0] [--customers 500]

Starts the Stripe sandbox (seeded with `--customers`) and a real Billy (production build, as
`make run` runs it), signs an Owner up and connects the demo key in Chromium, waits for the
first sync, then closes the browser. Each session is then a websocket client of its own (its
own sign-in cookie and tab token, speaking Reflex's event protocol as the page's script does)
that does one action every `--period` seconds, cycling through: open the dashboard, open the
charges list, search for a name, open a customer. An action's time runs from sending its
first event until the server's final update for its last event (what the page waits for before
it can paint). Sessions start spread over one period, so the load is even.

The same actions are measured first with one session alone, then with `--sessions` at once.
Target: p95 with 50 sessions within 2× of one session's p95.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.common import load_average, percentile, print_facts
from bench.harness import (
    DATABASES,
    OWNER_EMAIL,
    OWNER_PASSWORD,
    billy_and_sandbox,
    chromium,
    open_tab_socket,
    send_tab_event,
    sign_in,
)

SEARCH_TERMS = ("jane", "smith", "acme", "order", "4242", "lee", "ann", "co")


@dataclass
class Action:
    """A page as a navigation reaches it: its address, and its on_load events in order."""

    name: str
    path: str
    query: dict[str, str]
    events: list[str]


@dataclass
class Timings:
    by_action: dict[str, list[float]] = field(default_factory=dict)
    errors: int = 0

    def add(self, name: str, ms: float) -> None:
        self.by_action.setdefault(name, []).append(ms)

    def every(self) -> list[float]:
        return [ms for samples in self.by_action.values() for ms in samples]


def _actions(customer_ids: list[str]) -> list[Action]:
    """The cycle a session walks through; handler names read from the app's own state classes."""
    from billy_app.state.charges import ChargesState
    from billy_app.state.customer import CustomerState
    from billy_app.state.dashboard import DashboardState
    from billy_app.state.search import SearchState
    from billy_app.state.session import SessionState

    def name(state: type, handler: str) -> str:
        return f"{state.get_full_name()}.{handler}"  # type: ignore[attr-defined]

    member = name(SessionState, "require_member")
    customer = random.choice(customer_ids)
    term = random.choice(SEARCH_TERMS)
    return [
        Action("dashboard", "/dashboard", {}, [member, name(DashboardState, "load")]),
        Action("charges list", "/charges", {}, [member, name(ChargesState, "load")]),
        Action("search", "/search", {"q": term}, [member, name(SearchState, "load")]),
        Action("customer page", f"/customers/{customer}", {}, [member, name(CustomerState, "load")]),
    ]


class Session:
    """One tab: a Socket.IO connection with its own token, sending one action at a time."""

    def __init__(self, url: str, cookie: str, customer_ids: list[str]) -> None:
        self.url, self.cookie, self.customer_ids = url, cookie, customer_ids
        self.token = str(uuid.uuid4())
        self._final: asyncio.Event = asyncio.Event()

    def _on_update(self, data: dict[str, Any]) -> None:
        if data.get("final", True):
            self._final.set()

    async def run(self, until: float, period: float, start_after: float, timings: Timings) -> None:
        sio = await open_tab_socket(self.url, self.cookie, self.token, self._on_update)
        try:
            await asyncio.sleep(start_after)
            for step in itertools.count():
                if time.monotonic() >= until:
                    return
                action = _actions(self.customer_ids)[step % 4]
                began = time.monotonic()
                try:
                    await self._perform(sio, action)
                    timings.add(action.name, (time.monotonic() - began) * 1000)
                except TimeoutError:
                    timings.errors += 1
                await asyncio.sleep(max(0.0, period - (time.monotonic() - began)))
        finally:
            await sio.disconnect()

    async def _perform(self, sio: Any, action: Action) -> None:
        as_path = action.path + ("?" + "&".join(f"{k}={v}" for k, v in action.query.items()) if action.query else "")
        router_data = {"pathname": action.path, "query": action.query, "asPath": as_path}
        for handler in action.events:
            self._final.clear()
            await send_tab_event(sio, handler, router_data)
            await asyncio.wait_for(self._final.wait(), timeout=30)


def _sign_in(url: str) -> str:
    with httpx.Client(base_url=url, follow_redirects=False) as client:
        answer = client.post(
            "/api/auth/login", data={"email": OWNER_EMAIL, "password": OWNER_PASSWORD}, headers={"origin": url}
        )
        assert answer.status_code == 303 and "billy_access" in client.cookies, answer.headers.get("location")
        return f"billy_access={client.cookies['billy_access']}"


async def _measure(url: str, sessions: int, seconds: float, period: float, customer_ids: list[str]) -> Timings:
    cookies = [await asyncio.to_thread(_sign_in, url) for _ in range(sessions)]
    timings = Timings()
    until = time.monotonic() + seconds
    await asyncio.gather(
        *(
            Session(url, cookie, customer_ids).run(until, period, period * n / sessions, timings)
            for n, cookie in enumerate(cookies)
        )
    )
    return timings


def _table(alone: Timings, loaded: Timings, sessions: int) -> list[str]:
    lines = [f"{'action':16} {'1 session p50/p95':>20} {f'{sessions} sessions p50/p95':>22} {'ratio p95':>10}"]
    for name in [*alone.by_action, "all"]:
        one = alone.every() if name == "all" else alone.by_action.get(name, [])
        many = loaded.every() if name == "all" else loaded.by_action.get(name, [])
        if not one or not many:
            continue
        ratio = percentile(many, 95) / max(percentile(one, 95), 0.001)
        lines.append(
            f"{name:16} {percentile(one, 50):8.1f} / {percentile(one, 95):7.1f} ms "
            f"{percentile(many, 50):9.1f} / {percentile(many, 95):7.1f} ms {ratio:9.2f}×"
        )
    lines.append(
        f"actions measured: 1 session {len(alone.every())}, {sessions} sessions {len(loaded.every())}; "
        f"timeouts {alone.errors} / {loaded.errors}"
    )
    return lines


def run(sessions: int, seconds: float, period: float, customers: int, db: str = "sqlite") -> list[str]:
    extra = {"BILLY_LOGIN_LIMIT_PER_ADDRESS": "1000/minute"}  # every session signs in from here
    with billy_and_sandbox("billy-bench-load-", customers=customers, extra_env=extra, db=db) as (handle, app):
        customer_ids = [c.id for c in handle.client().v1.customers.list(params={"limit": 100}).data]
        with chromium() as browser:
            sign_in(browser.new_page(), app, wait_for_first_sync=True)
        print(f"warming up; then 1 session for {seconds:.0f} s, then {sessions} for {seconds:.0f} s", flush=True)
        asyncio.run(_measure(app.url, 2, min(seconds, 10), period, customer_ids))
        alone = asyncio.run(_measure(app.url, 1, seconds, period, customer_ids))
        loaded = asyncio.run(_measure(app.url, sessions, seconds, period, customer_ids))
        print(f"load average after: {load_average()}")
    return _table(alone, loaded, sessions)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__.split("\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long each phase runs")
    parser.add_argument("--period", type=float, default=2.0, help="seconds between one session's actions")
    parser.add_argument("--customers", type=int, default=500, help="customers seeded in the sandbox")
    parser.add_argument("--db", choices=DATABASES, default="sqlite", help="Billy's store")
    args = parser.parse_args(argv)
    print_facts()
    print(f"store: {args.db}")
    lines = run(args.sessions, args.seconds, args.period, args.customers, args.db)
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
