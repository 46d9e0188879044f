"""One tool call: who is calling (an Actor built afresh from this request's bearer credential),
and what comes back (readable text and structured content, or a tool error in plain words).

A tool never trusts anything but the credential: the role, caps, plan and the token's scope are
read from the store by `actor_from_token` on every call, and `authorize` in the service applies
them. Refusals and Stripe's own reasons come back as the service's message (`BillyError.message`);
anything unexpected is logged and answered in words, never with a traceback.
"""

from __future__ import annotations

import contextvars
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from mcp.server.auth.middleware.auth_context import get_access_token
from mcp.server.mcpserver import Context
from mcp.types import CallToolResult, TextContent
from pydantic import BaseModel
from starlette.requests import Request

from billy_app.api.bearer import actor_from_token, bearer_token
from billy_app.api.http import client_address, user_agent
from services import audit
from services.errors import BillyError, NotAuthenticated
from services.logging_setup import client_text
from services.outages import store_outage
from services.permissions import Actor, Source
from services.reports import CustomerRef, Money

log = logging.getLogger(__name__)


@dataclass
class Caller:
    """This HTTP request's client, noted by the endpoint before the SDK's bearer check runs, so the
    token verifier and the tool see the same caller; `refusal` is why its credential was refused."""

    address: str = ""
    user_agent: str = ""
    refusal: str = ""


caller: contextvars.ContextVar[Caller | None] = contextvars.ContextVar("billy_mcp_caller", default=None)

INTERNAL = (
    "Billy hit an internal error while doing this (it is logged for the operator). Check the result in Billy "
    "before trying again."
)


def remember_caller(request: Request) -> tuple[Caller, contextvars.Token[Caller | None]]:
    noted = Caller(client_address(request), client_text(user_agent(request), 400))
    return noted, caller.set(noted)


def actor_for_call(ctx: Context) -> Actor:
    """The member (and agent token) behind this very call, read fresh from the store."""
    access = get_access_token()
    try:
        request = ctx.request_context.request
    except ValueError:  # not inside a request (only when a tool is called in-process)
        request = None
    if access is not None:
        token = access.token
    elif isinstance(request, Request):
        token = bearer_token(request.headers)
    else:
        raise NotAuthenticated("Billy could not see this call's credential; connect again.")
    noted = caller.get()
    if noted is None and isinstance(request, Request):
        noted = Caller(client_address(request), client_text(user_agent(request), 400))
    noted = noted or Caller()
    return actor_from_token(token, Source.AGENT, noted.address, noted.user_agent)


def refused(exc: BillyError) -> CallToolResult:
    """A tool error carrying the service's own words (and its stable code, for programs)."""
    return CallToolResult(
        content=[TextContent(type="text", text=exc.message)],
        structured_content={"error": exc.code, "message": exc.message},
        is_error=True,
    )


def answer(ctx: Context, work: Callable[[Actor], tuple[str, BaseModel]], read: str = "") -> CallToolResult:
    """Run one tool call as its caller: `work` gets the Actor and returns (text, structured result).
    `read`: the tool's name when it only reads (its call gets an audit row; a write has its own)."""
    try:
        actor = actor_for_call(ctx)
        text, result = work(actor)
        if read:
            audit.record_read(actor, f"tool {read}")
    except BillyError as exc:
        return refused(exc)
    except Exception as exc:  # the agent gets words; the operator gets the traceback in the log
        if (outage := store_outage(exc)) is not None:  # not a bug: the store is away
            log.warning("The store did not answer an MCP tool call (%s)", type(exc).__name__)
            return refused(outage)
        log.exception("MCP tool call failed")
        return CallToolResult(
            content=[TextContent(type="text", text=INTERNAL)],
            structured_content={"error": "internal", "message": INTERNAL},
            is_error=True,
        )
    return CallToolResult(
        content=[TextContent(type="text", text=text)], structured_content=result.model_dump(mode="json")
    )


# --- shapes shared by the tools -------------------------------------------------------------------


class MoneyOut(BaseModel):
    """An amount: `amount` in minor units (cents) of `currency`, `text` as people read it."""

    amount: int
    currency: str
    text: str

    @classmethod
    def of(cls, money: Money) -> MoneyOut:
        return cls(amount=money.amount, currency=money.currency, text=money.text)


class CustomerOut(BaseModel):
    id: str
    name: str
    email: str

    @classmethod
    def of(cls, ref: CustomerRef) -> CustomerOut:
        return cls(id=ref.id, name=ref.name, email=ref.email)


def who(ref: CustomerRef) -> str:
    """A customer as a sentence names them: "Jane Smith (jane@example.com)"."""
    if ref.name and ref.email:
        return f"{ref.name} ({ref.email})"
    return ref.name or ref.email or ref.id or "no customer"


def moneys(amounts: list[Money]) -> str:
    return " + ".join(m.text for m in amounts) or "nothing"


def when(seconds: int | None) -> str | None:
    """Unix seconds as ISO 8601 UTC (what the structured results carry)."""
    return datetime.fromtimestamp(seconds, UTC).isoformat() if seconds else None


def day(seconds: int | None) -> str:
    """Unix seconds as a day people read ("3 May 2026"), UTC."""
    if not seconds:
        return "no date"
    moment = datetime.fromtimestamp(seconds, UTC)
    return f"{moment.day} {moment:%B %Y}"


def more(next_cursor: str | None) -> str:
    return f"\nThere is more: call again with cursor={next_cursor!r}." if next_cursor else ""


_PYDANTIC_NOISE = re.compile(r"\s*\[type=[^\]]*\]|\s*For further information visit \S+")


def plain_argument_error(text: str) -> str:
    """The SDK's report of arguments that do not fit the input schema, without pydantic's noise:
    "Error executing tool x: 1 validation error for xArguments\\namount\\n  Input should be…" becomes
    "These arguments do not fit preview_refund: amount: Input should be…"."""
    head, _, rest = text.partition(": ")
    tool = head.removeprefix("Error executing tool ").strip()
    if " validation error" not in rest:
        return rest or text
    lines = [_PYDANTIC_NOISE.sub("", line).strip() for line in rest.splitlines()[1:]]
    lines = [line for line in lines if line]
    pairs = [f"{lines[i]}: {lines[i + 1]}" for i in range(0, len(lines) - 1, 2)]
    return f"These arguments do not fit {tool}: " + "; ".join(pairs) + "."


async def plain_tool_errors(ctx: Any, call_next: Callable[[Any], Any]) -> Any:
    """Server middleware: tool errors the SDK words itself (arguments outside the schema, an unknown
    tool) reach the agent as one plain sentence, like Billy's own refusals."""
    result = await call_next(ctx)
    if getattr(ctx, "method", "") != "tools/call" or not isinstance(result, dict) or not result.get("isError"):
        return result  # the chain hands back the result as it goes on the wire
    blocks = result.get("content") or []
    first = blocks[0] if blocks and isinstance(blocks[0], dict) else {}
    said = first.get("text")
    if not isinstance(said, str) or not said.startswith("Error executing tool "):
        return result
    message = plain_argument_error(said)
    plain = CallToolResult(
        content=[TextContent(type="text", text=message)],
        structured_content={"error": "invalid", "message": message},
        is_error=True,
    )
    return {**result, **plain.model_dump(by_alias=True, mode="json", exclude_none=True)}
