"""The sandbox's JSON answers: Stripe's body shape (two-space indent, sorted keys, a final
newline), as localstripe writes it, made by orjson.

localstripe's own `json_response` runs `json.dumps(indent=2)`, and an indent sends the standard
library to its pure-Python encoder: serving a 100-object list page spent half its time there
(py-spy on `bench/backfill`'s sandbox). The sandbox shares the bench machine's cores with Billy,
so its cost was Billy's loss. `install` makes localstripe's handlers answer through this too.
"""

from __future__ import annotations

from typing import Any

import localstripe.server
import orjson
from aiohttp import web

STRIPE_SHAPE = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS | orjson.OPT_APPEND_NEWLINE


def json_response(body: Any, *, status: int = 200, **kwargs: Any) -> web.Response:
    """`body` as Stripe writes it, UTF-8 (localstripe's signature: the callers pass `status`)."""
    body_bytes = orjson.dumps(body, option=STRIPE_SHAPE)
    return web.Response(body=body_bytes, status=status, content_type="application/json", **kwargs)


def install() -> None:
    localstripe.server.json_response = json_response
