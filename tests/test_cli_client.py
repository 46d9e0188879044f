"""`agent-billy`, the CLI client (clients/agent_billy), and `npx agent-billy` (clients/npm/agent-billy).

Real processes throughout, no mocks of HTTP or MCP: the installed `agent-billy` command; its
loopback login against a small stand-in for Billy's `/connect-agent` and `/api/agent/token` that
checks the PKCE verifier against the challenge it was shown (the real endpoints are tested end to
end with a running instance elsewhere); `--mcp` against the MCP SDK's own Streamable HTTP server
behind a bearer check, driven by the SDK's own client over stdio; and `npm pack` + `npx` of the
launcher into a fresh home folder, so it really builds a private environment from the bundled wheel.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import socket
import stat
import subprocess
import sys
import tarfile
import textwrap
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import pytest
from agent_billy import __version__, config
from mcp.client import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.shared.exceptions import MCPError

from controlplane.local_http import local_http

ROOT = Path(__file__).resolve().parents[1]
NPM_PACKAGE = ROOT / "clients" / "npm" / "agent-billy"
AGENT_BILLY = Path(sys.executable).with_name("agent-billy")
CODE = "one-time-code-from-billy"


def _cli_path() -> str:
    assert AGENT_BILLY.exists(), "agent-billy is not installed in this venv: run `make setup`"
    return str(AGENT_BILLY)


def _env(tmp_path: Path) -> dict[str, str]:
    """The command's environment: its own config folder and home, no browser."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENT_BILLY_") and k != "BROWSER"}
    env["AGENT_BILLY_CONFIG_DIR"] = str(tmp_path / "config")
    env["HOME"] = str(tmp_path / "home")
    return env


def _run(tmp_path: Path, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_cli_path(), *args],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- a stand-in for Billy's login and /api/v1/me endpoints -----------------------------------


@dataclass
class StandInBilly:
    """Speaks the contract of /connect-agent, /api/agent/token and /api/v1/me(/token)."""

    token: str = "billy_at_" + "x" * 43
    decline: bool = False
    refuse_exchange: str = ""
    revoked: bool = False
    shown: dict[str, str] = field(default_factory=dict)  # what /connect-agent was asked
    exchanges: list[dict[str, Any]] = field(default_factory=list)
    deletes: list[str] = field(default_factory=list)
    url: str = ""


def _stand_in_handler(billy: StandInBilly) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _json(self, status: int, body: dict[str, Any] | None) -> None:
            data = json.dumps(body).encode() if body is not None else b""
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _bearer_ok(self) -> bool:
            return self.headers.get("Authorization") == f"Bearer {billy.token}" and not billy.revoked

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            if parts.path == "/connect-agent":
                billy.shown = {k: v[0] for k, v in parse_qs(parts.query).items()}
                answer = {"error": "access_denied"} if billy.decline else {"code": CODE}
                self.send_response(303)
                self.send_header(
                    "Location", billy.shown["redirect_uri"] + "?" + urlencode(answer | {"state": billy.shown["state"]})
                )
                self.end_headers()
            elif parts.path == "/api/v1/me" and self._bearer_ok():
                self._json(
                    200,
                    {
                        "member_email": "clerk@example.com",
                        "role_label": "Billing Clerk",
                        "token_id": "tok_1",
                        "client_name": "Claude Desktop",
                        "scope": {"read_only": False, "refund_cap": "$50.00"},
                    },
                )
            elif parts.path == "/api/v1/me":
                self._json(401, {"error": {"code": "not_authenticated", "message": "This token was revoked."}})
            else:
                self._json(404, {"error": {"code": "not_found", "message": "No such page."}})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            billy.exchanges.append(body)
            proof_ok = _s256(str(body.get("code_verifier"))) == billy.shown.get("code_challenge")
            if billy.refuse_exchange or not proof_ok or body.get("code") != CODE:
                message = billy.refuse_exchange or "The proof key does not match this sign-in."
                self._json(400, {"error": {"code": "invalid_grant", "message": message}})
            elif body.get("redirect_uri") != billy.shown.get("redirect_uri"):
                self._json(400, {"error": {"code": "invalid_grant", "message": "Another listener."}})
            else:
                self._json(
                    200,
                    {
                        "token": billy.token,
                        "token_id": "tok_1",
                        "member_email": "clerk@example.com",
                        "role_label": "Billing Clerk",
                        "client_name": billy.shown.get("client_name"),
                        "expires_at": "2027-03-01T00:00:00+00:00",
                    },
                )

        def do_DELETE(self) -> None:
            billy.deletes.append(self.path)
            if self.path == "/api/v1/me/token" and self._bearer_ok():
                billy.revoked = True
                self._json(204, None)
            else:
                self._json(401, {"error": {"code": "not_authenticated", "message": "This token was revoked."}})

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def billy() -> Iterator[StandInBilly]:
    state = StandInBilly()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _stand_in_handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield state
    server.shutdown()
    server.server_close()


