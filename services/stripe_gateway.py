"""The only module that talks to Stripe.

The key is fetched from the secret store for each client, never kept in a module
global, and never put in a message: Stripe's own errors mask it, and the logging
scrubber catches anything else. Objects come back as plain dicts and are read
tolerantly (`.get`), because the sandbox answers in older API shapes.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from decimal import Decimal
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import orjson
import stripe
from limits import RateLimitItemPerSecond
from limits.strategies import MovingWindowRateLimiter
from stripe.params import RefundCreateParams
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from services import clock, key_watch, resources
from services.config import get_settings
from services.errors import (
    StripeKeyUnknown,
    StripeNotConnected,
    StripeRateLimited,
    StripeRequestFailed,
    StripeUnreachable,
    WebhookSignatureInvalid,
)
from services.secrets import get_secret_store
from services.shared_limits import SharedLimiter

log = logging.getLogger(__name__)

# Pinned on purpose: a Stripe SDK upgrade must not change the shapes we parse.
STRIPE_API_VERSION = "2026-10-28.endive"
STRIPE_KEY_SECRET = "stripe-restricted-key"
PAGE_SIZE = 100
# Stripe allows about 100 requests/s in live mode and 25 in test mode; Billy stays under.
DEFAULT_RATE = {"live": 90.0, "test": 20.0}
READ_ATTEMPTS = 8
GATE_MARGIN_SECONDS = 0.02


class RateGate:
    """At most `per_second` requests in any moving window of one second (plus a small margin),
    shared by every thread of the process and, with BILLY_REDIS_URL, by every worker process of
    the instance: Stripe's limit is per account, so parallel backfills in four workers together
    stay under it as one does. Below one request per second: one request per 1/rate seconds.

    The counts live in the `limits` library's moving-window storage: `memory://` for a single
    worker, the instance's Redis for several (`storage_uri`). Two `limits` items do the work:

    - the **ceiling**, `allowed` per `seconds` (1 at or above one request a second, else 1/rate
      rounded up: `limits` windows are whole seconds), taken atomically (a Lua script in Redis),
      so two workers can never both take the last slot of a window;
    - the **history**, the same hits kept a while longer, read before taking the ceiling.

    The margin: Billy counts a request when the gate lets it go, Stripe when it arrives, and the
    gap varies (the thread waiting for the GIL, the network, a busy server). With a window of
    exactly one second, a ceiling equal to Stripe's limit lets an (N+1)th request land inside
    Stripe's second now and then, and every such 429 costs a back-off. So a request also waits
    until the history holds fewer than `allowed` hits in the last second plus
    `GATE_MARGIN_SECONDS`, which absorbs that jitter for about 2 % of the rate. The ceiling
    cannot carry the margin itself: `limits` keeps whole-second windows (Redis expiries are whole
    seconds). Within a process the check and the take are one step (a lock); two workers checking
    in the same millisecond can shave the margin, never the ceiling.

    If Redis does not answer, each worker paces itself alone in its memory for a few seconds before
    trying Redis again (`services.shared_limits`): a Redis outage stops no Stripe call, at the price
    of N workers sending up to N times the rate meanwhile (Stripe's 429s and the read back-off absorb
    the excess)."""

    def __init__(self, per_second: float, storage_uri: str = "memory://", name: str = "stripe") -> None:
        self.per_second = per_second
        self._allowed = max(1, int(per_second))
        base = 1.0 if per_second >= 1 else 1 / per_second
        self._window = base + GATE_MARGIN_SECONDS  # the history is read over this window
        self._ceiling = RateLimitItemPerSecond(self._allowed, math.ceil(base), namespace="billy-gate")
        # Room for every hit of the margin window, so taking a history entry is never refused.
        self._history = RateLimitItemPerSecond(4 * self._allowed, math.ceil(self._window), namespace="billy-gate-log")
        self._ids = (name,)
        self._counts = SharedLimiter(storage_uri, "the Stripe request gate")
        self._lock = threading.Lock()

    def acquire(self) -> None:
        while True:
            with self._lock:
                wait = self._counts.call(self._take)
            if wait <= 0:
                return
            time.sleep(wait)

    def _take(self, limiter: MovingWindowRateLimiter) -> float:
        """Count one request and answer 0, or answer how long to wait before asking again."""
        history = self._history.key_for(*self._ids)
        start, count = SharedLimiter.moving_window(limiter, history, self._allowed, self._window)
        if count >= self._allowed:
            return max(start + self._window - time.time(), 0.001)  # until the oldest leaves the window
        if not limiter.hit(self._ceiling, *self._ids):  # another worker took the last slot
            reset_at = limiter.get_window_stats(self._ceiling, *self._ids).reset_time
            return max(reset_at - time.time(), 0.001)
        limiter.hit(self._history, *self._ids)
        return 0.0


_gates: dict[tuple[str, float, str], RateGate] = {}
_gates_lock = threading.Lock()


def rate_gate(mode: str) -> RateGate:
    """The gate for Stripe's `mode` ("live" or "test"), one per process, counting in the instance's
    Redis when it has one (shared by its workers), else in memory."""
    settings = get_settings()
    rate = settings.stripe_requests_per_second or DEFAULT_RATE[mode]
    storage = settings.redis_url or "memory://"
    with _gates_lock:
        key = (mode, rate, storage)
        if key not in _gates:
            _gates[key] = RateGate(rate, storage, name=f"stripe-{mode}")
        return _gates[key]


def _retryable(exc: BaseException) -> bool:
    """429s, Stripe's 5xx answers and dropped connections are worth another try; nothing else."""
    if isinstance(exc, stripe.RateLimitError | stripe.APIConnectionError):
        return True
    return isinstance(exc, stripe.APIError) and (exc.http_status or 0) >= 500


