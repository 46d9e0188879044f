"""Connecting an AI agent end to end (issue 13), as the README tells a person to:

`agent-billy login` (the real CLI, a subprocess) prints Billy's approval address; the member,
signed in in Chromium, approves it; the token comes back to the CLI over its loopback listener.
Then the official `mcp` client starts `agent-billy --mcp` over stdio, as Claude Desktop would, and
runs the tool calls of the docs' three conversations against the running instance and its demo
sandbox: failed payments this week; refunding order #5678 within the Clerk's cap (and being
refused $5,000, with the cap named); overdue invoices with reminders (the Owner's agent, since
reminders are a Billing Manager's). Settings → Agents lists the token with where it was last
used; revoked there, the agent's next call fails with Billy's reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from tests.browser.conftest import Shots, at, sign_in_as_owner
from tests.browser.test_customer_edit import invite_and_join
from tests.browser.test_team_invites import wait_for_mail
from tests.browser.test_walking_skeleton import sandbox_client
from tests.mcp_helpers import data, error, text

pytestmark = pytest.mark.browser

OWNER = "owner@agents.example"
OWNER_PASSWORD = "an-agent-connecting-owner-password"
CLERK = "clerk@agents.example"
CLI = Path(sys.executable).with_name("agent-billy")
T = TypeVar("T")


@pytest.fixture(scope="module")
def team(app_server, browser, mail_catcher, sandbox) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    # A $5,000 charge, made before Billy's first sync so the store has it from the start.
    big = (
        sandbox_client(sandbox)
        .v1.charges.create(
            params={"amount": 500_000, "currency": "usd", "source": "tok_visa", "description": "Order #7777"}
        )
        .id
    )
    owner = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id="UTC").new_page()
    sign_in_as_owner(owner, app_server, email=OWNER, password=OWNER_PASSWORD, plan="business")
    owner.wait_for_function(
        "() => ['charges:', 'invoices:'].every(name => [...document.querySelectorAll('.sync-resource')]"
        ".some(e => e.textContent.toLowerCase().startsWith(name) && e.textContent.includes('done')))",
        timeout=60_000,
    )
    clerk = invite_and_join(owner, browser, mail_catcher, CLERK, "Billing Clerk")
    return {"owner": owner, "clerk": clerk, "big_charge": big}


def _env(folder: Path) -> dict[str, str]:
    return {**os.environ, "AGENT_BILLY_CONFIG_DIR": str(folder), "BROWSER": "true"}


def login(page, app_url: str, folder: Path, shot: Shots | None = None, **approve: str) -> None:  # type: ignore[no-untyped-def]
    """`agent-billy login` approved by the member signed in on `page`; returns once the CLI has its token."""
    cli = subprocess.Popen(
        [str(CLI), "login", "--url", app_url, "--no-browser", "--name", "Claude Desktop"],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=_env(folder),
    )
    assert cli.stderr is not None
    address = ""
    for line in cli.stderr:
        if "/connect-agent?" in line:
            address = line[line.index("http") :].split()[0]
            break
    assert address, "the CLI printed no approval address"
    page.goto(address)
    page.wait_for_selector("#connect-heading:has-text('Claude Desktop')")  # the request, as the page read it
    if approve.get("refund_cap"):
        page.fill("#refund-cap", approve["refund_cap"])
    if approve.get("daily_budget"):
        page.fill("#daily-budget", approve["daily_budget"])
    if shot:
        shot("approve")
    page.click("#approve-agent")
    assert cli.wait(timeout=60) == 0, cli.stderr.read()
    page.wait_for_selector("text=You can close this tab")  # the CLI's own page on its listener


def status(folder: Path) -> str:
    done = subprocess.run([str(CLI), "status"], capture_output=True, text=True, env=_env(folder), timeout=60)
    return done.stdout + done.stderr


def agent(folder: Path) -> StdioServerParameters:
    """What Claude Desktop's config starts: `agent-billy --mcp`, with this person's login."""
    return StdioServerParameters(command=str(CLI), args=["--mcp"], env=_env(folder))


def off_thread(conversation: Callable[[], Awaitable[T]]) -> T:
    """Run an async MCP conversation beside Playwright's own event loop (which owns this thread)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(anyio.run, conversation).result(timeout=180)


