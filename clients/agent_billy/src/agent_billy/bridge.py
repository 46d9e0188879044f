"""`agent-billy --mcp`: a stdio MCP server that forwards to the instance's `/mcp` with the stored token.

MCP clients such as Claude Desktop start local commands and speak MCP over stdin/stdout; Billy
serves MCP over Streamable HTTP and wants the member's bearer token. This bridge is both: an MCP
server on stdio (the SDK's low-level `Server`) whose handlers are the SDK's `Client` calls to
Billy. Results travel as the SDK's own models, so tool errors (`isError` with Billy's words) and
structured results arrive unchanged; a JSON-RPC error from Billy is re-raised as the same error.

The connection to Billy is opened when first needed and reopened after it is lost (Billy
restarted, the laptop slept), reading the token from the config file each time, so a fresh
`agent-billy login` takes effect without restarting the MCP client. A token Billy refuses (401)
is said on stderr, where MCP clients keep a server's log, and in every answer until it works again.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import anyio
import httpx2
import mcp_types as types
from anyio.abc import TaskStatus
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.lowlevel import Server
from mcp.server.stdio import stdio_server
from mcp.shared.exceptions import MCPError
from mcp_types import CONNECTION_CLOSED, INVALID_REQUEST, REQUEST_TIMEOUT

from agent_billy import __version__, config

NOT_AUTHENTICATED = -32010  # server-defined range: the stored token is missing, revoked or expired
UNREACHABLE = -32011  # Billy could not be reached
FIRST_CONNECT_SECONDS = 10.0  # how long startup waits for Billy before serving without its capabilities
CLOSE_SECONDS = 3.0
REQUEST_SECONDS = 120.0  # no answer by then: the connection is presumed dead, not Billy slow

LOGIN_AGAIN = (
    "Billy refused the stored token (revoked, expired, or the member was removed). "
    "Run `npx agent-billy login` to log in again."
)
GENERIC_HTTP_ERROR = "Server returned an error response"  # the SDK's stand-in when a 4xx has no JSON-RPC body
NOT_LOGGED_IN = "Not logged in to Billy. Run `npx agent-billy login` first."

log = logging.getLogger("agent_billy.bridge")
R = TypeVar("R")


def _leaves(exc: BaseException) -> list[BaseException]:
    """The real causes inside (possibly nested) exception groups raised by task groups."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _session_lost(error: MCPError) -> bool:
    """The transport's words for 'this connection is gone' (as opposed to Billy answering no)."""
    return error.code == CONNECTION_CLOSED or (error.code == INVALID_REQUEST and error.message == "Session terminated")


def _never_ran(error: MCPError) -> bool:
    return error.code == INVALID_REQUEST and error.message == "Session terminated"