def _read_backoff() -> Callable[[RetryCallState], float]:
    """How long to wait before trying a read again.

    429: the gate already paces Billy, so a 429 means a request landed next to one counted in
    Stripe's previous second, or something else shares the account's limit. Stripe's window is
    a second, so start at a quarter of it and double (0.25 s, 0.5 s, … about 32 s in all before
    giving up). The old common back-off (0.5 s plus up to 1 s of jitter) left a one-request-at-
    a-time walk idle for about a second per 429. 5xx and dropped connections: Stripe is in
    trouble; start at half a second with up to a second of jitter.
    """
    throttled = wait_exponential_jitter(initial=0.25, max=20, jitter=0.25)
    trouble = wait_exponential_jitter(initial=0.5, max=20)

    def wait(state: RetryCallState) -> float:
        failure = state.outcome.exception() if state.outcome else None
        return (throttled if isinstance(failure, stripe.RateLimitError) else trouble)(state)

    return wait


# --- writes: retried with the same idempotency key -------------------------------------------

WRITE_ATTEMPTS = 4  # the first try and three retries, each with the caller's idempotency key
pause = time.sleep  # how a write waits before its retry (tests record the waits instead of sleeping)


@dataclass
class WriteTrail:
    """How one write reached its answer, for the audit row: the attempts that failed before it
    (in words), whether the answer was Stripe's saved one (`Idempotent-Replayed`), and whether
    Billy gave up not knowing if Stripe made the change."""

    call: str  # "refunds.create", "customers.update", ...
    failures: list[str] = field(default_factory=list)
    replayed: bool = False
    outcome_unknown: bool = False


_trails: ContextVar[list[WriteTrail] | None] = ContextVar("billy_write_trails", default=None)


@contextmanager
def collecting_trails() -> Iterator[list[WriteTrail]]:
    """Collect the trail of every write made in the block (in this thread), for one audit row."""
    collected: list[WriteTrail] = []
    token = _trails.set(collected)
    try:
        yield collected
    finally:
        _trails.reset(token)


def current_trails() -> list[WriteTrail]:
    """The trails collected so far by the enclosing `collecting_trails` (empty outside one)."""
    return list(_trails.get() or [])


def _status(exc: stripe.StripeError) -> int:
    return int(getattr(exc, "http_status", None) or 0)


