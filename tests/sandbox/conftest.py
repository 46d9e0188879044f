"""Fixtures for the sandbox tests: one in-process sandbox, emptied before each test.

`sandbox` here is function-scoped and resets the shared sandbox first; it
stands in for the session-wide fixture of the same name in tests/conftest.py.
Both share one running sandbox (`run_in_thread` hands out the running one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from sandbox import DEMO_RESTRICTED_KEY, SandboxHandle, run_in_thread
from tests.sandbox.helpers import make_client


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxHandle]:
    handle = run_in_thread(port=0)
    yield handle
    handle.stop()


@pytest.fixture
def sandbox(sandbox_server: SandboxHandle) -> SandboxHandle:
    """The session's sandbox, reset to empty for this test."""
    sandbox_server.reset()
    return sandbox_server


@pytest.fixture
def client(sandbox: SandboxHandle) -> stripe.StripeClient:
    return make_client(sandbox)


@pytest.fixture
def demo_client(sandbox: SandboxHandle) -> stripe.StripeClient:
    return make_client(sandbox, DEMO_RESTRICTED_KEY)


@pytest.fixture
def customer(client: stripe.StripeClient) -> Any:
    return client.v1.customers.create(params={"name": "Test Person", "email": "test@example.com", "source": "tok_visa"})
