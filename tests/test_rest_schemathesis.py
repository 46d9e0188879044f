"""schemathesis over the OpenAPI document /api/v1 serves (issue 13): as Read Only and as a Billing
Clerk, every operation gets generated requests, valid and invalid, and every answer is checked
against the document (status documented, content type, body schema, headers) and for 5xx.

The run goes through the same Starlette app Reflex mounts, against a SQLite store with the
sandbox connected and a customer, charges, a subscription and an invoice synced, so writes reach
the services and Stripe's sandbox; operations on one object also run once more on objects that
exist. It prints how many cases ran. A few examples per operation, role and mode keep it to
about 20 seconds.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from billy_app.api.routes import build_api
from billy_app.api.v1 import rate
from services import agent_tokens, stripe_keys
from services.agent_tokens import ScopeRequest
from services.permissions import Actor
from tests.conftest import member_actor
from tests.stripe_helpers import make_charge, make_team_subscription_and_open_invoice, sync_lists

EXAMPLES_PER_OPERATION = 3  # per role and generation mode (about 630 cases in all; the suite stays under 12 min)

# A schema says what is well formed, not every business rule: valid-looking data the service
# refuses in words (a cursor from nowhere, a period ending before it starts, an amount above
# what is left to refund) is answered 422, which is right, so "positive data" may get a 422 too.
CHECKS = {"positive_data_acceptance": {"expected-statuses": ["2xx", "401", "403", "404", "409", "422", "429"]}}


def _schema_as(secret: str) -> Any:
    """The served document, loaded with the role's token as its bearer scheme's credential (so
    schemathesis knows which requests it sent without one on purpose)."""
    config = SchemathesisConfig.from_dict({"checks": CHECKS, "auth": {"openapi": {"bearer": {"bearer": secret}}}})
    return schemathesis.openapi.from_asgi("/api/v1/openapi.json", build_api(), config=config)


def _token(actor: Actor) -> str:
    return agent_tokens.issue_token(actor, "schemathesis", ScopeRequest()).secret


@pytest.fixture
def known_ids(instance, owner: Actor, stripe_peer) -> dict[str, str]:  # type: ignore[no-untyped-def]
    """A customer with a charge, a subscription and an open invoice, synced: the ids real
    requests use, so the generated requests reach objects that exist too (and their 200s)."""
    stripe_keys.connect_stripe_key(owner, stripe_peer.demo_key)
    client = stripe_peer.secret_client()
    customer = client.v1.customers.create(
        params={"name": "Jane Smith", "email": "jane@example.com", "source": "tok_visa"}
    )
    charge = make_charge(stripe_peer, 4599, customer=customer.id, description="Order #5678")
    make_charge(stripe_peer, 12_000, description="Order #5679")
    _, subscription, invoice = make_team_subscription_and_open_invoice(stripe_peer, customer.id)
    sync_lists()
    return {
        "customer_id": customer.id,
        "charge_id": charge["id"],
        "subscription_id": subscription.id,
        "invoice_id": invoice.id,
    }


@pytest.fixture
def tokens(known_ids: dict[str, str]) -> dict[str, str]:
    return {
        "read_only": _token(member_actor("read_only", "viewer@example.com")),
        "billing_clerk": _token(member_actor("billing_clerk", "clerk@example.com")),
    }


def test_schemathesis_finds_no_server_errors_and_no_schema_violations(
    tokens: dict[str, str], known_ids: dict[str, str]
) -> None:
    rate.use_limit(rate.CallerLimit("100000/minute"))  # the fuzzing run is not what the limit is for
    ran: Counter[str] = Counter()
    statuses: Counter[int] = Counter()
    try:
        for role, secret in tokens.items():
            schema = _schema_as(secret)
            # Signing the token out (DELETE /me/token) goes last: every request after it is a 401.
            operations = sorted((r.ok() for r in schema.get_all_operations()), key=lambda op: op.method == "delete")
            assert len(operations) >= 40
            for operation in operations:
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    _fuzz(operation.as_strategy(generation_mode=mode), role, ran, statuses)
                names = {p.name for p in operation.path_parameters}
                if names and names <= set(known_ids):  # and once more on objects that exist
                    real = {name: known_ids[name] for name in names}
                    _fuzz(operation.as_strategy(path_parameters=real), role, ran, statuses)
    finally:
        rate.use_limit(None)

    total = sum(ran.values())
    print(f"\nschemathesis ran {total} cases over {len(operations)} operations: {dict(ran)}; statuses {dict(statuses)}")
    assert ran["read_only"] > 200 and ran["billing_clerk"] > 200
    assert not [status for status in statuses if status >= 500]


def _fuzz(cases: Any, role: str, ran: Counter[str], statuses: Counter[int]) -> None:
    """A few generated requests of one operation, each sent and validated against the document."""

    @given(case=cases)
    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call_and_validate()
        ran[role] += 1
        statuses[response.status_code] += 1

    check()
