"""Objects made into JSON as localstripe makes them, without asking `dir()` each time.

localstripe's `StripeObject._export` builds an object's JSON from its public attributes, then
adds every public name its class offers (properties such as a charge's `refunds`, constants
such as `object`) by calling `dir()` on the object and filtering the result. `dir()` sorts all
of the class's names, methods included, for every object and every nested one. Listing 100
charges spent a quarter of its export time there (py-spy on the sandbox during a backfill), and
the sandbox shares the machine's cores with Billy in `bench/backfill`.

`export` gives the same JSON, keys in the same order: the class's public names are found once
per class. An instance's own attributes are still read on every call, so nothing is cached
that could go stale.
"""

from __future__ import annotations

import functools
from typing import Any

from localstripe.errors import UserError
from localstripe.resources import StripeObject

MAX_EXPAND_LEVELS = 4  # `a.b.c.d` at most


@functools.cache
def _class_names(cls: type) -> tuple[str, ...]:
    """The public names `cls` and its bases offer, sorted as `dir()` sorts them."""
    return tuple(name for name in dir(cls) if not name.startswith("_"))


def _checked(expand: Any) -> list[str]:
    if expand is None:
        return []
    if type(expand) is not list or any(type(path) is not str for path in expand):
        raise UserError(400, "Bad request")
    if any(path.count(".") + 1 > MAX_EXPAND_LEVELS for path in expand):
        raise UserError(400, "You cannot expand more than 4 levels of a property")
    return expand


def _expand(obj: Any, path: str) -> None:
    """Replace the id at `path` (dotted, through lists) with the object it names, exported."""
    if type(obj) is list:
        for item in obj:
            _expand(item, path)
        return
    key, _, rest = path.partition(".")
    if type(obj[key]) is str:
        obj[key] = StripeObject._get_class_for_id(obj[key])._api_retrieve(obj[key])._export()
    if rest and obj[key] is not None:
        _expand(obj[key], rest)


def export(self: Any, expand: Any = None, leave_out: frozenset[str] = frozenset()) -> dict[str, Any]:
    """`self` as JSON: its public attributes (nested objects exported, dicts copied), then the
    public names of its class it does not shadow (but those in `leave_out`, never computed),
    then the `expand` paths resolved."""
    paths = _checked(expand)
    data: dict[str, Any] = {}
    for key, value in vars(self).items():
        if key.startswith("_"):
            continue
        if isinstance(value, StripeObject):
            data[key] = value._export()
        elif isinstance(value, list) and value and isinstance(value[0], StripeObject):
            data[key] = [item._export() for item in value]
        elif isinstance(value, dict):
            data[key] = value.copy()
        else:
            data[key] = value
    for name in _class_names(type(self)):
        if name not in data and name not in leave_out:
            value = getattr(self, name)
            data[name] = value._export() if isinstance(value, StripeObject) else value
    try:
        for path in paths:
            _expand(data, path)
    except KeyError as exc:
        raise UserError(400, f"Bad expand {exc}") from None
    return data


# localstripe's own, kept for the test that holds `export` to giving the same JSON.
LOCALSTRIPE_EXPORT = StripeObject._export


def install() -> None:
    StripeObject._export = export  # type: ignore[method-assign]
