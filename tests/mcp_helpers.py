"""Serving Billy's MCP app on a real port and talking to it with the official `mcp` client.

`serve_mcp()` runs `billy_app.mcp.server.McpEndpoint` under uvicorn in a thread of the test
process (so it reads the test's store, sandbox and clock), on a socket bound before it starts.
`connect(url, token)` is the SDK's Streamable HTTP client with a bearer token, initialized.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx2
import uvicorn
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.types import CallToolResult, TextContent
from starlette.types import ASGIApp

from billy_app.mcp.server import McpEndpoint


@dataclass(frozen=True)
class Served:
    base: str  # http://127.0.0.1:<port>
    url: str  # the MCP endpoint


@contextmanager
def serve_app(make: Callable[[str], ASGIApp]) -> Iterator[str]:
    """Serve the ASGI app `make(base_url)` returns on a free port of this machine; yields the base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    base = f"http://127.0.0.1:{sock.getsockname()[1]}"
    server = uvicorn.Server(uvicorn.Config(make(base), log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="mcp-test-server")
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@contextmanager
def serve_mcp() -> Iterator[Served]:
    """Just the MCP endpoint, as Billy builds it for its public address (here: this port)."""
    with serve_app(McpEndpoint) as base:
        yield Served(base, f"{base}/mcp")


@dataclass
class Seen:
    """Every HTTP answer the client got: (status, WWW-Authenticate)."""

    answers: list[tuple[int, str]] = field(default_factory=list)

    async def hook(self, response: httpx2.Response) -> None:
        self.answers.append((response.status_code, response.headers.get("www-authenticate", "")))


@asynccontextmanager
async def connect(url: str, token: str, seen: Seen | None = None) -> AsyncIterator[ClientSession]:
    """An initialized MCP client session that sends `Authorization: Bearer <token>`."""
    hooks = {"response": [seen.hook]} if seen else {}
    headers = {"Authorization": f"Bearer {token}", "User-Agent": "pytest-mcp-client"}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=30, event_hooks=hooks) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        await session.initialize()
        yield session


def text(result: CallToolResult) -> str:
    return "\n".join(block.text for block in result.content if isinstance(block, TextContent))


def data(result: CallToolResult) -> dict[str, Any]:
    """The structured content of a successful call (failing the test, with the text, otherwise)."""
    assert not result.is_error, text(result)
    assert result.structured_content is not None
    return result.structured_content


def error(result: CallToolResult) -> str:
    """The message of a tool error (failing the test if the call succeeded)."""
    assert result.is_error, f"expected a tool error, got: {text(result)}"
    return text(result)
