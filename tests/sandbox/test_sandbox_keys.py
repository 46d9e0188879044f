"""Restricted keys: accepted when known, refused with Stripe's 401/403 otherwise."""

from __future__ import annotations

import http.client
import json
import re

import pytest
import stripe

from sandbox import ACCOUNT_ID, DEMO_RESTRICTED_KEY, SandboxHandle
from tests.sandbox.helpers import make_client

# The app's permission probes (services/stripe_gateway.py): (permission, method, path).
PROBES = [
    ("rak_charge_read", "get", "/v1/charges"),
    ("rak_customer_read", "get", "/v1/customers"),
    ("rak_customer_write", "post", "/v1/customers/cus_billyprobe"),
    ("rak_subscription_read", "get", "/v1/subscriptions"),
    ("rak_subscription_write", "post", "/v1/subscriptions/sub_billyprobe"),
    ("rak_invoice_read", "get", "/v1/invoices"),
    ("rak_invoice_write", "post", "/v1/invoices/in_billyprobe"),
    ("rak_refund_write", "post", "/v1/refunds/re_billyprobe"),
    ("rak_payment_method_read", "get", "/v1/payment_methods/pm_billyprobe"),
]
PERMISSION_MESSAGE = re.compile(
    r"^The provided key '(rk_test_\*+\w{6})' does not have the required permissions "
    r"for this endpoint on account '(acct_\w+)'\. Having the '(rak_\w+)' permission "
    r"would allow this request to continue\.$"
)


def probe(client: stripe.StripeClient, method: str, path: str) -> int:
    """Run a probe as the app does; return the HTTP status."""
    params = {"limit": 1} if method == "get" and path.count("/") == 2 else {}
    try:
        client.raw_request(method, path, **params)
    except stripe.StripeError as exc:
        return int(exc.http_status or 0)
    return 200


def test_secret_keys_have_full_access(client: stripe.StripeClient) -> None:
    assert client.v1.balance.retrieve()["object"] == "balance"


def test_demo_key_is_built_in(demo_client: stripe.StripeClient) -> None:
    assert DEMO_RESTRICTED_KEY == "rk_test_billysandboxdemo0000000000000000"
    assert demo_client.v1.charges.list(params={"limit": 1}).data == []
    assert demo_client.v1.events.list().data == []


def test_unknown_restricted_key_is_an_authentication_error(sandbox: SandboxHandle) -> None:
    unknown = make_client(sandbox, "rk_test_nosuchkey00000000001234")
    with pytest.raises(stripe.AuthenticationError) as caught:
        unknown.v1.charges.list()
    assert caught.value.http_status == 401
    message = caught.value.json_body["error"]["message"]
    assert message.startswith("Invalid API Key provided: rk_test_***")
    assert message.endswith("1234") and "nosuchkey" not in message


def test_missing_key_is_refused(sandbox: SandboxHandle) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", sandbox.port, timeout=10)
    connection.request("GET", "/v1/charges")
    response = connection.getresponse()
    body = json.loads(response.read())
    connection.close()
    assert response.status == 401
    assert body["error"]["message"].startswith("You did not provide an API key.")


def test_denied_permission_is_a_403_in_stripe_words(sandbox: SandboxHandle) -> None:
    key = sandbox.create_restricted_key(permissions={"customer": "read"})
    with pytest.raises(stripe.PermissionError) as caught:
        make_client(sandbox, key).v1.charges.list()
    error = caught.value.json_body["error"]
    assert caught.value.http_status == 403
    assert error["type"] == "invalid_request_error"
    match = PERMISSION_MESSAGE.match(error["message"])
    assert match, error["message"]
    assert match.group(1).endswith(key[-6:]) and key[8:-6] not in match.group(1)
    assert match.group(2) == ACCOUNT_ID
    assert match.group(3) == "rak_charge_read"


def test_write_needs_write_and_read_is_included_in_write(sandbox: SandboxHandle) -> None:
    key = sandbox.create_restricted_key(permissions={"customer": "write", "charge": "read"})
    client = make_client(sandbox, key)
    client.v1.customers.create(params={"name": "Ok"})
    assert len(client.v1.customers.list().data) == 1
    with pytest.raises(stripe.PermissionError, match="rak_charge_write"):
        client.v1.charges.create(params={"amount": 500, "currency": "usd", "source": "tok_visa"})


def test_full_profile_allows_everything(sandbox: SandboxHandle) -> None:
    client = make_client(sandbox, sandbox.create_restricted_key(profile="full"))
    created = client.v1.customers.create(params={"name": "Full"})
    assert client.v1.balance.retrieve()["object"] == "balance"
    assert client.v1.customers.retrieve(created.id).name == "Full"