def _write_retryable(exc: stripe.StripeError) -> bool:
    """A write is asked again, with the same key, after a 429, a 409 (the same key still being
    processed), a 5xx or a lost connection. Refusals (4xx) are final."""
    return _retryable(exc) or _status(exc) == 409


def _write_wait(exc: stripe.StripeError, attempt: int) -> float:
    """Seconds before retry number `attempt` (1, 2, 3): a quarter second doubling after a 429
    (Stripe's window is one second), half a second doubling after trouble; with jitter, so
    workers that failed together do not retry together."""
    start = 0.25 if isinstance(exc, stripe.RateLimitError) else 0.5
    return start * 2 ** (attempt - 1) + random.uniform(0, start)  # jitter, not a secret


def _failure_words(exc: stripe.StripeError) -> str:
    """One failed attempt, as the audit row tells it."""
    if isinstance(exc, stripe.APIConnectionError):
        text = str(exc).lower()
        if "timeout" in text or "timed out" in text:
            return f"no answer within {get_settings().stripe_timeout_seconds:g} s"
        return "the connection was cut before Stripe's answer arrived"
    if isinstance(exc, stripe.RateLimitError):
        return "Stripe answered 429 (too many requests)"
    return f"Stripe answered {_status(exc) or 'an error'}"


def _gave_up(failures: list[str]) -> str:
    """What a write's attempts met, once each, e.g. "Stripe answered 503; then no answer within
    30 s (4 attempts, each with the same request key)"."""
    return f"{'; then '.join(dict.fromkeys(failures))} ({len(failures)} attempts, each with the same request key)"


def _answer_headers(answer: Any) -> Any:
    """The HTTP headers of an SDK object's response, or of a raw or plain-JSON response."""
    plain = isinstance(answer, (stripe.StripeResponse, JsonAnswer))
    response = answer if plain else getattr(answer, "last_response", None)
    return getattr(response, "headers", None) or {}


@dataclass(frozen=True)
class JsonAnswer:
    """A successful GET's body as plain dicts and lists, with the answer's headers."""

    data: Any
    headers: Any  # case-insensitive, as the SDK's transport returns them


def get_json(client: stripe.StripeClient, path: str, query: dict[str, Any]) -> JsonAnswer:
    """GET `path` as the SDK sends it (key, API version, query encoding; no retries of its own),
    the body parsed by orjson. The SDK's `raw_request` parses every body into OrderedDicts with
    the standard library: on a backfill page that took four times as long as orjson, and a
    third of the sync's CPU went to JSON (bench/backfill). The request is built and sent by the
    SDK's own two steps, without `request_raw`'s debug line: that formats the whole body (a
    `repr` of 250 kB) on every call, logged or not, about 1.4 ms a page. Anything but a 2xx JSON
    body is handed to the SDK's own reading, so errors raise exactly as `raw_request`'s do
    (`RateLimitError` on 429, `PermissionError` on 403, `APIError` for a body that is not JSON).
    These are the SDK's internals; stripe is pinned, and `tests/test_stripe_contract.py` reads
    pages and errors through this function."""
    requestor = client._requestor
    method, url, request_headers, post_data, _retries, usage, _encoded, _version = (
        requestor._args_for_request_with_retries(
            "get", path, query, {"max_network_retries": 0}, base_address="api", api_mode="V1"
        )
    )
    body, code, headers = requestor._get_http_client().request_with_retries(
        method, url, request_headers, post_data, max_network_retries=0, _usage=usage
    )
    if 200 <= code < 300:
        try:
            return JsonAnswer(orjson.loads(body), headers)
        except orjson.JSONDecodeError:
            pass  # the SDK's reading says what is wrong with it
    answer = requestor._interpret_response(body, code, headers, "V1")  # raises the SDK's error for an error
    return JsonAnswer(answer.data, answer.headers)


def _answer_time(answer: Any) -> int | None:
    """Stripe's clock when it answered (its `Date` header), to the second; None without one."""
    date = _answer_headers(answer).get("Date")
    try:
        return int(parsedate_to_datetime(date).timestamp()) if date else None
    except (TypeError, ValueError):
        return None


