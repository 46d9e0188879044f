"""Per-type and per-field indexes over localstripe's store.

localstripe answers every list (and every embedded list such as `charge.refunds`)
by scanning its whole store, so listing slows down as data grows. These indexes
are fed by the store's own write hooks and keep each object type sorted the way
Stripe lists it: by `created`, ties broken by insertion order.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterator
from typing import Any

SortKey = tuple[int, int]  # (created, insertion sequence)

# Secondary indexes: (object type, attribute). Only attributes that never
# change after creation are indexed; list filters still re-check the value.
FIELD_INDEXES: dict[str, tuple[str, ...]] = {
    "charge": ("customer",),
    "refund": ("charge",),
    "invoice": ("customer",),
    "subscription": ("customer",),
    "event": ("_origin",),
}


class SortedIds:
    """Ids kept sorted by (created, seq); iteration can start at any cursor."""

    def __init__(self) -> None:
        self._keys: list[SortKey] = []
        self._ids: list[str] = []

    def __len__(self) -> int:
        return len(self._ids)

    def add(self, object_id: str, key: SortKey) -> None:
        index = bisect_right(self._keys, key)
        self._keys.insert(index, key)
        self._ids.insert(index, object_id)

    def remove(self, key: SortKey) -> None:
        index = bisect_left(self._keys, key)
        if index < len(self._keys) and self._keys[index] == key:
            del self._keys[index]
            del self._ids[index]

    def newest_first(self, before: SortKey | None = None) -> Iterator[str]:
        """Ids from newest to oldest, only those strictly older than `before`."""
        start = len(self._keys) if before is None else bisect_left(self._keys, before)
        for index in range(start - 1, -1, -1):
            yield self._ids[index]

    def oldest_first(self, after: SortKey) -> Iterator[str]:
        """Ids from oldest to newest, only those strictly newer than `after`."""
        for index in range(bisect_right(self._keys, after), len(self._keys)):
            yield self._ids[index]


class TypeIndex:
    """All objects of one type: sort keys by id (in insertion order) plus the sorted view."""

    def __init__(self) -> None:
        self.keys: dict[str, SortKey] = {}
        self.sorted = SortedIds()
        self.fields: dict[str, dict[Any, SortedIds]] = {}
        self.field_values: dict[str, dict[str, Any]] = {}  # id -> indexed values

    def field(self, name: str, value: Any) -> SortedIds | None:
        return self.fields.get(name, {}).get(value)

    def unlink_fields(self, object_id: str, key: SortKey) -> dict[str, Any]:
        """Take an object out of its field buckets; return the values it had."""
        values = self.field_values.pop(object_id, {})
        for name, value in values.items():
            self.fields[name][value].remove(key)
        return values

    def link_fields(self, object_id: str, key: SortKey, values: dict[str, Any]) -> None:
        for name, value in values.items():
            self.fields.setdefault(name, {}).setdefault(value, SortedIds()).add(object_id, key)
        if values:
            self.field_values[object_id] = values


class StoreIndex:
    """Indexes for every type in the store, maintained from the store's write hooks.

    Field values are read late: localstripe inserts an object into the store
    before its constructor sets attributes such as `refund.charge`, so new
    objects wait in `_pending` until the next query, and `refresh` is called
    again once their constructor has finished (see `state.index_fields_after_init`).
    """

    def __init__(self, store: dict[str, Any]) -> None:
        self._store = store
        self.reset()

    def reset(self) -> None:
        self._types: dict[str, TypeIndex] = {}
        self._location: dict[str, str] = {}  # id -> object type
        self._pending: list[tuple[str, str]] = []
        self._seq = 0

    def rebuild(self) -> None:
        """Index an already filled store (after loading it from disk)."""
        self.reset()
        for key, obj in list(self._store.items()):
            self.on_set(key, obj)

    # -- store hooks --------------------------------------------------------

    def on_set(self, key: str, obj: Any) -> None:
        object_type, sep, object_id = key.partition(":")
        if not sep:
            return  # singletons such as the balance
        if object_id in self._location:
            self.on_delete(key)
        self._seq += 1
        sort_key = (int(getattr(obj, "created", 0) or 0), self._seq)
        index = self._types.setdefault(object_type, TypeIndex())
        index.keys[object_id] = sort_key
        index.sorted.add(object_id, sort_key)
        self._location[object_id] = object_type
        if object_type in FIELD_INDEXES:
            self._pending.append((object_type, object_id))

    def on_delete(self, key: str) -> None:
        object_type, _, object_id = key.partition(":")
        index = self._types.get(object_type)
        if index is None or object_id not in index.keys:
            return
        sort_key = index.keys.pop(object_id)
        index.sorted.remove(sort_key)
        index.unlink_fields(object_id, sort_key)
        self._location.pop(object_id, None)

    # -- queries ------------------------------------------------------------

    def _flush(self) -> None:
        pending, self._pending = self._pending, []
        for object_type, object_id in pending:
            self.refresh(object_type, object_id)

    def refresh(self, object_type: str, object_id: str) -> None:
        """(Re)read an object's indexed fields; safe to call any number of times."""
        index = self._types.get(object_type)
        obj = self._store.get(f"{object_type}:{object_id}")
        if index is None or obj is None or object_id not in index.keys:
            return
        key = index.keys[object_id]
        index.unlink_fields(object_id, key)
        values = {
            name: getattr(obj, name)
            for name in FIELD_INDEXES.get(object_type, ())
            if isinstance(getattr(obj, name, None), str)
        }
        index.link_fields(object_id, key, values)

    def type_of(self, object_id: str) -> str | None:
        return self._location.get(object_id)

    def get(self, object_type: str, object_id: str) -> Any:
        return self._store.get(f"{object_type}:{object_id}")

    def sort_key(self, object_type: str, object_id: str) -> SortKey | None:
        index = self._types.get(object_type)
        return index.keys.get(object_id) if index else None

    def insertion_order(self, object_type: str) -> list[Any]:
        """All objects of a type as localstripe would list them (store order)."""
        index = self._types.get(object_type)
        if index is None:
            return []
        return [self.get(object_type, object_id) for object_id in index.keys]

    def view(self, object_type: str, field: str | None = None, value: Any = None) -> SortedIds:
        """The sorted ids of a type, or of the objects whose `field` equals `value`."""
        index = self._types.get(object_type)
        if index is None:
            return SortedIds()
        if field is None:
            return index.sorted
        self._flush()
        return index.field(field, value) or SortedIds()

    def objects(
        self,
        object_type: str,
        field: str | None = None,
        value: Any = None,
        where: Callable[[Any], bool] | None = None,
    ) -> Iterator[Any]:
        """Objects newest first, optionally narrowed by an indexed field and a predicate."""
        for object_id in self.view(object_type, field, value).newest_first():
            obj = self.get(object_type, object_id)
            if obj is not None and (where is None or where(obj)):
                yield obj

    def set_created(self, object_type: str, object_id: str, created: int) -> None:
        """Move an object to a new `created` time, keeping its insertion rank for ties."""
        index = self._types[object_type]
        self._flush()
        old = index.keys[object_id]
        new = (created, old[1])
        index.keys[object_id] = new
        index.sorted.remove(old)
        index.sorted.add(object_id, new)
        index.link_fields(object_id, new, index.unlink_fields(object_id, old))
