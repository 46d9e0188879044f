"""The `agent-billy` command: login, status, logout, and `--mcp` (the stdio bridge for MCP clients).

Exit codes: 0 done; 1 it did not work (the message says why); 2 not logged in (or a usage
error); 130 interrupted. Human messages go to stderr, results to stdout; the token is never shown.
"""

from __future__ import annotations

import argparse
import socket
import sys
from collections.abc import Sequence
from typing import Any

from agent_billy import __version__, api, config
from agent_billy.login import LoginFailed, wait_for_approval

NOT_LOGGED_IN = "Not logged in to Billy: run `npx agent-billy login` first."
CLAUDE_DESKTOP_SNIPPET = '{ "mcpServers": { "agent-billy": { "command": "npx", "args": ["agent-billy", "--mcp"] } } }'


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="agent-billy",
        description="Connect AI agents to Agent Billy, acting as you within your role's limits.",
        epilog="With no command, `agent-billy` logs in when needed and shows the status.",
    )
    parser.add_argument("--version", action="version", version=f"agent-billy {__version__}")
    parser.add_argument(
        "--mcp", action="store_true", help="serve MCP on stdin/stdout for an MCP client (e.g. Claude Desktop)"
    )
    commands = parser.add_subparsers(dest="command", metavar="command")
    login = commands.add_parser("login", help="approve this computer in the browser and store its token")
    login.add_argument("--url", help=f"Billy's address (default: the stored one, else {config.DEFAULT_URL})")
    login.add_argument("--name", help="how Settings → Agents names this connection (default: this computer)")
    login.add_argument("--no-browser", action="store_true", help="print the approval address instead of opening it")
    login.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for the approval (default 300)")
    commands.add_parser("status", help="who is logged in where, and whether the token still works")
    commands.add_parser("logout", help="revoke the token at Billy and delete it here")
    return parser


def login(url: str | None, name: str | None, *, open_browser: bool, timeout: float) -> int:
    previous = config.load()
    base = api.normalize_url(url or (previous.url if previous else config.DEFAULT_URL))
    client_name = name or f"agent-billy on {socket.gethostname()}"[:80]
    approval = wait_for_approval(base, client_name, open_browser=open_browser, timeout=timeout)
    issued = api.exchange_code(base, approval.code, approval.verifier, approval.redirect_uri)
    fresh = config.Login(
        url=base,
        token=issued["token"],
        token_id=str(issued.get("token_id") or ""),
        member_email=str(issued.get("member_email") or ""),
        role_label=str(issued.get("role_label") or ""),
        client_name=str(issued.get("client_name") or client_name),
        expires_at=issued.get("expires_at") if isinstance(issued.get("expires_at"), str) else None,
    )
    path = config.save(fresh)
    if previous is not None and previous.logged_in and previous.url == base and previous.token != fresh.token:
        try:  # the replaced token would otherwise stay valid, unused, until it expires
            api.revoke(previous)
        except api.Refused as refused:
            if refused.status != 401:  # 401: it no longer worked anyway
                _say(f"(The previous token was not revoked: {refused} Revoke it in Billy's Settings → Agents.)")
        except api.BillyError as exc:
            _say(f"(The previous token was not revoked: {exc} Revoke it in Billy's Settings → Agents.)")
    expiry = f"until {fresh.expires_at[:10]}" if fresh.expires_at else "until revoked"
    print(f"Logged in to {base} as {fresh.member_email} ({fresh.role_label}).")
    print(f"This connection is “{fresh.client_name}” in Billy's Settings → Agents, valid {expiry}.")
    print(f"The token is stored in {path}, readable only by you.")
    print(f"For Claude Desktop, add to claude_desktop_config.json:\n  {CLAUDE_DESKTOP_SNIPPET}")
    return 0


def _scope_words(scope: Any) -> str:
    if isinstance(scope, str):
        return scope
    if isinstance(scope, dict):
        return ", ".join(f"{key}: {value}" for key, value in scope.items() if value not in (None, "", [], {}))
    return "" if scope is None else str(scope)


def status() -> int:
    stored = config.load()
    if stored is None or not stored.logged_in:
        _say(NOT_LOGGED_IN)
        return 2
    print(f"Billy: {stored.url}")
    print(f"Logged in as {stored.member_email} ({stored.role_label}), connection “{stored.client_name}”.")
    try:
        me = api.whoami(stored)
    except api.Refused as refused:
        if refused.status == 401:
            _say(f"The stored token no longer works: {refused}\nRun `npx agent-billy login` to log in again.")
        else:
            _say(f"Billy refused the check: {refused}")
        return 1
    except api.BillyError as exc:
        _say(f"{exc} The token was not checked.")
        return 1
    scope = _scope_words(me.get("scope"))
    scope_part = f"; scope: {scope}" if scope else ""
    print(f"Token works: acts as {me.get('member_email')} ({me.get('role_label')}){scope_part}.")
    return 0


def logout() -> int:
    stored = config.load()
    if stored is None or not stored.logged_in:
        print("Not logged in; nothing to do.")
        return 0
    outcome = 0
    try:
        api.revoke(stored)
        print(f"Revoked the token at {stored.url}.")
    except api.Refused as refused:
        if refused.status == 401:
            print(f"Billy no longer accepted the token (already revoked or expired): {refused}")
        else:
            _say(f"Billy did not revoke the token: {refused} Revoke it in Billy's Settings → Agents.")
            outcome = 1
    except api.BillyError as exc:
        _say(f"{exc} The token was not revoked there: revoke it in Billy's Settings → Agents.")
        outcome = 1
    config.forget_token(stored)
    print(f"Deleted the token from {config.config_path()}.")
    return outcome


def mcp() -> int:
    try:
        stored = config.load()
    except config.ConfigError as exc:
        _say(f"agent-billy: {exc}")
        return 2
    if stored is None or not stored.logged_in:
        _say(f"agent-billy: {NOT_LOGGED_IN}")
        return 2
    from agent_billy import bridge  # the MCP SDK loads only for --mcp: login and status stay quick

    return bridge.run(stored.url)


def default() -> int:
    """Plain `agent-billy` (what `npx agent-billy` runs): log in unless logged in, then show status."""
    stored = config.load()
    if stored is None or not stored.logged_in:
        return login(None, None, open_browser=True, timeout=300.0)
    return status()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.mcp and args.command:
        _say("agent-billy: --mcp takes no command.")
        return 2
    try:
        if args.mcp:
            return mcp()
        if args.command == "login":
            return login(args.url, args.name, open_browser=not args.no_browser, timeout=args.timeout)
        if args.command == "status":
            return status()
        if args.command == "logout":
            return logout()
        return default()
    except (LoginFailed, api.BillyError, config.ConfigError, ValueError) as exc:
        _say(f"agent-billy: {exc}")
        return 1
    except KeyboardInterrupt:
        _say("agent-billy: interrupted.")
        return 130
