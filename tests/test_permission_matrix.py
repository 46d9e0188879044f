"""Every service action × every role, against one reviewed table; every service door authorizes.

`EXPECTED` is the specification a reviewer reads (DESIGN's permission table, per action). An
action added to the code but not here fails, and so does a role that can do more or less
than written. The README shows the same matrix, generated from the role data.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from services.config import PROJECT_ROOT
from services.errors import PermissionDenied
from services.permissions import ACTIONS, ROLES, Actor, Source, authorize, matrix_markdown

R, C, M, OWNER = "read_only", "billing_clerk", "billing_manager", "owner"
EVERYONE = {R, C, M, OWNER}
OWNER_ONLY = {OWNER}

EXPECTED: dict[str, set[str]] = {
    "customers.search": EVERYONE,
    "customers.view": EVERYONE,
    "customers.update": {M, OWNER},
    "customers.update_contact": {C, M, OWNER},
    "products.search": EVERYONE,
    "products.create": {M, OWNER},
    "products.update": {M, OWNER},
    "products.archive": {M, OWNER},
    "prices.create": {M, OWNER},
    "charges.view": EVERYONE,
    "charges.search": EVERYONE,
    "dashboard.view": EVERYONE,
    "subscriptions.search": EVERYONE,
    "subscriptions.preview_change": {M, OWNER},
    "subscriptions.change": {M, OWNER},
    "subscriptions.pause": {M, OWNER},
    "subscriptions.resume": {M, OWNER},
    "subscriptions.cancel": {M, OWNER},
    "subscriptions.reactivate": {M, OWNER},
    "invoices.search": EVERYONE,
    "invoices.create": {M, OWNER},
    "invoices.send": {M, OWNER},
    "invoices.remind": {M, OWNER},
    "invoices.void": {M, OWNER},
    "invoices.mark_uncollectible": {M, OWNER},
    "search.global": EVERYONE,
    "customers.export": EVERYONE,  # Pro and Business only: tests/test_exports.py
    "charges.export": EVERYONE,
    "subscriptions.export": EVERYONE,
    "invoices.export": EVERYONE,
    "reports.export": EVERYONE,
    "reports.failed_payments": EVERYONE,
    "sync.view": EVERYONE,
    "charges.refund": {C, M, OWNER},
    "stripe.connect": OWNER_ONLY,
    "stripe.view": OWNER_ONLY,
    "stripe.recheck": OWNER_ONLY,
    "stripe.rotate": OWNER_ONLY,
    "stripe.disconnect": OWNER_ONLY,
    "sync.run": OWNER_ONLY,
    "onboarding.finish": OWNER_ONLY,
    "team.view": OWNER_ONLY,
    "team.invite": OWNER_ONLY,
    "team.manage": OWNER_ONLY,
    "team.transfer_ownership": OWNER_ONLY,
    "spend.view": OWNER_ONLY,
    "spend.manage": OWNER_ONLY,
    "spend.freeze": OWNER_ONLY,
    "spend.unfreeze": OWNER_ONLY,
    "audit.view": OWNER_ONLY,
    "audit.export": OWNER_ONLY,
    "audit.verify": OWNER_ONLY,
    "billy.choose_plan": OWNER_ONLY,
    "refunds.request": {C, M, OWNER},
    "refunds.withdraw": {C, M, OWNER},
    "refunds.queue": EVERYONE,
    "refunds.approve": {C, M, OWNER},
    "refunds.decline": {C, M, OWNER},
    "refunds.confirmation_email": {C, M, OWNER},
    "payments.update_email": {M, OWNER},
    "roles.view": OWNER_ONLY,
    "roles.manage": OWNER_ONLY,
    "agents.view": EVERYONE,  # one's own tokens; the Owner everyone's (tests/test_agent_tokens.py)
    "agents.issue": EVERYONE,  # never above one's role
    "agents.revoke": EVERYONE,  # one's own; the Owner anyone's
}

SERVICES = PROJECT_ROOT / "services"


def test_every_action_in_the_code_is_in_the_reviewed_table() -> None:
    assert set(ACTIONS) == set(EXPECTED), "add the new action to EXPECTED (and so to the README's matrix)"
    source = "".join(p.read_text() for p in SERVICES.glob("*.py"))
    authorized = set(re.findall(r'authorize(?:_read)?\(\s*\w+,\s*"([a-z_.]+)"', source))
    assert authorized <= set(ACTIONS), f"actions authorized but not declared: {authorized - set(ACTIONS)}"
    assert set(ACTIONS) <= authorized, f"declared actions no service uses: {set(ACTIONS) - authorized}"


@pytest.mark.parametrize("action", sorted(EXPECTED))
@pytest.mark.parametrize("role", sorted(ROLES))
def test_role_can_exactly_what_the_table_says(action: str, role: str) -> None:
    actor = Actor(1, f"{role}@example.com", role, Source.API)
    if role in EXPECTED[action]:
        authorize(actor, action)
    else:
        with pytest.raises(PermissionDenied):
            authorize(actor, action)


def test_readme_shows_the_generated_matrix() -> None:
    readme = (PROJECT_ROOT / "README.md").read_text()
    block = readme.split("<!-- roles-table:start -->")[1].split("<!-- roles-table:end -->")[0].strip()
    assert block == matrix_markdown(), (
        "regenerate the README table: python -c 'from services.permissions import matrix_markdown; print(matrix_markdown())'"
    )


def _service_functions_taking_an_actor() -> list[tuple[Path, ast.FunctionDef]]:
    found = []
    # The engine, the log and the write plumbing (called inside actions that authorized first).
    engine = {"permissions.py", "audit.py", "stripe_writes.py", "confirmations.py", "api_idempotency.py"}
    for path in sorted(p for p in SERVICES.glob("*.py") if p.name not in engine):
        for node in ast.parse(path.read_text()).body:
            public = isinstance(node, ast.FunctionDef) and not node.name.startswith("_")
            if public and node.args.args and node.args.args[0].arg == "actor":
                found.append((path, node))
    return found


def _authorizes(node: ast.FunctionDef) -> bool:
    """Calls `authorize` itself, or hands its `actor` to another service function that does."""
    for call in ast.walk(node):
        if not isinstance(call, ast.Call):
            continue
        name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")
        if name == "authorize":
            return True
        args = [a for a in call.args if isinstance(a, ast.Name)]
        if name not in {"audited", "record", "Actor"} and args and args[0].id == "actor" and not name.startswith("_"):
            return True
    return False


def test_every_service_function_with_an_actor_authorizes() -> None:
    functions = _service_functions_taking_an_actor()
    assert len(functions) >= 15  # the scan really finds the service layer
    missing = [f"{p.name}:{fn.name}" for p, fn in functions if not _authorizes(fn)]
    assert missing == [], f"service functions that never authorize their caller: {missing}"


def test_every_write_a_customer_page_can_show_has_words_in_its_trail() -> None:
    """The customer page's trail reads "alice@… paused payment collection on a subscription", never
    a raw action name: every action that changes a customer's money or records has its words."""
    from services import trails
    from services.permissions import Permission

    reads = {Permission.VIEW, Permission.EXPORT}
    about_a_customer = ("customers.", "charges.", "refunds.", "subscriptions.", "invoices.", "payments.")
    writes = {a for a, p in ACTIONS.items() if p not in reads and a.startswith(about_a_customer)}
    writes -= {"refunds.queue", "subscriptions.preview_change"}
    assert writes - set(trails._DONE) == set()
    assert writes - set(trails._TRIED) == set()
