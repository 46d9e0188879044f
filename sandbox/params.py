"""Reading request parameters the way Stripe validates them."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from aiohttp import web
from localstripe.server import get_post_data, unflatten_data

from sandbox.errors import invalid_integer, invalid_request, unknown_parameter

Predicate = Callable[[Any], bool]


async def read_params(request: web.Request) -> dict[str, Any]:
    """Form-encoded (what SDKs send) or JSON body for POST, the query string otherwise."""
    if request.method == "POST":
        data = await get_post_data(request)
        return dict(data) if data else {}
    return dict(unflatten_data(request.query)) if request.query else {}


async def read_json_or_form(request: web.Request) -> dict[str, Any]:
    """Config endpoints take JSON; a form body is accepted as well."""
    raw = await request.read()
    if not raw:
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        return await read_params(request)
    if not isinstance(data, dict):
        raise invalid_request("The request body must be a JSON object.")
    return data


def to_int(name: str, value: Any) -> int:
    if isinstance(value, bool):
        raise invalid_integer(name, value)
    if isinstance(value, int):
        return value
    try:
        return int(str(value).strip())
    except ValueError:
        raise invalid_integer(name, value) from None


def bounded_int(name: str, value: Any, minimum: int | None = None, maximum: int | None = None) -> int:
    """Stripe: "This value must be greater than or equal to 1." (param-scoped)."""
    number = to_int(name, value)
    if minimum is not None and number < minimum:
        raise invalid_request(
            f"This value must be greater than or equal to {minimum}.",
            param=name,
            code="parameter_invalid_integer",
        )
    if maximum is not None and number > maximum:
        raise invalid_request(
            f"This value must be less than or equal to {maximum}.",
            param=name,
            code="parameter_invalid_integer",
        )
    return number


def to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).lower()
    if text in ("true", "false"):
        return text == "true"
    raise invalid_request(f"Invalid boolean: {value}", param=name, code="parameter_invalid_boolean")


def string_param(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise invalid_request(f"Invalid string: {value!r}", param=name)
    return value


def metadata_param(value: Any, name: str = "metadata") -> dict[str, str]:
    """Stripe metadata: a hash of string keys to string values ("" unsets a key)."""
    if value in (None, ""):
        return {}
    if not isinstance(value, dict):
        raise invalid_request("Invalid object", param=name, code="parameter_invalid_empty")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def string_list(name: str, value: Any) -> list[str]:
    items = value if isinstance(value, list) else [value]
    if not all(isinstance(item, str) for item in items):
        raise invalid_request(f"Invalid array: {value!r}", param=name)
    return items


_RANGE_TESTS: dict[str, Callable[[int, int], bool]] = {
    "gt": lambda created, bound: created > bound,
    "gte": lambda created, bound: created >= bound,
    "lt": lambda created, bound: created < bound,
    "lte": lambda created, bound: created <= bound,
}


def created_filter(value: Any, name: str = "created") -> Predicate:
    """Stripe's `created` list filter: an exact timestamp or `created[gt|gte|lt|lte]`."""
    if isinstance(value, dict):
        tests: list[tuple[Callable[[int, int], bool], int]] = []
        for op, bound in value.items():
            if op not in _RANGE_TESTS:
                raise unknown_parameter(f"{name}[{op}]")
            tests.append((_RANGE_TESTS[op], to_int(f"{name}[{op}]", bound)))
        return lambda obj: all(test(obj.created, bound) for test, bound in tests)
    exact = to_int(name, value)
    return lambda obj: obj.created == exact


def created_bounds(value: Any, name: str = "created") -> tuple[int | None, int | None]:
    """The `created` filter as a half-open span [lowest, below): the oldest `created` it admits
    and the first one past the newest, None where open. Lists use it to seek into the sorted
    index instead of scanning every newer object (a range walk deep in the past would otherwise
    cost a scan of the whole account per page)."""
    if not isinstance(value, dict):
        exact = to_int(name, value)
        return exact, exact + 1
    lowest: int | None = None
    below: int | None = None
    for op, bound in value.items():
        number = to_int(f"{name}[{op}]", bound)
        if op in ("gt", "gte"):
            start = number + 1 if op == "gt" else number
            lowest = start if lowest is None else max(lowest, start)
        elif op in ("lt", "lte"):
            end = number + 1 if op == "lte" else number
            below = end if below is None else min(below, end)
    return lowest, below


def merged_metadata(current: dict[str, str] | None, value: Any) -> dict[str, str]:
    """Stripe metadata updates merge keys; "" unsets one key, metadata="" clears all."""
    if value == "":
        return {}
    merged = dict(current or {})
    for key, item in metadata_param(value).items():
        if item == "":
            merged.pop(key, None)
        else:
            merged[key] = item
    return merged
