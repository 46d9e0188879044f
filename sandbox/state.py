"""The sandbox's own state next to localstripe's store, and the store hooks.

localstripe keeps everything in one module-level `store` dict and rewrites it
to /tmp/localstripe.pickle on every write. The hooks installed here replace
that: every write now feeds the indexes and marks the state dirty, and saving
is left to `sandbox.persistence` (only with --data-dir).
"""

from __future__ import annotations

import secrets
import string
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web
from localstripe import resources
from localstripe.resources import store

from sandbox.indexes import StoreIndex

ACCOUNT_ID = "acct_billysandbox"
# The API version events carry; the app pins the same one in stripe_gateway.
API_VERSION = "2026-10-28.endive"

INDEX = StoreIndex(store)


@dataclass(frozen=True)
class RequestInfo:
    """What Stripe records of the API request that caused an event (`event.request`)."""

    id: str
    idempotency_key: str | None


# Where a request's Stripe-style id is kept on the aiohttp request.
REQUEST_ID = web.RequestKey("sandbox_request_id", str)

current_request: ContextVar[RequestInfo | None] = ContextVar("sandbox_request", default=None)


class Extension(Protocol):
    """A piece of sandbox state that is reset, saved and restored with the store."""

    def snapshot(self) -> Any: ...

    def restore(self, data: Any) -> None: ...

    def reset(self) -> None: ...


_extensions: dict[str, Extension] = {}
_dirty_listeners: list[Callable[[], None]] = []


def register(name: str, extension: Extension) -> None:
    _extensions[name] = extension


def extensions() -> dict[str, Extension]:
    return dict(_extensions)


def on_dirty(listener: Callable[[], None]) -> None:
    _dirty_listeners.append(listener)


def off_dirty(listener: Callable[[], None]) -> None:
    if listener in _dirty_listeners:
        _dirty_listeners.remove(listener)


def mark_dirty() -> None:
    for listener in _dirty_listeners:
        listener()


def random_token(length: int) -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def reset_all() -> None:
    """Empty the store, the indexes and every registered extension."""
    store.clear()
    INDEX.reset()
    for extension in _extensions.values():
        extension.reset()
    mark_dirty()


def capture() -> dict[str, Any]:
    """Everything a restart or a snapshot must bring back: the store and each extension's state."""
    return {
        "store": dict(store),
        "extensions": {name: extension.snapshot() for name, extension in _extensions.items()},
    }


def apply(saved: dict[str, Any]) -> None:
    """Replace the whole state with one `capture()` made earlier (unpickled, so never shared)."""
    store.clear()
    dict.update(store, saved["store"])
    INDEX.rebuild()
    for name, extension in _extensions.items():
        if name in saved["extensions"]:
            extension.restore(saved["extensions"][name])
        else:
            extension.reset()
    mark_dirty()


def _store_setitem(self: dict[str, Any], key: str, value: Any) -> None:
    dict.__setitem__(self, key, value)
    INDEX.on_set(key, value)
    mark_dirty()


def _store_delitem(self: dict[str, Any], key: str) -> None:
    dict.__delitem__(self, key)
    INDEX.on_delete(key)
    mark_dirty()


def _no_disk(self: dict[str, Any]) -> None:
    """localstripe's fixed-path pickle is disabled; `mark_dirty` replaces it."""


def index_fields_after_init(cls: Any) -> None:
    """Re-read indexed fields once a constructor has finished.

    A query made while an object is being built (an event exporting a charge
    lists its refunds) would otherwise index it before its fields are set.
    """
    init = cls.__init__

    def init_then_index(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        INDEX.refresh(cls.object, self.id)

    cls.__init__ = init_then_index


def install() -> None:
    """Hook localstripe's Store class: index every write, never touch /tmp."""
    resources.Store.__setitem__ = _store_setitem
    resources.Store.__delitem__ = _store_delitem
    resources.Store.dump_to_disk = _no_disk
    resources.Store.try_load_from_disk = _no_disk
    INDEX.rebuild()