@dataclass(frozen=True)
class PermissionProbe:
    """One permission the key needs and a side-effect-free request that proves it.

    Reads list one object (200 when allowed). Writes update an id that cannot exist:
    Stripe answers 404 `resource_missing` when the key may write, 403 when it may not.
    """

    name: str  # Stripe's permission name, as its 403 messages spell it
    method: str
    path: str


@dataclass(frozen=True)
class RequiredPermission:
    """A row of the docs' permission table (resource, access) and the probes behind it."""

    resource: str
    access: str
    probes: tuple[PermissionProbe, ...]


REQUIRED_PERMISSIONS: tuple[RequiredPermission, ...] = (
    RequiredPermission("Charges", "Read", (PermissionProbe("rak_charge_read", "get", "/v1/charges"),)),
    RequiredPermission(
        "Customers",
        "Read + Write",
        (
            PermissionProbe("rak_customer_read", "get", "/v1/customers"),
            PermissionProbe("rak_customer_write", "post", "/v1/customers/cus_billyprobe"),
        ),
    ),
    RequiredPermission(
        "Subscriptions",
        "Read + Write",
        (
            PermissionProbe("rak_subscription_read", "get", "/v1/subscriptions"),
            PermissionProbe("rak_subscription_write", "post", "/v1/subscriptions/sub_billyprobe"),
        ),
    ),
    RequiredPermission(
        "Invoices",
        "Read + Write",
        (
            PermissionProbe("rak_invoice_read", "get", "/v1/invoices"),
            PermissionProbe("rak_invoice_write", "post", "/v1/invoices/in_billyprobe"),
        ),
    ),
    RequiredPermission("Refunds", "Write", (PermissionProbe("rak_refund_write", "post", "/v1/refunds/re_billyprobe"),)),
    RequiredPermission(
        "Payment Methods",
        "Read",
        (PermissionProbe("rak_payment_method_read", "get", "/v1/payment_methods/pm_billyprobe"),),
    ),
)


def billy_error(exc: stripe.StripeError) -> StripeRequestFailed:
    """The one place an SDK error becomes a Billy error, so nothing outside this module needs
    to know Stripe's exception types."""
    message, code = readable_error(exc), _error_code(exc)
    if isinstance(exc, stripe.AuthenticationError):
        return StripeKeyUnknown(message, code=code)
    if isinstance(exc, stripe.RateLimitError):
        return StripeRateLimited(message, code=code)
    if isinstance(exc, stripe.APIConnectionError):
        return StripeUnreachable(message, code=code, outcome_unknown=True)
    if isinstance(exc, stripe.APIError):  # Stripe's 5xx: the request may have been carried out
        return StripeRequestFailed(message, code=code, outcome_unknown=True)
    return StripeRequestFailed(message, code=code)


def verify_webhook(
    payload: bytes, signature: str | None, secret: str, tolerance_seconds: int, now: float | None = None
) -> dict[str, Any]:
    """Check a delivery's `Stripe-Signature` (HMAC and age) and return the parsed event.

    The age is Stripe's signing time against Billy's clock (`now`, default `clock.now()`), so a
    delivery signed more than `tolerance_seconds` ago is refused and a captured delivery cannot be
    replayed later. A signing time ahead of Billy's clock (Stripe's clock ahead) is accepted, as
    Stripe's own libraries accept it."""
    header = signature or ""
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), header, secret, None)  # the HMAC alone
        signed_at = int(stripe.WebhookSignature._get_timestamp_and_signatures(header, "v1")[0])
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError, IndexError):
        raise WebhookSignatureInvalid("The signature does not match this endpoint's secret.") from None
    moment = clock.now().timestamp() if now is None else now
    if signed_at < moment - tolerance_seconds:
        raise WebhookSignatureInvalid(
            f"The signature is {int(moment - signed_at)} s old, past the {tolerance_seconds} s a delivery is "
            "accepted for: an old delivery replayed, or this server's clock is wrong."
        )
    if not isinstance(event, dict):
        raise WebhookSignatureInvalid("That is not a Stripe event.")
    return event