def _start_login(tmp_path: Path, billy: StandInBilly, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start `agent-billy login` and return it with the approval address it printed."""
    process = subprocess.Popen(
        [_cli_path(), "login", "--url", billy.url, "--name", "Claude Desktop", "--no-browser", *extra],
        env=_env(tmp_path),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    for line in process.stderr:
        if "/connect-agent?" in line:
            return process, line.strip()
    process.kill()
    raise AssertionError("agent-billy login printed no approval address")


def _get(url: str) -> tuple[int, str]:
    """A browser's GET (following Billy's redirect to the loopback callback)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - http to the test's own servers
            return response.status, response.read().decode()
    except urllib.error.HTTPError as refused:
        return refused.code, refused.read().decode()


# --- the config file -------------------------------------------------------------------------


def test_config_file_is_private_and_replaced_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "cfg"
    folder.mkdir()
    folder.chmod(0o755)  # created loose by hand: saving makes it private
    (folder / "config.json").write_text('{"url": "http://localhost:3000"}')
    (folder / "config.json").chmod(0o644)
    monkeypatch.setenv("AGENT_BILLY_CONFIG_DIR", str(folder))

    path = config.save(config.Login(url="https://billy.example.com", token="billy_at_secret", member_email="a@b.c"))

    assert path == folder / "config.json"
    assert _mode(folder) == 0o700
    assert _mode(path) == 0o600
    assert json.loads(path.read_text())["token"] == "billy_at_secret"
    assert sorted(os.listdir(folder)) == ["config.json"]  # written beside and renamed: no temporary file left

    path.chmod(0o644)  # loosened later (a backup restored, a copy by hand)
    assert config.load() == config.Login(url="https://billy.example.com", token="billy_at_secret", member_email="a@b.c")
    assert _mode(path) == 0o600
    assert "readable only by you" in capsys.readouterr().err

    monkeypatch.delenv("AGENT_BILLY_CONFIG_DIR")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.config_path() == tmp_path / "xdg" / "agent-billy" / "config.json"


# --- login over the loopback redirect --------------------------------------------------------


