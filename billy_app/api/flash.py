"""One-shot results of a form post, carried to the next page in a signed query value.

Signed so that a link from elsewhere cannot make our pages display text of its choosing."""

from __future__ import annotations

from typing import Any

from services import signing

_PURPOSE = "flash"
MAX_AGE_SECONDS = 600


def pack(message: str = "", **fields: Any) -> str:
    return signing.sign(_PURPOSE, {"message": message, **fields})


def unpack(token: str | None) -> dict[str, Any]:
    if not token:
        return {}
    return signing.unsign(_PURPOSE, token, MAX_AGE_SECONDS) or {}
