"""Long caching for the frontend's fingerprinted files.

The production build names its scripts and styles after their content (`/assets/manifest-ebb2a251.js`),
so a name never points at other bytes: browsers may keep them for a year without asking again.
Reflex serves them with only an ETag, so every new tab and reload revalidates each one (a round
trip per file). Everything else (pages, `/billy.css`, the API) keeps its own caching.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

FINGERPRINTED_PREFIX = "/assets/"
IMMUTABLE = b"public, max-age=31536000, immutable"


def immutable_assets(app: ASGIApp) -> ASGIApp:
    """An ASGI wrapper (a Reflex `api_transformer`) adding `Cache-Control: immutable` to the
    successful answers for fingerprinted build files."""

    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(FINGERPRINTED_PREFIX):
            await app(scope, receive, send)
            return

        async def send_with_cache(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 200:
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                message = {**message, "headers": [*headers, (b"cache-control", IMMUTABLE)]}
            await send(message)

        await app(scope, receive, send_with_cache)

    return wrapped