def test_login_refuses_a_foreign_callback_and_stores_the_token_from_the_real_one(
    tmp_path: Path, billy: StandInBilly, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AGENT_BILLY_CONFIG_DIR", str(tmp_path / "config"))
    config.save(config.Login(url=billy.url, token="billy_at_" + "o" * 43))  # logged in before, on this instance
    process, approval_url = _start_login(tmp_path, billy, "--timeout", "60")
    asked = {k: v[0] for k, v in parse_qs(urlsplit(approval_url).query).items()}
    assert approval_url.startswith(f"{billy.url}/connect-agent?")
    assert asked["client_name"] == "Claude Desktop"
    assert asked["code_challenge_method"] == "S256"
    callback = urlsplit(asked["redirect_uri"])
    assert (callback.scheme, callback.hostname, callback.path) == ("http", "127.0.0.1", "/callback")

    # Another page (or process) sends its own code to the listener: refused, and login goes on waiting.
    status, page = _get(asked["redirect_uri"] + "?" + urlencode({"code": "attacker-code", "state": "forged-state"}))
    assert status == 400 and "not started here" in page
    status, _ = _get(asked["redirect_uri"] + "?" + urlencode({"code": "attacker-code"}))
    assert status == 400
    assert process.poll() is None

    # The member approves in the browser; Billy sends the browser back with the code and the state.
    status, page = _get(approval_url)
    assert status == 200 and "close this tab" in page
    out, err = process.communicate(timeout=30)

    assert process.returncode == 0, err
    assert "Logged in to" in out and "clerk@example.com (Billing Clerk)" in out
    assert '"args": ["agent-billy", "--mcp"]' in out  # what to paste into Claude Desktop
    assert "refused a sign-in callback" in err
    assert billy.token not in out + err  # the token is never shown
    # One exchange, with the real code, the same redirect, and the verifier of the challenge shown.
    assert len(billy.exchanges) == 1
    assert billy.exchanges[0]["code"] == CODE
    assert billy.exchanges[0]["redirect_uri"] == asked["redirect_uri"]
    assert _s256(billy.exchanges[0]["code_verifier"]) == asked["code_challenge"]
    assert billy.exchanges[0]["code_verifier"] not in approval_url
    assert billy.deletes == ["/api/v1/me/token"]  # the replaced token is revoked, not left behind

    stored = tmp_path / "config" / "config.json"
    assert json.loads(stored.read_text())["token"] == billy.token
    assert json.loads(stored.read_text())["url"] == billy.url
    assert _mode(stored) == 0o600 and _mode(stored.parent) == 0o700


@pytest.mark.parametrize("outcome", ["declined", "refused"])
def test_login_that_does_not_end_in_a_token_stores_nothing(tmp_path: Path, billy: StandInBilly, outcome: str) -> None:
    billy.decline = outcome == "declined"
    billy.refuse_exchange = (
        "This sign-in code was already used. Run `agent-billy login` again." if outcome == "refused" else ""
    )
    process, approval_url = _start_login(tmp_path, billy, "--timeout", "60")
    _get(approval_url)
    _, err = process.communicate(timeout=30)

    assert process.returncode == 1
    assert ("you declined the connection" if outcome == "declined" else "This sign-in code was already used") in err
    assert not (tmp_path / "config" / "config.json").exists()


def test_login_gives_up_after_its_timeout_with_words(tmp_path: Path, billy: StandInBilly) -> None:
    process, _ = _start_login(tmp_path, billy, "--timeout", "1")
    _, err = process.communicate(timeout=30)
    assert process.returncode == 1
    assert "No approval arrived within 1 s" in err and "npx agent-billy login" in err


# --- status and logout -----------------------------------------------------------------------


def _logged_in(tmp_path: Path, billy: StandInBilly, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a finished `agent-billy login` leaves behind, in this test's config folder."""
    monkeypatch.setenv("AGENT_BILLY_CONFIG_DIR", str(tmp_path / "config"))
    config.save(
        config.Login(
            url=billy.url,
            token=billy.token,
            token_id="tok_1",
            member_email="clerk@example.com",
            role_label="Billing Clerk",
            client_name="Claude Desktop",
        )
    )


def test_status_and_logout_against_billy(tmp_path: Path, billy: StandInBilly, monkeypatch: pytest.MonkeyPatch) -> None:
    _logged_in(tmp_path, billy, monkeypatch)
    status = _run(tmp_path, "status")
    assert status.returncode == 0, status.stderr
    assert billy.url in status.stdout
    assert (
        "Token works: acts as clerk@example.com (Billing Clerk); scope: read_only: False, refund_cap: $50.00"
        in status.stdout
    )
    assert billy.token not in status.stdout + status.stderr

    logout = _run(tmp_path, "logout")
    assert logout.returncode == 0, logout.stderr
    assert billy.deletes == ["/api/v1/me/token"] and billy.revoked  # revoked at Billy, with the token itself
    assert "Revoked the token" in logout.stdout
    kept = json.loads((tmp_path / "config" / "config.json").read_text())
    assert kept["url"] == billy.url and kept["token"] == ""  # the address stays for the next login

    after = _run(tmp_path, "status")
    assert after.returncode == 2 and "npx agent-billy login" in after.stderr


def test_status_says_when_billy_refuses_the_token(
    tmp_path: Path, billy: StandInBilly, monkeypatch: pytest.MonkeyPatch
) -> None:
    _logged_in(tmp_path, billy, monkeypatch)
    billy.revoked = True  # revoked in Settings → Agents
    status = _run(tmp_path, "status")
    assert status.returncode == 1
    assert "no longer works" in status.stderr and "This token was revoked." in status.stderr
    assert "npx agent-billy login" in status.stderr


def test_logout_deletes_the_token_even_when_billy_is_unreachable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gone = StandInBilly(url=f"http://127.0.0.1:{_free_port()}")  # nothing listens there
    _logged_in(tmp_path, gone, monkeypatch)
    logout = _run(tmp_path, "logout")
    assert logout.returncode == 1
    assert "not reachable" in logout.stderr and "Settings → Agents" in logout.stderr
    assert json.loads((tmp_path / "config" / "config.json").read_text())["token"] == ""


# --- --mcp -----------------------------------------------------------------------------------


def test_mcp_when_logged_out_says_to_log_in_and_exits_2(tmp_path: Path) -> None:
    never = _run(tmp_path, "--mcp", timeout=30)
    assert never.returncode == 2
    assert "run `npx agent-billy login` first" in never.stderr
    assert never.stdout == ""  # stdout belongs to the protocol

    (tmp_path / "config").mkdir(mode=0o700)
    (tmp_path / "config" / "config.json").write_text(json.dumps({"url": "http://localhost:3000", "token": ""}))
    after_logout = _run(tmp_path, "--mcp", timeout=30)
    assert after_logout.returncode == 2 and "npx agent-billy login" in after_logout.stderr


STAND_IN_MCP = textwrap.dedent(
    '''
    """Billy's /mcp as the MCP SDK serves it (Streamable HTTP), behind a bearer-token check."""
    import sys

    import uvicorn
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError
    from pydantic import BaseModel

    port, accepted = int(sys.argv[1]), {sys.argv[2]}
    mcp = MCPServer("billy-stand-in")


    class RefundPreview(BaseModel):
        amount: str
        customer: str
        within_cap: bool


    @mcp.tool()
    def preview_refund(order_number: str) -> RefundPreview:
        """Preview refunding an order."""
        if order_number != "5678":
            raise ToolError(f"No charge has order number {order_number}.")
        return RefundPreview(amount="$45.99", customer="Jane Smith", within_cap=True)


    inner = mcp.streamable_http_app()


    async def app(scope, receive, send):
        if scope["type"] == "http" and scope["path"] == "/revoke":
            accepted.clear()
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})
            return
        if scope["type"] == "http":
            token = dict(scope["headers"]).get(b"authorization", b"").decode().removeprefix("Bearer ")
            if token not in accepted:
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"application/json"), (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body", "body": b'{"error": {"code": "not_authenticated"}}'})
                return
        await inner(scope, receive, send)


    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")
    '''
)


@pytest.fixture
def billy_mcp(tmp_path: Path) -> Iterator[StandInBilly]:
    state = StandInBilly()
    port = _free_port()
    script = tmp_path / "stand_in_mcp.py"
    script.write_text(STAND_IN_MCP)
    server = subprocess.Popen(
        [sys.executable, str(script), str(port), state.token], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    state.url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "the stand-in MCP server did not start"
                time.sleep(0.1)
        yield state
    finally:
        server.terminate()
        server.wait(timeout=10)


def test_mcp_bridge_forwards_tools_and_results_unchanged_and_says_when_the_token_is_refused(
    tmp_path: Path, billy_mcp: StandInBilly, monkeypatch: pytest.MonkeyPatch
) -> None:
    _logged_in(tmp_path, billy_mcp, monkeypatch)
    errlog_path = tmp_path / "bridge-stderr.txt"
    seen: dict[str, Any] = {}

    async def conversation() -> None:
        params = StdioServerParameters(command=_cli_path(), args=["--mcp"], env=_env(tmp_path))
        with errlog_path.open("w") as errlog:
            async with Client(stdio_client(params, errlog=errlog)) as client:
                seen["server"] = client.server_info.name if client.server_info else None
                seen["tools"] = (await client.list_tools()).tools
                seen["ok"] = await client.call_tool("preview_refund", {"order_number": "5678"})
                seen["tool_error"] = await client.call_tool("preview_refund", {"order_number": "1"})
                local_http().post(f"{billy_mcp.url}/revoke")  # revoked in Settings → Agents while Claude runs
                with pytest.raises(MCPError) as refused:
                    await client.call_tool("preview_refund", {"order_number": "5678"})
                seen["refused"] = refused.value

    anyio.run(conversation)

    assert seen["server"] == "agent-billy"
    [tool] = seen["tools"]
    assert tool.name == "preview_refund" and tool.output_schema is not None
    assert seen["ok"].is_error is False
    assert seen["ok"].structured_content == {"amount": "$45.99", "customer": "Jane Smith", "within_cap": True}
    assert seen["tool_error"].is_error is True
    assert "No charge has order number 1." in seen["tool_error"].content[0].text
    assert "npx agent-billy login" in seen["refused"].message and "log in again" in seen["refused"].message
    assert "log in again" in errlog_path.read_text()  # Claude Desktop keeps this in its MCP log


# --- npx of the packed launcher --------------------------------------------------------------


def _npm_env(home: Path) -> dict[str, str]:
    """A fresh home (npm's cache, the launcher's cache) and a PATH without this repository's venv:
    the launcher must find the machine's Python 3.11 as it would on a person's computer."""
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENT_BILLY_", "XDG_", "VIRTUAL_ENV"))}
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p != venv_bin)
    env.update(HOME=str(home), NPM_CONFIG_UPDATE_NOTIFIER="false", NPM_CONFIG_FUND="false", NPM_CONFIG_AUDIT="false")
    return env


def test_npx_of_the_packed_launcher_installs_the_bundled_wheel_and_prints_the_version(tmp_path: Path) -> None:
    npm, npx, node = shutil.which("npm"), shutil.which("npx"), shutil.which("node")
    assert npm and npx and node, "Node.js and npm are needed to build the launcher"
    home = tmp_path / "home"
    home.mkdir()
    env = _npm_env(home)
    package_version = json.loads((NPM_PACKAGE / "package.json").read_text())["version"]
    assert package_version == __version__

    packed = subprocess.run(
        [npm, "pack", str(NPM_PACKAGE), "--pack-destination", str(tmp_path)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert packed.returncode == 0, packed.stderr
    tarball = tmp_path / f"agent-billy-{package_version}.tgz"
    wheel_name = f"agent_billy_cli-{__version__}-py3-none-any.whl"
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert {"package/bin/agent-billy.js", f"package/wheels/{wheel_name}", "package/package.json"} <= names

    first = subprocess.run(
        [npx, "--yes", f"./{tarball.name}", "--version"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == f"agent-billy {__version__}"
    assert f"installing the CLI from the bundled {wheel_name}" in first.stderr
    [environment] = (home / ".cache" / "agent-billy").glob("venv-*")
    # pip records where it installed the CLI from: the wheel inside the npm package, not an index.
    [origin] = environment.glob(f"lib/python3.11/site-packages/agent_billy_cli-{__version__}.dist-info/direct_url.json")
    assert json.loads(origin.read_text())["url"].endswith(f"/agent-billy/wheels/{wheel_name}")

    again = subprocess.run(
        [npx, "--yes", f"./{tarball.name}", "--version"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert again.returncode == 0 and again.stdout.strip() == f"agent-billy {__version__}"
    assert "installing" not in again.stderr  # the private environment is reused

    # Without Python 3.11 on the PATH, the launcher says what is missing and how to get it.
    with tarfile.open(tarball) as archive:
        archive.extractall(tmp_path / "unpacked", filter="data")
    only_node = tmp_path / "only-node"
    only_node.mkdir()
    (only_node / "node").symlink_to(node)
    bare = subprocess.run(
        [str(only_node / "node"), str(tmp_path / "unpacked" / "package" / "bin" / "agent-billy.js"), "--version"],
        env=env | {"PATH": str(only_node)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bare.returncode == 1
    assert "needs Python 3.11" in bare.stderr and "AGENT_BILLY_PYTHON" in bare.stderr