def _error_code(exc: stripe.StripeError) -> str:
    if isinstance(exc, stripe.PermissionError):
        return "permission_denied"
    if isinstance(exc, stripe.RateLimitError):
        return "rate_limited"
    if isinstance(exc, stripe.InvalidRequestError) and exc.http_status == 404:
        return "resource_missing"
    return getattr(exc, "code", None) or "stripe_error"


@functools.cache
def _transport(timeout: float) -> stripe.RequestsClient:
    """The HTTP client every Stripe client of the process shares. It keeps one `requests` session
    per thread, so a thread's requests reuse one keep-alive connection; a client of its own per
    call opened a connection per request (bench/backfill: about 8 ms each, a fifth of a page's
    time). It holds no key: the key is still read for each client."""
    return stripe.RequestsClient(timeout=timeout)


def make_client(key: str) -> stripe.StripeClient:
    settings = get_settings()
    kwargs: dict[str, Any] = {
        "stripe_version": STRIPE_API_VERSION,
        "max_network_retries": 2,
        "http_client": _transport(settings.stripe_timeout_seconds),
    }
    if settings.stripe_api_base:
        kwargs["base_addresses"] = {"api": settings.stripe_api_base}
    return stripe.StripeClient(key, **kwargs)


# Stripe's refusals a person meets when refunding, by error code: what happened and what to do.
# Stripe's own words follow in brackets (they name the charge and amounts, for support).
PLAIN_REFUSALS: dict[str, str] = {
    "charge_already_refunded": (
        "This charge has already been refunded in full, so there is nothing left to refund. "
        "Reload the charge to see its refunds."
    ),
    "charge_disputed": (
        "The customer has disputed this charge with their bank, so it cannot be refunded. "
        "Answer the dispute in Stripe instead: accepting it returns the money to the customer."
    ),
    "refund_disputed_payment": (
        "The customer has disputed this payment with their bank, so it cannot be refunded. "
        "Answer the dispute in Stripe instead: accepting it returns the money to the customer."
    ),
    "charge_not_refundable": (
        "Stripe cannot refund this charge: it may be too old for a refund to the card, or its payment "
        "method does not take refunds. Return the money another way (for example a bank transfer) and note it."
    ),
    "charge_expired_for_capture": (
        "This payment was only authorised and never captured, and the authorisation has expired: "
        "the customer was never charged, so there is nothing to refund."
    ),
    "amount_too_large": (
        "That is more than is left to refund on this charge (part of it may have been refunded meanwhile). "
        "Reload the charge and refund at most what remains."
    ),
    "amount_too_small": "That amount is below the smallest refund Stripe accepts. Refund a larger amount.",
    "balance_insufficient": (
        "Your Stripe balance is too low to cover this refund. Add funds to your Stripe balance "
        "(or wait for incoming payments to settle) and try again."
    ),
    "idempotency_key_in_use": (
        "The same refund is already being processed. Wait a moment and reload the charge before trying again."
    ),
}


def readable_error(exc: stripe.StripeError) -> str:
    """A plain sentence for a refusal people meet (`PLAIN_REFUSALS`), else Stripe's own
    user-facing message (it never contains the full key)."""
    message = getattr(exc, "user_message", None) or getattr(exc, "_message", None) or str(exc)
    stripes = str(message).strip()
    plain = PLAIN_REFUSALS.get(str(getattr(exc, "code", None) or ""))
    if plain:
        return f"{plain} (Stripe: {stripes})" if stripes else plain
    return stripes or "Stripe refused the request."


