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

from services.secrets import get_secret_store

SIGNING_KEY_SECRET = "instance-signing-key"
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
        if key is None:
            key = secrets.token_urlsafe(48)
            store.set(name, key)
        _kept.setdefault(store, {})[name] = (time.monotonic() + KEY_KEPT_SECONDS, key)
    return key


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
