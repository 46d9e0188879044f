"""Every page compiles: a broken component fails here in seconds, not at `make run`."""

from __future__ import annotations

import subprocess
import sys

from services.config import PROJECT_ROOT

COMPILE = """
import traceback
from reflex_components_lucide.icon import DynamicIcon

dynamic = []
make_dynamic = DynamicIcon.create.__func__

def noting_where(cls, *children, **props):
    dynamic.append(next((f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}" for f in reversed(traceback.extract_stack())
                         if "/billy_app/" in f.filename), "outside billy_app"))
    return make_dynamic(cls, *children, **props)

DynamicIcon.create = classmethod(noting_where)
from billy_app.billy_app import app
app._compile(dry_run=True, use_rich=False)
print("dynamic icons:", ",".join(sorted(set(dynamic))))
print("pages:", ",".join(sorted(app._pages)))
"""


def test_the_app_and_every_page_compile() -> None:
    # A fresh interpreter: Reflex keeps compiled pages and states in process-wide registries.
    done = subprocess.run(
        [sys.executable, "-c", COMPILE], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    pages = done.stdout.split("pages:", 1)[1].strip().split(",")
    # An icon named by a Var compiles to lucide's DynamicIcon: every lucide icon joins the build as
    # its own chunk (1,600 more files to bundle and compress) and the page fetches the icon after
    # it renders. Name each icon outright (`status_callout` picks between two).
    dynamic = done.stdout.split("dynamic icons:", 1)[1].split("\n", 1)[0].strip()
    assert not dynamic, f"icons named by a Var at {dynamic}"
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