def _plain(value: Any) -> Any:
    """JSON-safe: the SDK turns Stripe's `*_decimal` strings into Decimal; keep them as strings."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, Decimal):
        return str(value)
    return value


def as_dict(obj: Any) -> dict[str, Any]:
    """A StripeObject (or a dict) as a plain nested dict that JSON columns can hold."""
    return _plain(obj if isinstance(obj, dict) else obj.to_dict())


def probe_permissions(key: str) -> dict[str, bool]:
    """Which required permissions the key has, by name. Raises `StripeKeyUnknown` when Stripe
    does not know the key at all, `StripeUnreachable` when Stripe does not answer."""
    client = make_client(key)
    result: dict[str, bool] = {}
    for requirement in REQUIRED_PERMISSIONS:
        for probe in requirement.probes:
            params = {"limit": 1} if probe.method == "get" and probe.path.count("/") == 2 else {}
            try:
                client.raw_request(probe.method, probe.path, **params)
                result[probe.name] = True
            except stripe.PermissionError:
                result[probe.name] = False
            except stripe.InvalidRequestError as exc:
                # 404 resource_missing on the impossible id: the key was allowed to try.
                result[probe.name] = exc.http_status == 404
            except stripe.StripeError as exc:
                raise billy_error(exc) from exc
    return result


# Stripe's 403 to a restricted key names the key's account: "... for this endpoint on account
# 'acct_1Abc'. Having the 'rak_…' permission would allow this request to continue."
_ACCOUNT_IN_REFUSAL = re.compile(r"\bon account '(acct_[A-Za-z0-9]{1,64})'")


def account_of(key: str) -> str | None:
    """The Stripe account `key` belongs to, when Stripe says: `GET /v1/account` answers it to a
    key that may read the account, and Stripe's 403 names it to a restricted key that may not
    (Billy's six permissions do not include it). None when neither says; callers must then rest
    on objects the key can or cannot find (`key_finds_any`)."""
    try:
        body = make_client(key).raw_request("get", "/v1/account", max_network_retries=0).data
    except stripe.PermissionError as exc:
        found = _ACCOUNT_IN_REFUSAL.search(readable_error(exc))
        return found.group(1) if found else None
    except stripe.StripeError as exc:
        raise billy_error(exc) from exc
    account = body.get("id") if isinstance(body, dict) else None
    return str(account) if isinstance(account, str) and account.startswith("acct_") else None


def key_finds_any(key: str, objects: Sequence[tuple[str, str]]) -> bool:
    """Whether `key` can retrieve at least one of `objects` ((collection, id), e.g. ("charges",
    "ch_1")). A Stripe id lives in exactly one account: another account's key (or the other mode's)
    gets 404 `resource_missing` for it, so one found object proves the key reaches the account that
    holds it. Asked one at a time, stopping at the first found."""
    client = make_client(key)
    for collection, object_id in objects:
        try:
            client.raw_request("get", f"/v1/{collection}/{quote(object_id, safe='')}", max_network_retries=0)
            return True
        except stripe.InvalidRequestError as exc:
            if exc.http_status == 404:
                continue
            raise billy_error(exc) from exc
        except stripe.StripeError as exc:
            raise billy_error(exc) from exc
    return False


class StripeGateway:
    """Stripe calls made with the connected key. `key_provider` exists so tests and the
    control plane can supply the key differently; by default it is the secret store.

    With the connected key, a 401 (Stripe no longer knows the key: revoked, rolled or expired)
    is reported to `key_watch` on the way out, so the Owner hears of it once, whichever call
    met it first."""

    def __init__(self, key_provider: Callable[[], str | None] | None = None) -> None:
        self._watched = key_provider is None  # the connected key, from the secret store
        self._key_provider = key_provider or (lambda: get_secret_store().get(STRIPE_KEY_SECRET))
        self._local = threading.local()  # per thread: Stripe's clock at its latest answer

    def _noted(self, answer: Any, took: float = 0.0) -> Any:
        """Keep Stripe's clock at this answer (`stripe_time`) and, for a read that took `took`
        seconds, when it reached Stripe at the latest (`read_stamp`); hand the answer on."""
        at = _answer_time(answer)
        if at is not None:
            self._local.answered_at = at
            self._local.asked_at = at - math.ceil(took)
        else:
            self._local.asked_at = None
        return answer

    def read_stamp(self) -> int:
        """Stripe's clock, to the second, no later than when this thread's latest read reached
        Stripe: the answer's `Date` (truncated) less the whole seconds the read took. Stamp what
        that read returned with it. Never the machine's clock, which may run minutes off
        Stripe's: a stamp ahead of Stripe's clock would make the next change's event look older
        than the stored copy, and drop it. The machine's clock only for an answer without `Date`."""
        at = getattr(self._local, "asked_at", None)
        return int(at) if at is not None else int(time.time()) - 1

    def stripe_time(self) -> int:
        """Stripe's clock at its latest answer to this thread: the version stamp of what that
        answer (or a read after it) stores, comparable with Stripe's event times whatever Billy's
        own clock says. Billy's clock only when Stripe's answer had no `Date`."""
        at = getattr(self._local, "answered_at", None)
        return int(at) if at is not None else int(clock.now().timestamp())

    def _key(self) -> str:
        key = self._key_provider()
        if not key:
            raise StripeNotConnected()
        return key

    @staticmethod
    def _mode_of(key: str) -> str:
        return "live" if "_live_" in key else "test"

    def _refused(self, key: str, exc: stripe.StripeError) -> StripeRequestFailed:
        """The Billy error for `exc`; a 401 to the key still connected is noted for the Owner
        (a key swapped meanwhile by a rotation is not the connected key any more)."""
        if (
            isinstance(exc, stripe.AuthenticationError)
            and self._watched
            and get_secret_store().get(STRIPE_KEY_SECRET, fresh=True) == key  # not a copy kept from before
        ):
            key_watch.key_rejected(key[-4:])
        return billy_error(exc)

    def _call(self, fn: Callable[[stripe.StripeClient], Any]) -> Any:
        key = self._key()
        try:
            return self._noted(fn(make_client(key)))
        except stripe.StripeError as exc:
            log.warning("Stripe refused a request: %s", readable_error(exc))
            raise self._refused(key, exc) from exc

    def read(self, fn: Callable[[stripe.StripeClient], Any], on_throttled: Callable[[], None] | None = None) -> Any:
        """A read under the rate gate, retried with jittered back-off on 429, 5xx and network
        errors (`on_throttled` hears of every 429). Refusals (403, 404, 400) are not retried."""
        key = self._key()  # one secret-store read per call, for the client and the mode
        client, gate = make_client(key), rate_gate(self._mode_of(key))

        def attempt() -> Any:
            gate.acquire()
            try:
                return fn(client)
            except stripe.RateLimitError:
                if on_throttled:
                    on_throttled()
                raise

        try:
            for tried in Retrying(
                retry=retry_if_exception(_retryable),
                wait=_read_backoff(),
                stop=stop_after_attempt(READ_ATTEMPTS),
                reraise=True,
            ):
                with tried:
                    started = time.monotonic()
                    answer = attempt()
                    return self._noted(answer, time.monotonic() - started)
        except stripe.StripeError as exc:
            log.warning("Stripe refused a read: %s", readable_error(exc))
            raise self._refused(key, exc) from exc
        raise AssertionError("unreachable")  # pragma: no cover

    def list_page(
        self,
        resource: str,
        starting_after: str | None = None,
        limit: int | None = None,
        params: dict[str, Any] | None = None,
        on_throttled: Callable[[], None] | None = None,
        path: str | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of a list endpoint (`/v1/<resource>`, or `path`), newest first, as Stripe
        lists. Read as plain JSON (`get_json`): building SDK objects only to flatten them again
        cost more than the request itself on a backfill (bench/backfill)."""
        query: dict[str, Any] = {**(params or {}), "limit": limit or PAGE_SIZE}
        if starting_after:
            query["starting_after"] = starting_after
        body = self.read(lambda c: get_json(c, path or f"/v1/{resource}", query), on_throttled).data
        return list(body.get("data") or []), bool(body.get("has_more"))

    def iterate(
        self,
        resource: str,
        starting_after: str | None = None,
        params: dict[str, Any] | None = None,
        on_throttled: Callable[[], None] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        while True:
            items, has_more = self.list_page(resource, starting_after, params=params, on_throttled=on_throttled)
            if items:
                yield items
                starting_after = items[-1]["id"]
            if not has_more or not items:
                return

    def check_reachable(self) -> None:
        """One small read under the rate gate and without retries, for readiness: raises the
        Billy error for whatever stopped it (`StripeRateLimited` means Stripe did answer)."""
        key = self._key()
        rate_gate(self._mode_of(key)).acquire()
        try:
            make_client(key).raw_request("get", "/v1/customers", limit=1, max_network_retries=0)
        except stripe.StripeError as exc:
            raise self._refused(key, exc) from exc

    def retrieve(self, kind: str, object_id: str) -> dict[str, Any]:
        """The current copy of one object, for an event that cannot be ordered by time alone."""
        service = resources.BY_OBJECT[kind].collection
        return as_dict(
            self.read(lambda c: getattr(c.v1, service).retrieve(object_id, options={"max_network_retries": 0}))
        )

    def retrieve_charge(self, charge_id: str) -> dict[str, Any]:
        return as_dict(self._call(lambda c: c.v1.charges.retrieve(charge_id)))

    def create_refund(
        self,
        charge_id: str,
        amount: int | None,
        reason: str | None,
        idempotency_key: str,
        metadata: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        params: RefundCreateParams = {"charge": charge_id}
        if amount is not None:
            params["amount"] = amount
        if reason:
            params["reason"] = reason
        if metadata:
            params["metadata"] = metadata
        options: Any = {"idempotency_key": idempotency_key, "max_network_retries": 0}
        return self._write("refunds.create", lambda c: c.v1.refunds.create(params=params, options=options))

    def _write(self, call: str, fn: Callable[[stripe.StripeClient], Any]) -> dict[str, Any]:
        """One write, asked again after a 429, a 409, a 5xx or a lost answer (`WRITE_ATTEMPTS` in
        all), always with the caller's idempotency key (`fn` carries it): Stripe makes the change
        once, and a retry after a change whose answer was lost gets Stripe's saved answer back
        (`Idempotent-Replayed`). What happened on the way goes to `collecting_trails`."""
        key = self._key()
        client = make_client(key)
        trail = WriteTrail(call)
        collected = _trails.get()
        if collected is not None:
            collected.append(trail)
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                answer = self._noted(fn(client))
            except stripe.StripeError as exc:
                if attempt < WRITE_ATTEMPTS and _write_retryable(exc):
                    trail.failures.append(_failure_words(exc))
                    log.info("Stripe write %s failed (%s); asking again with the same key", call, trail.failures[-1])
                    pause(_write_wait(exc, attempt))
                    continue
                log.warning("Stripe refused a write: %s", readable_error(exc))
                failure = self._refused(key, exc)
                trail.outcome_unknown = failure.outcome_unknown
                if _write_retryable(exc):  # every attempt failed: say how, not the SDK's network text
                    trail.failures.append(_failure_words(exc))
                    failure.message = _gave_up(trail.failures)
                raise failure from exc
            trail.replayed = _answer_headers(answer).get("Idempotent-Replayed") == "true"
            return as_dict(answer)
        raise AssertionError("unreachable")  # pragma: no cover

    def write(
        self,
        collection: str,
        method: str,
        params: dict[str, Any],
        idempotency_key: str,
        object_id: str | None = None,
    ) -> dict[str, Any]:
        """One Stripe write under the caller's idempotency key, so a retry or a double submit
        makes one change and gets the first answer back: `collection` is the v1 service
        ("customers", "subscriptions", "invoices", ...), `method` its call ("update", "cancel",
        "finalize_invoice", ...). `params` are already checked by the service that builds them."""
        fields: Any = params  # the SDK's typed params for that call, built by services/
        arguments = [object_id] if object_id is not None else []

        def call(c: stripe.StripeClient) -> Any:
            operation = getattr(getattr(c.v1, collection), method)
            options = {"idempotency_key": idempotency_key, "max_network_retries": 0}
            return operation(*arguments, params=fields, options=options)

        return self._write(f"{collection}.{method}", call)
