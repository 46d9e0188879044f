"""API keys: secret keys with full access, restricted keys with permissions.

localstripe accepts any `sk_` key and answers 401 to every `rk_` key. Stripe
(docs: keys#limit-access, api/authentication, api/errors):

* a restricted key the account does not know gets 401 "Invalid API Key
  provided: rk_test_****...";
* a known restricted key used outside its permissions gets HTTP 403,
  `invalid_request_error`, "The provided key 'rk_test_***...abc123' does not
  have the required permissions for this endpoint on account 'acct_...'.
  Having the 'rak_charge_read' permission would allow this request to
  continue." Permissions are `rak_<resource>_<read|write>`; write includes read;
  Prices keep their historical name `rak_plan_*`.

The sandbox is one Stripe account (`ACCOUNT_ID`). A restricted key can be made for
another account (`"account": "acct_…"`) to test that Billy never mixes two accounts:
such a key sees an empty account, as a key of a fresh Stripe account would (lists are
empty, every id answers 404 `resource_missing`), and Stripe's 403 messages and
`GET /v1/account` name its own account.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sandbox.errors import invalid_request, mask_key, resource_missing
from sandbox.params import read_json_or_form
from sandbox.state import ACCOUNT_ID, mark_dirty, random_token

DEMO_RESTRICTED_KEY = "rk_test_billysandboxdemo0000000000000000"

READ, WRITE = "read", "write"
LEVELS = {"none": 0, READ: 1, WRITE: 2}

# Resources a restricted key can be granted, by permission name (`rak_<name>_*`).
RESOURCES = (
    "accounts_kyc_basic",
    "balance",
    "balance_transaction_source",
    "charge",
    "coupon",
    "customer",
    "dispute",
    "event",
    "invoice",
    "payment_intent",
    "payment_method",
    "payout",
    "plan",
    "product",
    "refund",
    "setup_intent",
    "source",
    "subscription",
    "tax_rate",
    "token",
)

# The six permissions Agent Billy requires, plus the reads the demo key adds.
BILLY_PERMISSIONS: dict[str, str] = {
    "charge": READ,
    "customer": WRITE,
    "subscription": WRITE,
    "invoice": WRITE,
    "refund": WRITE,
    "payment_method": READ,
    "event": READ,
    "payment_intent": READ,
    "product": READ,
    "plan": READ,
    "dispute": READ,
}

# First path segment after /v1/ -> resource.
PATH_RESOURCES = {
    "charges": "charge",
    "customers": "customer",
    "refunds": "refund",
    "subscriptions": "subscription",
    "subscription_items": "subscription",
    "invoices": "invoice",
    "invoiceitems": "invoice",
    "payment_methods": "payment_method",
    "events": "event",
    "payment_intents": "payment_intent",
    "products": "product",
    "prices": "plan",
    "plans": "plan",
    "disputes": "dispute",
    "balance": "balance",
    "balance_transactions": "balance_transaction_source",
    "coupons": "coupon",
    "payouts": "payout",
    "setup_intents": "setup_intent",
    "sources": "source",
    "tokens": "token",
    "tax_rates": "tax_rate",
}
# /v1/customers/{id}/<segment> -> resource.
CUSTOMER_SUBRESOURCES = {
    "sources": "payment_method",
    "cards": "payment_method",
    "payment_methods": "payment_method",
    "subscriptions": "subscription",
}

# Routes any key may use: publishable keys create tokens and confirm intents.
PUBLISHABLE_ROUTES = (
    r"^/v1/tokens$",
    r"^/v1/sources$",
    r"^/v1/payment_intents/\w+/_authenticate\b",
    r"^/v1/setup_intents/\w+/confirm$",
    r"^/v1/setup_intents/\w+/cancel$",
)


@dataclass
class RestrictedKey:
    """A restricted key: the permission names it holds, or every permission (`full`), and the
    account it belongs to (another one sees none of the sandbox's objects)."""

    key: str
    permissions: frozenset[str] = frozenset()
    full: bool = False
    account: str = ACCOUNT_ID

    def allows(self, resource: str, level: str) -> bool:
        return self.full or f"rak_{resource}_{level}" in self.permissions

    def permission_names(self) -> list[str]:
        if self.full:
            return [f"rak_{resource}_{level}" for resource in RESOURCES for level in (READ, WRITE)]
        return sorted(self.permissions)


def names_for(levels: dict[str, str]) -> frozenset[str]:
    """Stripe grants per resource: Read, or Write (which includes Read)."""
    names = set()
    for resource, level in levels.items():
        if LEVELS[level] >= LEVELS[READ]:
            names.add(f"rak_{resource}_read")
        if LEVELS[level] >= LEVELS[WRITE]:
            names.add(f"rak_{resource}_write")
    return frozenset(names)


def required_permission(method: str, path: str) -> tuple[str, str] | None:
    """The (resource, level) an API request needs; GET reads, POST/DELETE write."""
    parts = path.strip("/").split("/")
    if len(parts) < 2 or parts[0] != "v1":
        return None
    resource = PATH_RESOURCES.get(parts[1])
    if parts[1] == "customers" and len(parts) >= 4:
        resource = CUSTOMER_SUBRESOURCES.get(parts[3], resource)
    if parts[1] == "balance" and len(parts) >= 3:
        resource = "balance_transaction_source"
    if parts[1] == "account":
        resource = "accounts_kyc_basic"  # Stripe's name for reading the account
    if resource is None:
        return None
    return resource, READ if method in ("GET", "HEAD") else WRITE


class KeyRing:
    """The restricted keys the sandbox knows; the demo key is always there."""

    def __init__(self) -> None:
        self.keys: dict[str, RestrictedKey] = {}
        self.reset()

    def reset(self) -> None:
        self.keys = {DEMO_RESTRICTED_KEY: demo_key()}

    def snapshot(self) -> dict[str, RestrictedKey]:
        return dict(self.keys)

    def restore(self, data: dict[str, RestrictedKey]) -> None:
        self.keys = dict(data)
        self.keys[DEMO_RESTRICTED_KEY] = demo_key()

    def add(self, key: RestrictedKey) -> RestrictedKey:
        self.keys[key.key] = key
        mark_dirty()
        return key


def demo_key() -> RestrictedKey:
    return RestrictedKey(DEMO_RESTRICTED_KEY, names_for(BILLY_PERMISSIONS))


KEYS = KeyRing()


def _permission_name(name: Any) -> str:
    match = re.fullmatch(r"rak_([a-z_]+)_(read|write)", str(name))
    if not match or match.group(1) not in RESOURCES:
        raise invalid_request(f"Unknown permission: {name}", param="without")
    return str(name)


def key_from_request(body: dict[str, Any]) -> RestrictedKey:
    """Build a key from `{"permissions": {...}}` or `{"profile": "full"|"billy", "without": [...]}`,
    optionally `"account": "acct_…"` for a key of another (empty) account."""
    key = body.get("key") or f"rk_test_{random_token(24)}"
    if not re.fullmatch(r"rk_(test|live)_[A-Za-z0-9]{10,200}", str(key)):
        raise invalid_request("`key` must look like rk_test_<letters and digits>.", param="key")
    if key == DEMO_RESTRICTED_KEY:
        raise invalid_request("The demo key cannot be redefined.", param="key")
    account = str(body.get("account") or ACCOUNT_ID)
    if not re.fullmatch(r"acct_[A-Za-z0-9]{1,64}", account):
        raise invalid_request("`account` must look like acct_<letters and digits>.", param="account")
    profile = body.get("profile")
    if profile == "full":
        return RestrictedKey(key, full=True, account=account)
    if profile == "billy":
        # Exactly the named permissions go, so one probe can fail alone (a
        # dashboard-made key cannot hold write without read; this test key can).
        without = body.get("without") or []
        removed = {_permission_name(name) for name in (without if isinstance(without, list) else [without])}
        return RestrictedKey(key, names_for(BILLY_PERMISSIONS) - removed, account=account)
    if profile is not None:
        raise invalid_request("`profile` must be full or billy.", param="profile")
    permissions = body.get("permissions")
    if not isinstance(permissions, dict):
        raise invalid_request(
            'Send {"permissions": {"charge": "read", ...}} or a profile.',
            param="permissions",
        )
    for resource, level in permissions.items():
        if resource not in RESOURCES:
            raise invalid_request(f"Unknown resource: {resource}", param="permissions")
        if level not in LEVELS:
            raise invalid_request(f"Permission level for {resource} must be none, read or write.", param="permissions")
    return RestrictedKey(key, names_for(permissions), account=account)


async def create_key(request: web.Request) -> web.Response:
    """POST /_config/restricted_keys (sandbox only): make a restricted key."""
    key = KEYS.add(key_from_request(await read_json_or_form(request)))
    return web.json_response({"key": key.key, "permissions": key.permission_names(), "account": key.account})


async def delete_key(request: web.Request) -> web.Response:
    """DELETE /_config/restricted_keys/{key} (sandbox only): revoke a key."""
    key = request.match_info["key"]
    if key == DEMO_RESTRICTED_KEY:
        raise invalid_request("The demo key cannot be revoked.")
    if KEYS.keys.pop(key, None) is None:
        raise invalid_request("No such restricted key.", status=404)
    mark_dirty()
    return web.json_response({"deleted": True})


# -- authentication ------------------------------------------------------------


def api_key_of(request: web.Request) -> str | None:
    """The key from `Authorization: Bearer <key>` or Basic auth (key as user name)."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    if scheme == "Bearer":
        return value or None
    if scheme == "Basic":
        try:
            return base64.b64decode(value).decode().split(":")[0] or None
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def _unauthorized(message: str) -> web.Response:
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=401)


def _no_key() -> web.Response:
    return _unauthorized(
        "You did not provide an API key. You need to provide your API key in the "
        "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
        "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for "
        "details, or we can help at https://support.stripe.com/."
    )


def forbidden(key: str, permission: str, account: str = ACCOUNT_ID) -> web.Response:
    message = (
        f"The provided key '{mask_key(key, 6)}' does not have the required "
        f"permissions for this endpoint on account '{account}'. Having the "
        f"'{permission}' permission would allow this request to continue."
    )
    return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=403)


async def _publishable_allowed(request: web.Request, key: str | None) -> bool:
    if request.method != "POST" or not any(re.match(pattern, request.path) for pattern in PUBLISHABLE_ROUTES):
        return False
    if key and key.startswith("pk_"):
        return True
    data = await read_json_or_form(request)
    return str(data.get("key", "")).startswith("pk_")


@web.middleware
async def auth_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Check the key and, for restricted keys, the permission the endpoint needs."""
    path = request.path
    if path.startswith(("/_config/", "/js.stripe.com/")):
        return await handler(request)
    key = api_key_of(request)
    if await _publishable_allowed(request, key):
        return await handler(request)
    if key is None:
        return _no_key()
    if key.startswith("sk_") and len(key) > 5:
        return await handler(request)
    if key.startswith("pk_"):
        return _unauthorized(
            "This API call cannot be made with a publishable API key. Please use a "
            "secret API key. You can find a list of your API keys at "
            "https://dashboard.stripe.com/account/apikeys."
        )
    restricted = KEYS.keys.get(key) if key.startswith("rk_") else None
    if restricted is None:
        return _unauthorized(f"Invalid API Key provided: {mask_key(key, 4)}")
    needed = required_permission(request.method, path)
    account = getattr(restricted, "account", ACCOUNT_ID)  # keys saved before accounts existed
    if needed is None:
        if restricted.full:
            return await handler(request) if account == ACCOUNT_ID else _another_account(request, account)
        return web.json_response(
            {
                "error": {
                    "message": "This is a restricted API key, but the required "
                    "permissions are not available for use by restricted keys.",
                    "type": "invalid_request_error",
                }
            },
            status=403,
        )
    resource, level = needed
    if not restricted.allows(resource, level):
        return forbidden(key, f"rak_{resource}_{level}", account)
    if account != ACCOUNT_ID:
        return _another_account(request, account)
    return await handler(request)


def _another_account(request: web.Request, account: str) -> web.Response:
    """A key of another account, which holds nothing: its account, empty lists, and 404
    `resource_missing` for any id (retrieve, update, delete), as a fresh Stripe account
    answers. Creating objects there is not modelled."""
    parts = request.path.strip("/").split("/")
    if parts[1:] == ["account"]:
        return web.json_response({"id": account, "object": "account", "type": "standard"})
    if len(parts) == 2 and request.method == "GET":
        return web.json_response({"object": "list", "data": [], "has_more": False, "url": request.path})
    if len(parts) >= 3:
        raise resource_missing(PATH_RESOURCES.get(parts[1], parts[1]), parts[2])
    raise invalid_request(f"The sandbox does not create objects in another account ({account}).")
