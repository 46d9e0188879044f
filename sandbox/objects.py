"""Helpers shared by the sandbox's own billing objects (prices, subscriptions, invoices).

These objects live in localstripe's store like every other object (so ids,
indexes, persistence, backdating and the 404 answers work the same), but they
build their JSON themselves, in the shape of Stripe's current API.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable
from typing import Any

from aiohttp import web

from sandbox.errors import invalid_request, resource_missing, unknown_parameter
from sandbox.params import Predicate, string_list, to_bool, to_int
from sandbox.responses import json_response
from sandbox.state import INDEX


def refuse_unknown(params: dict[str, Any], allowed: Iterable[str], prefix: str = "") -> None:
    """Stripe: "Received unknown parameter: x" (nested names as `recurring[x]`)."""
    known = set(allowed)
    for name in params:
        if name not in known:
            raise unknown_parameter(f"{prefix}[{name}]" if prefix else name)


def required(params: dict[str, Any], name: str, shown: str | None = None) -> Any:
    """Stripe: "Missing required param: customer." with code `parameter_missing`."""
    value = params.get(name)
    if value is None or value == "":
        label = shown or name
        raise invalid_request(f"Missing required param: {label}.", param=label, code="parameter_missing")
    return value


def lookup(object_type: str, object_id: Any, param: str) -> Any:
    """An id given as a parameter: unknown ids are 400 `resource_missing` naming the param."""
    if not isinstance(object_id, str) or not object_id:
        raise invalid_request(f"Invalid string: {object_id!r}", param=param)
    obj = INDEX.get(object_type, object_id)
    if obj is None:
        raise resource_missing(object_type, object_id, param=param, status=400)
    return obj


def from_path(request: web.Request, object_type: str, key: str = "id") -> Any:
    """The object a URL names (`/v1/<type>s/{id}`): an unknown id is a 404 `resource_missing`."""
    object_id = request.match_info[key]
    obj = INDEX.get(object_type, object_id)
    if obj is None:
        raise resource_missing(object_type, object_id)
    return obj


def respond(obj: Any, params: dict[str, Any]) -> web.Response:
    """The object as Stripe returns it, with the `expand[]` the request asked for."""
    return json_response(obj._export(expand=params.get("expand")))


def list_object(url: str, data: list[dict[str, Any]]) -> dict[str, Any]:
    """An embedded list as Stripe nests them (`items`, `lines`)."""
    return {"object": "list", "data": data, "has_more": False, "total_count": len(data), "url": url}


def expand_export(data: dict[str, Any], expand: Any) -> dict[str, Any]:
    """Stripe's `expand[]`: replace ids at the given paths by their objects."""
    for path in string_list("expand", expand or []):
        _expand_path(data, path.split("."))
    return data


def _expand_path(node: Any, parts: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _expand_path(item, parts)
        return
    if not isinstance(node, dict) or not parts:
        return
    key, rest = parts[0], parts[1:]
    if key not in node:
        raise invalid_request(f"This property cannot be expanded ({key}).", param="expand")
    value = node[key]
    if isinstance(value, str):
        object_type = INDEX.type_of(value)
        obj = INDEX.get(object_type, value) if object_type else None
        if obj is not None:
            node[key] = value = obj._export()
    if rest:
        _expand_path(value, rest)


def range_filter(attribute: str) -> Callable[[Any], Predicate]:
    """A time filter on any field: exact, or `gt`/`gte`/`lt`/`lte` (as `created`)."""
    tests = {
        "gt": lambda a, b: a > b,
        "gte": lambda a, b: a >= b,
        "lt": lambda a, b: a < b,
        "lte": lambda a, b: a <= b,
    }

    def build(value: Any) -> Predicate:
        if isinstance(value, dict):
            checks = []
            for op, bound in value.items():
                if op not in tests:
                    raise unknown_parameter(f"{attribute}[{op}]")
                checks.append((tests[op], to_int(f"{attribute}[{op}]", bound)))

            def in_range(obj: Any) -> bool:
                current = getattr(obj, attribute, None)
                return current is not None and all(test(current, bound) for test, bound in checks)

            return in_range
        exact = to_int(attribute, value)
        return lambda obj: getattr(obj, attribute, None) == exact

    return build


def bool_filter(attribute: str) -> Callable[[Any], Predicate]:
    def build(value: Any) -> Predicate:
        wanted = to_bool(attribute, value)
        return lambda obj: bool(getattr(obj, attribute, None)) == wanted

    return build


def one_of(name: str, value: Any, choices: Iterable[str]) -> str:
    """Stripe: "Invalid status: must be one of draft, open, paid, uncollectible, or void"."""
    options = list(choices)
    if value not in options:
        listed = ", ".join(options[:-1]) + f", or {options[-1]}" if len(options) > 1 else options[0]
        raise invalid_request(f"Invalid {name}: must be one of {listed}", param=name)
    return str(value)


class Snapshot:
    """An already exported object, for events about a view of an object (a Price as a Plan)."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.id = data.get("id")
        self._data = data

    def _export(self, expand: Any = None) -> dict[str, Any]:
        return copy.deepcopy(self._data)
