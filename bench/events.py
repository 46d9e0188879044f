"""What the event gate costs: one signed-in event through Reflex's real pipeline, with and without it.

Every websocket event now verifies the tab's session (a JWT check and one store read) and
validates the handler's arguments before the handler runs. This times a light handler (the
refund dialog's mode switch with no charge open) so the gate's share is visible, on SQLite.

    python -m bench.events [--events 400]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from bench.common import percentile, print_facts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=400)
    args = parser.parse_args()
    print_facts()

    data = Path(tempfile.mkdtemp(prefix="billy-bench-events-"))
    os.environ.update(BILLY_DATA_DIR=str(data), BILLY_DATABASE_URL=f"sqlite:///{data / 'billy.db'}")
    from services.cli import migrate

    migrate()
    from billy_app.billy_app import app
    from billy_app.event_gate import EventGate
    from billy_app.state.refund import RefundState
    from services import identity, organization
    from tests.reflex_events import event_pipeline

    organization.signup("Bench Ltd", "pro", "owner@example.com", "a-long-bench-password")
    cookie = f"{identity.ACCESS_COOKIE}={identity.login('owner@example.com', 'a-long-bench-password').access}"

    def run(label: str) -> None:
        with event_pipeline() as pipeline:
            tab = pipeline.tab(cookie, path="/charges")
            for _ in range(20):  # warm-up
                tab.send(RefundState, "set_mode", {"mode": "full"})
            samples = []
            for i in range(args.events):
                started = time.perf_counter()
                tab.send(RefundState, "set_mode", {"mode": "full" if i % 2 else "partial"})
                samples.append((time.perf_counter() - started) * 1000)
        print(
            f"{label:<14} p50 {percentile(samples, 50):6.2f} ms   p95 {percentile(samples, 95):6.2f} ms"
            f"   ({args.events} events)"
        )

    run("with the gate")
    gates = [m for m in app._middlewares if isinstance(m, EventGate)]
    for gate in gates:
        app._middlewares.remove(gate)
    run("without it")


if __name__ == "__main__":
    main()