class Upstream:
    """The connection to Billy's `/mcp`, opened on demand by one owner task.

    anyio requires a task group (the SDK client holds one) to be entered and left in the same task,
    so handlers never open the connection themselves: they ask the owner (`keep`) and wait.
    """

    def __init__(self, base_url: str) -> None:
        self.mcp_url = f"{base_url}/mcp"
        self.client: Client | None = None
        self.token_refused = False
        self.session_expired = False  # Billy answered 404 to our session id: it restarted or forgot us
        self._failure: MCPError | None = None
        self._attempt: anyio.Event | None = None  # set when the pending connection attempt is decided
        self._closing = False
        self._wanted = anyio.Event()
        self._lost = anyio.Event()
        self.stopped = anyio.Event()

    async def keep(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """The owner task: open a connection whenever one is wanted, hold it until it is lost."""
        task_status.started()
        try:
            while not self._closing:
                await self._wanted.wait()
                self._wanted = anyio.Event()
                if self._closing:
                    break
                attempt = self._attempt
                try:
                    await self._hold_one(attempt)
                except Exception as exc:  # every way a connection can fail becomes words for the caller
                    self._failure = self._describe(exc)
                    log.debug("connection to %s ended", self.mcp_url, exc_info=True)
                finally:
                    self.client = None
                    self._decide(attempt)
        finally:
            self.stopped.set()

    def _decide(self, attempt: anyio.Event | None) -> None:
        """Wake the callers waiting on this attempt (a newer attempt stays pending)."""
        if attempt is not None:
            if self._attempt is attempt:
                self._attempt = None
            attempt.set()

    async def _hold_one(self, attempt: anyio.Event | None) -> None:
        login = config.load()
        if login is None or not login.logged_in:
            raise MCPError(NOT_AUTHENTICATED, NOT_LOGGED_IN)
        if f"{login.url}/mcp" != self.mcp_url:
            raise MCPError(
                NOT_AUTHENTICATED,
                f"agent-billy is now logged in to {login.url}, not {self.mcp_url[: -len('/mcp')]}: "
                "restart the MCP client to use it.",
            )
        self.token_refused = self.session_expired = False
        http = httpx2.AsyncClient(
            headers={"Authorization": f"Bearer {login.token}", "User-Agent": f"agent-billy/{__version__}"},
            timeout=httpx2.Timeout(30.0, read=300.0),
            event_hooks={"response": [self._on_response]},
        )
        transport = streamable_http_client(self.mcp_url, http_client=http)
        client_info = types.Implementation(name="agent-billy", version=__version__)
        # Handshake-era protocol upstream: what every MCP client downstream speaks too, and no
        # per-request routing headers to keep in step with the downstream client's requests.
        upstream = Client(
            transport, mode="legacy", cache=None, client_info=client_info, read_timeout_seconds=REQUEST_SECONDS
        )
        async with http, upstream as client:
            self._lost = anyio.Event()
            self.client, self._failure = client, None
            self._decide(attempt)
            await self._lost.wait()

    async def _on_response(self, response: httpx2.Response) -> None:
        if response.status_code == 401:
            if not self.token_refused:
                print(f"agent-billy: {LOGIN_AGAIN}", file=sys.stderr, flush=True)
            self.token_refused = True
        elif response.status_code == 404 and "mcp-session-id" in response.request.headers:
            self.session_expired = True
        elif response.is_success:
            self.token_refused = False

    def _describe(self, exc: BaseException) -> MCPError:
        leaves = _leaves(exc)
        for leaf in leaves:
            if isinstance(leaf, MCPError):
                return self._refusal(leaf) if self.token_refused else leaf
        if self.token_refused:
            return MCPError(NOT_AUTHENTICATED, LOGIN_AGAIN)
        for leaf in leaves:
            if isinstance(leaf, httpx2.TransportError):
                return MCPError(
                    UNREACHABLE, f"Billy at {self.mcp_url} is not reachable ({type(leaf).__name__}: {leaf})."
                )
        return MCPError(UNREACHABLE, f"Could not connect to Billy at {self.mcp_url}: {leaves[0]!r}")

    @staticmethod
    def _refusal(error: MCPError) -> MCPError:
        """Billy's own words for a refused token when it sent them (as a JSON-RPC error), else ours."""
        if error.code != CONNECTION_CLOSED and error.message and error.message != GENERIC_HTTP_ERROR:
            return error
        return MCPError(NOT_AUTHENTICATED, LOGIN_AGAIN)

    def drop(self, client: Client | None = None) -> None:
        """Forget the connection (the owner closes it); the next call opens a new one. With a
        client, only if that is still the current one: a concurrent call may have reopened it."""
        if client is None or self.client is client:
            self.client = None
            self._lost.set()

    async def connected(self) -> Client:
        if self.client is not None:
            return self.client
        if self._attempt is None:
            self._attempt = anyio.Event()
            self._wanted.set()
        await self._attempt.wait()
        if self.client is not None:
            return self.client
        raise self._failure or MCPError(UNREACHABLE, f"Could not connect to Billy at {self.mcp_url}.")

    async def call(self, operation: Callable[[Client], Awaitable[R]], *, safe_to_repeat: bool) -> R:
        """Run one forwarded request. A lost connection is reopened, and the request sent again
        when Billy cannot have acted on it (a read, or a session Billy no longer knew)."""
        for attempt in (1, 2):
            client = await self.connected()
            try:
                return await operation(client)
            except MCPError as error:
                if self.token_refused:
                    self.drop(client)  # the next call reconnects, reading the token again (a new login)
                    raise self._refusal(error) from error
                if error.code == REQUEST_TIMEOUT:
                    self.drop(client)  # a silent connection is replaced; the request may have run
                    raise
                expired = self.session_expired
                if not (expired or _session_lost(error)):
                    raise
                self.drop(client)
                if attempt == 2 or not (safe_to_repeat or expired or _never_ran(error)):
                    raise MCPError(
                        UNREACHABLE,
                        f"The connection to Billy at {self.mcp_url} was lost before the answer arrived "
                        f"({error.message}), so whether it was done is unknown: check in Billy before repeating it.",
                    ) from error
        raise AssertionError("unreachable")

    async def close(self) -> None:
        self._closing = True
        self._wanted.set()
        self.drop()

    async def first_connection(self) -> Client | None:
        """Try once at startup, briefly, so the stdio server can offer what Billy offers."""
        with anyio.move_on_after(FIRST_CONNECT_SECONDS):
            try:
                return await self.connected()
            except MCPError as error:
                print(f"agent-billy: {error.message} (will retry on the next request)", file=sys.stderr, flush=True)
        return None


def build_server(upstream: Upstream, first: Client | None) -> Server[Any]:
    """The stdio server: each handler is the same request sent on to Billy."""
    caps = first.server_capabilities if first is not None else None

    async def list_tools(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListToolsResult:
        cursor = params.cursor if params else None
        return await upstream.call(lambda c: c.list_tools(cursor=cursor), safe_to_repeat=True)

    async def call_tool(ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        return await upstream.call(lambda c: c.call_tool(params.name, params.arguments), safe_to_repeat=False)

    async def list_resources(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListResourcesResult:
        cursor = params.cursor if params else None
        return await upstream.call(lambda c: c.list_resources(cursor=cursor), safe_to_repeat=True)

    async def list_templates(
        ctx: Any, params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        cursor = params.cursor if params else None
        return await upstream.call(lambda c: c.list_resource_templates(cursor=cursor), safe_to_repeat=True)

    async def read_resource(ctx: Any, params: types.ReadResourceRequestParams) -> types.ReadResourceResult:
        return await upstream.call(lambda c: c.read_resource(params.uri), safe_to_repeat=True)

    async def list_prompts(ctx: Any, params: types.PaginatedRequestParams | None) -> types.ListPromptsResult:
        cursor = params.cursor if params else None
        return await upstream.call(lambda c: c.list_prompts(cursor=cursor), safe_to_repeat=True)

    async def get_prompt(ctx: Any, params: types.GetPromptRequestParams) -> types.GetPromptResult:
        return await upstream.call(lambda c: c.get_prompt(params.name, params.arguments), safe_to_repeat=True)

    async def complete(ctx: Any, params: types.CompleteRequestParams) -> types.CompleteResult:
        context = params.context.arguments if params.context else None
        argument = {params.argument.name: params.argument.value}
        return await upstream.call(lambda c: c.complete(params.ref, argument, context), safe_to_repeat=True)

    handlers: dict[str, Any] = {"on_list_tools": list_tools, "on_call_tool": call_tool}
    if caps is not None and caps.resources is not None:
        handlers.update(
            on_list_resources=list_resources, on_list_resource_templates=list_templates, on_read_resource=read_resource
        )
    if caps is not None and caps.prompts is not None:
        handlers.update(on_list_prompts=list_prompts, on_get_prompt=get_prompt)
    if caps is not None and caps.completions is not None:
        handlers["on_completion"] = complete
    instructions = first.instructions if first is not None else None
    return Server("agent-billy", version=__version__, title="Agent Billy", instructions=instructions, **handlers)


async def serve(base_url: str) -> None:
    """Serve MCP on stdin/stdout until the client closes stdin."""
    upstream = Upstream(base_url)
    async with anyio.create_task_group() as tasks:
        await tasks.start(upstream.keep)
        server = build_server(upstream, await upstream.first_connection())
        async with stdio_server() as (read_stream, write_stream):
            await server.run(read_stream, write_stream, server.create_initialization_options())
        await upstream.close()
        with anyio.move_on_after(CLOSE_SECONDS):  # let the session end politely (its DELETE)
            await upstream.stopped.wait()
        tasks.cancel_scope.cancel()


def run(base_url: str) -> int:
    level = os.environ.get("AGENT_BILLY_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(level=getattr(logging, level, logging.WARNING), stream=sys.stderr)
    if "AGENT_BILLY_LOG_LEVEL" not in os.environ:
        # "Session termination failed: 404" after Billy restarted is expected here, not news.
        logging.getLogger("mcp.client.streamable_http").setLevel(logging.ERROR)
    try:
        anyio.run(serve, base_url)
    except KeyboardInterrupt:
        return 130
    return 0
