"""`Idempotency-Key` for the REST API's writes (issue 13): one answer per caller and key.

A script that lost an answer to a timeout sends the same request again with the same key and
must get the first answer back, not a second refund. So the first request claims the key (a row
with `status_code` 0) *before* it acts, and stores its answer (status and JSON) when done:

- the same key with the same request again gets the stored answer, and nothing runs twice;
- the same key with another request (method, path or body) is refused: `KeyReused` (409);
- the same key while the first request is still running is refused: `KeyInUse` (409).

Keys are per caller (the member, and the agent token when one is used), so two members or two
tokens never collide. The Stripe idempotency key each write passes on is derived from the caller,
the key and the request (`stripe_key`): a retry after an answer lost *between* Stripe and this
table reaches Stripe under the same key, and the service's own intent record makes it one change.

Only answers that say what happened are kept (status below 500, refusals included). After a
failure that leaves the outcome open (Stripe unreachable, an internal error) the same request may
be sent again with the same key, and runs again under the same Stripe key; another request with
that key is still refused. A claim left behind by a crashed worker is taken over after
`RUNNING_AT_MOST`. Answers are kept for `KEEP_FOR` (as Stripe keeps its keys), then the key is
free again (a caller's expired answers are deleted as its new ones are stored); the Stripe key
also binds the request's digest, so a key reused later for another request is a new write.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import col

from services.db import session_scope
from services.errors import BillyError, ValidationFailed
from services.models import ApiIdempotency, table_of, utcnow
from services.permissions import Actor

KEEP_FOR = timedelta(hours=24)
RUNNING = 0  # `status_code` while the request holding the key runs
OPEN = -1  # `status_code` after a failure whose outcome is open: the same request may try again
RUNNING_AT_MOST = timedelta(minutes=5)  # a claim older than this, still unanswered, was abandoned
CLAIM_ATTEMPTS = 3
_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")  # printable ASCII, no spaces (a header value)
_table = table_of(ApiIdempotency)

# What a write does once it holds the key: given the Stripe idempotency key to use, its answer
# as (HTTP status, JSON body).
Perform = Callable[[str], tuple[int, dict[str, Any]]]


class IdempotencyConflict(BillyError):
    """The key cannot be used for this request now (the REST API answers 409)."""

    code = "idempotency_conflict"


class KeyReused(IdempotencyConflict):
    code = "idempotency_key_reused"

    def __init__(self) -> None:
        super().__init__(
            "This Idempotency-Key was already used for a different request (another path or body). "
            "Use a new key for a new request."
        )


class KeyInUse(IdempotencyConflict):
    code = "idempotency_key_in_use"

    def __init__(self) -> None:
        super().__init__(
            "A request with this Idempotency-Key is still being processed. Wait for its answer, "
            "then repeat the request to read it."
        )


@dataclass(frozen=True)
class Answer:
    status_code: int
    body: dict[str, Any]
    replayed: bool  # True: the stored answer of an earlier request with this key


def caller_of(actor: Actor) -> str:
    """Whose keys these are: the member, and the agent token when one is acting."""
    member = f"m{actor.user_id if actor.user_id is not None else '-'}"
    return f"{member}/{actor.token_id}"[:60] if actor.token_id else member


def check_key(key: object) -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValidationFailed("An Idempotency-Key is 1–255 printable ASCII characters without spaces.")
    return key


def stripe_key(actor: Actor, key: str, digest: str) -> str:
    """The Stripe idempotency key of this caller's request under `key`: the same for every retry of
    that request, another for another request or another caller (and within Stripe's 255
    characters of `[A-Za-z0-9_-]`). So a key reused for a new request after `KEEP_FOR` never
    meets Stripe's (or the service's) record of the old one."""
    return "api_" + hashlib.sha256(f"{caller_of(actor)}\n{key}\n{digest}".encode()).hexdigest()


def request_digest(method: str, path: str, body: Mapping[str, Any] | None) -> str:
    """What makes two requests "the same": method, path and the body's JSON (keys sorted)."""
    canonical = json.dumps(body or {}, sort_keys=True, separators=(",", ":"), ensure_ascii=True, default=str)
    return hashlib.sha256(f"{method.upper()} {path}\n{canonical}".encode()).hexdigest()


def run(actor: Actor, key: str, digest: str, perform: Perform) -> Answer:
    """Perform the request once per (caller, key): the stored answer for a repeat, a conflict for
    a different request or one still running. `perform` must answer, not raise, for outcomes that
    are final (refusals included); whatever it raises, or answers with a 5xx, leaves the request
    open to a retry (the same request only)."""
    caller, key = caller_of(actor), check_key(key)
    stored = _claim(caller, key, digest)
    if stored is not None:
        return stored
    try:
        status_code, body = perform(stripe_key(actor, key, digest))
    except BaseException:
        _reopen(caller, key)
        raise
    if status_code >= 500:
        _reopen(caller, key)
    else:
        _finish(caller, key, status_code, body)
    return Answer(status_code, body, replayed=False)


def _claim(caller: str, key: str, digest: str) -> Answer | None:
    """None when this request now holds the key; the stored answer when it repeats one."""
    for _ in range(CLAIM_ATTEMPTS):
        now = utcnow()
        try:
            with session_scope() as session:
                session.add(ApiIdempotency(caller=caller, key=key, request_digest=digest, created_at=now))
            return None
        except sa.exc.IntegrityError:
            pass  # claimed before: read what is there
        with session_scope() as session:
            row = session.get(ApiIdempotency, (caller, key))
            if row is None:
                continue  # forgotten a moment ago: claim it afresh
            expired = row.created_at <= now - KEEP_FOR
            abandoned = row.status_code == RUNNING and row.created_at <= now - RUNNING_AT_MOST
            if row.status_code == RUNNING and not (expired or abandoned):
                raise KeyInUse()
            if row.request_digest != digest and not expired:
                raise KeyReused()
            if expired or abandoned or row.status_code == OPEN:
                # Take it over (once: of two retries arriving together, one runs, one is told to wait).
                taken = session.exec(
                    _table.update()
                    .where(
                        col(ApiIdempotency.caller) == caller,
                        col(ApiIdempotency.key) == key,
                        col(ApiIdempotency.status_code) == row.status_code,
                        col(ApiIdempotency.created_at) == row.created_at,
                    )
                    .values(request_digest=digest, status_code=RUNNING, response={}, created_at=now)
                ).rowcount
                if taken == 1:
                    return None
                continue
            return Answer(row.status_code, dict(row.response or {}), replayed=True)
    raise KeyInUse()


def _finish(caller: str, key: str, status_code: int, body: dict[str, Any]) -> None:
    """Store the answer, and forget this caller's answers past `KEEP_FOR` (the table stays small)."""
    with session_scope() as session:
        session.exec(
            _table.update()
            .where(col(ApiIdempotency.caller) == caller, col(ApiIdempotency.key) == key)
            .values(status_code=status_code, response=body)
        )
        session.exec(
            _table.delete().where(
                col(ApiIdempotency.caller) == caller, col(ApiIdempotency.created_at) <= utcnow() - KEEP_FOR
            )
        )


def _reopen(caller: str, key: str) -> None:
    """The outcome is open (Stripe unreachable, an internal error): the same request may run again
    under the same key (and the same Stripe key, so Stripe makes one change); another may not."""
    with session_scope() as session:
        session.exec(
            _table.update()
            .where(
                col(ApiIdempotency.caller) == caller,
                col(ApiIdempotency.key) == key,
                col(ApiIdempotency.status_code) == RUNNING,
            )
            .values(status_code=OPEN)
        )