def confirm_of(preview: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    assert preview["allowed"], preview
    return preview["confirm_tool"], dict(preview["confirm_arguments"])


@pytest.fixture
def folders(tmp_path: Path) -> Iterator[dict[str, Path]]:
    yield {"clerk": tmp_path / "clerk", "owner": tmp_path / "owner"}


def test_a_clerk_and_the_owner_connect_claude_and_run_the_docs_conversations(  # type: ignore[no-untyped-def]
    team, app_server, sandbox, mail_catcher, folders
) -> None:
    stripe_api = sandbox_client(sandbox)
    clerk_page = team["clerk"]
    shot = Shots(clerk_page, "agent-connect")
    login(clerk_page, app_server.url, folders["clerk"], shot, daily_budget="300")
    assert CLERK in status(folders["clerk"]) and "Billing Clerk" in status(folders["clerk"])
    config = folders["clerk"] / "config.json"
    assert config.stat().st_mode & 0o777 == 0o600

    big = team["big_charge"]

    async def clerk_conversations() -> dict[str, Any]:
        async with stdio_client(agent(folders["clerk"])) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            names = {tool.name for tool in (await session.list_tools()).tools}
            # "Show me failed payments this week"
            week = await session.call_tool("failed_payments", {"period": "this_week"})
            # "Refund order #5678 for Jane Smith"
            (charge,) = data(await session.call_tool("find_charges", {"order_number": "order #5678"}))["charges"]
            preview = await session.call_tool("preview_refund", {"charge_id": charge["id"]})
            tool, arguments = confirm_of(data(preview))
            refunded = data(await session.call_tool(tool, arguments))
            # $5,000: over the Clerk's cap, said before anything happens
            over = data(await session.call_tool("preview_refund", {"charge_id": big}))
            return {
                "names": names,
                "week": data(week),
                "week_text": text(week),
                "charge": charge,
                "said": text(preview),
                "refunded": refunded,
                "over": over,
            }

    got = off_thread(clerk_conversations)
    assert {"failed_payments", "find_charges", "preview_refund", "confirm_refund", "overdue_invoices"} <= got["names"]
    week = got["week"]
    assert week["period"] and week["count"] == sum(group["count"] for group in week["groups"])
    assert (got["charge"]["amount"]["text"], got["charge"]["customer"]["name"]) == ("$45.99", "Jane Smith")
    assert "within what you may refund" in got["said"]
    assert (
        "Daily budget: $500.00 of your Billing Clerk daily refund budget of $500.00 left; "
        "$300.00 of this agent token's daily refund budget of $300.00 left" in got["said"]
    )  # the $300 chosen on the approval page, beside her own
    refunds = stripe_api.v1.refunds.list(params={"charge": got["charge"]["id"]}).data
    assert [(r.id, r.amount) for r in refunds] == [(got["refunded"]["details"]["refund_id"], 4599)]
    assert got["over"]["allowed"] is False and "limit of $100.00 per charge" in got["over"]["refusal"]

    # Settings → Agents: the token, where it was last used; the audit log says "agent".
    clerk_page.goto(app_server.url + "/settings/agents")  # (the tab is on the CLI's listener page)
    clerk_page.wait_for_url(at("/settings/agents"))
    row = clerk_page.locator(".token-row").filter(has_text="Claude Desktop")
    row.wait_for()
    assert "agent" in row.inner_text()
    shot("agents")

    # "Which customers have overdue invoices? Send them reminders." (the Owner's agent)
    owner_page = team["owner"]
    login(owner_page, app_server.url, folders["owner"])

    async def owner_conversation() -> tuple[dict[str, Any], dict[str, Any]]:
        async with stdio_client(agent(folders["owner"])) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            overdue = data(await session.call_tool("overdue_invoices", {"limit": 50}))
            first = next(c for c in overdue["customers"] if c["customer"]["email"])
            ids = [i["id"] for i in first["invoices"]]
            tool, arguments = confirm_of(
                data(await session.call_tool("preview_invoice_reminders", {"invoice_ids": ids}))
            )
            return first, data(await session.call_tool(tool, arguments))

    first, sent = off_thread(owner_conversation)
    assert first["invoices"][0]["days_overdue"] >= 1
    mail = wait_for_mail(mail_catcher, first["customer"]["email"])
    assert "overdue" in (mail.subject + mail.text).lower()
    assert sent["summary"]

    # The Owner freezes the Clerk's token in Settings → Agents (issue 15): the agent still reads,
    # and is refused any change, in Billy's words, until the Owner lifts the freeze.
    owner_page.goto(app_server.url + "/settings/agents")
    clerk_token = owner_page.locator(".token-row").filter(has_text=CLERK)
    clerk_token.get_by_role("button", name="Freeze").click()
    owner_page.wait_for_selector("text=Frozen: the agent can still read")
    assert "Frozen" in clerk_token.inner_text()

    async def while_frozen() -> tuple[dict[str, Any], str]:
        async with stdio_client(agent(folders["clerk"])) as (read, write), ClientSession(read, write) as session:
            await session.initialize()
            who = data(await session.call_tool("whoami", {}))
            return who, error(await session.call_tool("preview_refund", {"charge_id": big}))

    who, frozen = off_thread(while_frozen)
    assert who["email"] == CLERK
    assert frozen.startswith("The Owner has frozen this agent token")
    clerk_token.get_by_role("button", name="Lift the freeze").click()
    owner_page.wait_for_selector("text=The freeze is lifted")

    # Revoked in Settings → Agents: the Clerk's agent is refused at its next call, in Billy's words.
    clerk_page.reload()
    row = clerk_page.locator(".token-row").filter(has_text="Claude Desktop")
    row.get_by_role("button", name="Revoke").click()
    clerk_page.get_by_role("button", name="Revoke").last.click()
    clerk_page.wait_for_selector("text=Revoked: its next call is refused.")

    async def after_revoking() -> str:
        async with stdio_client(agent(folders["clerk"])) as (read, write), ClientSession(read, write) as session:
            try:
                await session.initialize()
                result = await session.call_tool("whoami", {})
            except MCPError as exc:
                return exc.error.message
            return error(result)

    assert "revoked" in off_thread(after_revoking)