@pytest.mark.parametrize(("permission", "method", "path"), PROBES)
def test_probe_allowed_with_demo_key(demo_client: stripe.StripeClient, permission: str, method: str, path: str) -> None:
    expected = 200 if method == "get" and path.count("/") == 2 else 404
    assert probe(demo_client, method, path) == expected


@pytest.mark.parametrize(("permission", "method", "path"), PROBES)
def test_probe_denied_without_the_permission(sandbox: SandboxHandle, permission: str, method: str, path: str) -> None:
    client = make_client(sandbox, sandbox.create_restricted_key(profile="billy", without=[permission]))
    with pytest.raises(stripe.PermissionError) as caught:
        client.raw_request(method, path, **({"limit": 1} if method == "get" else {}))
    assert caught.value.json_body["error"]["message"].count(f"'{permission}'") == 1
    denied = [name for name, other_method, other_path in PROBES if probe(client, other_method, other_path) == 403]
    assert denied == [permission]  # `without` removes exactly the named permission


def test_permission_levels(sandbox: SandboxHandle) -> None:
    key = sandbox.create_restricted_key(permissions={"charge": "read", "refund": "write", "customer": "none"})
    client = make_client(sandbox, key)
    assert probe(client, "get", "/v1/charges") == 200
    assert probe(client, "post", "/v1/refunds/re_billyprobe") == 404
    assert probe(client, "get", "/v1/refunds") == 200  # write includes read
    assert probe(client, "get", "/v1/customers") == 403
    with pytest.raises(stripe.InvalidRequestError):
        make_client(sandbox).raw_request("post", "/_config/restricted_keys", permissions={"charge": "admin"})


def test_write_probe_answers_resource_missing(demo_client: stripe.StripeClient) -> None:
    with pytest.raises(stripe.InvalidRequestError) as caught:
        demo_client.raw_request("post", "/v1/refunds/re_billyprobe")
    assert caught.value.http_status == 404
    assert caught.value.json_body == {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": "No such refund: 're_billyprobe'",
            "param": "id",
            "doc_url": "https://stripe.com/docs/error-codes/resource-missing",
        }
    }


def test_reset_forgets_created_keys_but_not_the_demo_key(sandbox: SandboxHandle) -> None:
    key = sandbox.create_restricted_key(profile="full")
    sandbox.reset()
    with pytest.raises(stripe.AuthenticationError):
        make_client(sandbox, key).v1.customers.list()
    make_client(sandbox, DEMO_RESTRICTED_KEY).v1.customers.list()


def test_account_is_readable_with_a_secret_key_only(
    client: stripe.StripeClient, demo_client: stripe.StripeClient
) -> None:
    assert client.v1.accounts.retrieve_current().id == ACCOUNT_ID
    with pytest.raises(stripe.PermissionError) as caught:
        demo_client.v1.accounts.retrieve_current()
    match = PERMISSION_MESSAGE.match(caught.value.json_body["error"]["message"])
    assert match and match.group(2) == ACCOUNT_ID  # a restricted key learns its account here


def test_a_key_of_another_account_sees_an_empty_account_of_its_own(
    sandbox: SandboxHandle, client: stripe.StripeClient
) -> None:
    customer = client.v1.customers.create(params={"email": "here@example.com"})
    elsewhere = make_client(sandbox, sandbox.create_restricted_key(profile="billy", account="acct_elsewhere"))
    assert elsewhere.v1.customers.list().data == []  # none of this account's objects
    with pytest.raises(stripe.InvalidRequestError) as missing:
        elsewhere.v1.customers.retrieve(customer.id)
    assert missing.value.http_status == 404 and missing.value.code == "resource_missing"
    for permission, method, path in PROBES:  # the app's probes pass, as for a fresh account's key
        assert probe(elsewhere, method, path) in (200, 404), permission
    with pytest.raises(stripe.PermissionError) as refused:
        elsewhere.v1.accounts.retrieve_current()
    match = PERMISSION_MESSAGE.match(refused.value.json_body["error"]["message"])
    assert match and match.group(2) == "acct_elsewhere"
    full = make_client(sandbox, sandbox.create_restricted_key(profile="full", account="acct_elsewhere"))
    assert full.v1.accounts.retrieve_current().id == "acct_elsewhere"
    assert make_client(sandbox, DEMO_RESTRICTED_KEY).v1.customers.retrieve(customer.id).id == customer.id
