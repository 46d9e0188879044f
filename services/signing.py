"""The instance's own signing key, created on first use and kept in the secret store.

Used to sign short-lived messages handed to the browser (form results now; the
1-hour access JWT in issue 3), so the browser can carry them but not forge them.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
import weakref
from typing import Any

from itsdangerous import BadSignature, URLSafeTimedSerializer

from services.secrets import SecretStore, get_secret_store

SIGNING_KEY_SECRET = "instance-signing-key"
JWT_KEY_SECRET = "jwt-signing-key"  # the access JWTs' own key (services/identity.py)
# Every key an instance makes for itself on first use. Each process keeps the one it read for
# KEY_KEPT_SECONDS, so every worker must read the same one: see `make_instance_keys`.
INSTANCE_KEYS = (SIGNING_KEY_SECRET, JWT_KEY_SECRET)
_lock = threading.Lock()


def digest(token: str) -> str:
    """What the store keeps of a secret handed out (a refresh token, a link, an agent token, a
    confirmation): its SHA-256, so a copy of the database grants nothing."""
    return hashlib.sha256(token.encode()).hexdigest()


# How long a process keeps a key it read: every event a tab sends verifies its access JWT, and
# reading the key each time meant a file read and a decryption under one lock here, and an HTTPS
# call to Key Vault (with its request limits) on Azure, per event. A key replaced in the store by
# hand is picked up within this time, or at a restart.
KEY_KEPT_SECONDS = 300.0
# Kept per store object, so a process that switches stores (the tests do) never reads one store's
# key for another's.
_kept: weakref.WeakKeyDictionary[Any, dict[str, tuple[float, str]]] = weakref.WeakKeyDictionary()


def instance_key(name: str = SIGNING_KEY_SECRET) -> str:
    """A random per-instance key from the secret store, created the first time it is asked for."""
    store = get_secret_store()
    kept = _kept.get(store, {}).get(name)
    if kept is not None and kept[0] > time.monotonic():
        return kept[1]
    with _lock:
        key = store.get(name)
        if key is None:  # first use: another process of this instance may be proposing one right now
            key = store.create_if_absent(name, secrets.token_urlsafe(48))
        _kept.setdefault(store, {})[name] = (time.monotonic() + KEY_KEPT_SECONDS, key)
    return key


def make_instance_keys(store: SecretStore) -> list[str]:
    """Create each instance key the store lacks; answers the names created.

    Run by the one process that starts the workers, before any of them (`billy_app.serve`): workers
    that each found no key and made their own kept different ones, so a page signed in on one
    worker was sent back to the sign-in page by the next (the flake of stop 32). The local store
    makes a race harmless anyway; Key Vault has no conditional write, so there this is the guard."""
    created = []
    for name in INSTANCE_KEYS:
        proposed = secrets.token_urlsafe(48)
        if store.create_if_absent(name, proposed) == proposed:  # a key already there is kept
            created.append(name)
    return created


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(instance_key(), salt=f"billy:{purpose}")


def sign(purpose: str, payload: dict[str, Any]) -> str:
    return _serializer(purpose).dumps(payload)


def unsign(purpose: str, token: str, max_age_seconds: int) -> dict[str, Any] | None:
    """The payload, or None when the token is forged, for another purpose, or too old."""
    try:
        payload = _serializer(purpose).loads(token, max_age=max_age_seconds)
    except BadSignature:
        return None
    return payload if isinstance(payload, dict) else None
