"""Every page compiles: a broken component fails here in seconds, not at `make run`."""

from __future__ import annotations

import subprocess
import sys

from services.config import PROJECT_ROOT

COMPILE = """
from billy_app.billy_app import app
app._compile(dry_run=True, use_rich=False)
print("pages:", ",".join(sorted(app._pages)))
"""


def test_the_app_and_every_page_compile() -> None:
    # A fresh interpreter: Reflex keeps compiled pages and states in process-wide registries.
    done = subprocess.run(
        [sys.executable, "-c", COMPILE], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pages = done.stdout.split("pages:", 1)[1].strip().split(",")
    for route in (
        "index",
        "signup",
        "login",
        "onboarding",
        "dashboard",
        "customers",
        "settings/team",
        "settings/plan",
        "settings/roles",
        "settings/sync",
        "settings/audit",
        "settings/stripe",
        "approvals",
        "charges",
        "charges/[charge_id]",
        "subscriptions",
        "invoices",
        "search",
        "invite",
        "forgot",
        "reset",
    ):
        assert route in pages, (route, pages)
