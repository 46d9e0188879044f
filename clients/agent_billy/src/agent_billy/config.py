"""Where agent-billy keeps its one secret: the agent token, readable only by the person who logged in.

The file is `config.json` in the user's config folder (`$XDG_CONFIG_HOME/agent-billy`, by default
`~/.config/agent-billy`; `%APPDATA%\\agent-billy` on Windows; `AGENT_BILLY_CONFIG_DIR` overrides).
The folder is 0700 and the file 0600, and the file is replaced atomically, so a crash mid-write
never leaves half a token and no other local user can read it at any moment.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import sys
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

DEFAULT_URL = "http://localhost:3000"
CONFIG_FILE = "config.json"


def config_dir() -> Path:
    """The folder holding config.json (not created here)."""
    override = os.environ.get("AGENT_BILLY_CONFIG_DIR")
    if override:
        return Path(override).expanduser()
    if sys.platform == "win32" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "agent-billy"
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base).expanduser() / "agent-billy"


def config_path() -> Path:
    return config_dir() / CONFIG_FILE


@dataclass(frozen=True)
class Login:
    """One stored login: which instance, as whom, and the token that acts for them there."""

    url: str
    token: str = ""
    token_id: str = ""
    member_email: str = ""
    role_label: str = ""
    client_name: str = ""
    expires_at: str | None = None

    @property
    def logged_in(self) -> bool:
        return bool(self.token)


def load() -> Login | None:
    """The stored login, or None when there is no (readable) config file."""
    path = config_path()
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError(f"Cannot read {path}: {exc}. Delete it and run `npx agent-billy login` again.") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str):
        raise ConfigError(f"{path} is not agent-billy's. Delete it and run `npx agent-billy login` again.")
    _tighten(path)
    known = {f.name for f in fields(Login)}
    values: dict[str, Any] = {k: v for k, v in raw.items() if k in known and (v is None or isinstance(v, str))}
    return Login(**values)


def save(login: Login) -> Path:
    """Write the login atomically: a 0600 temporary file in the same 0700 folder, then a rename."""
    folder = config_dir()
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if os.name == "posix":
        folder.chmod(0o700)  # an existing folder may have been created looser
    body = json.dumps(asdict(login), indent=2) + "\n"
    fd, temp_name = tempfile.mkstemp(prefix=".config-", suffix=".tmp", dir=folder)  # mkstemp: mode 0600
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(body)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_name, folder / CONFIG_FILE)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp_name)
        raise
    return folder / CONFIG_FILE


def forget_token(login: Login) -> None:
    """Drop the token (and who it was for) but keep the instance's address for the next login."""
    save(Login(url=login.url))


def _tighten(path: Path) -> None:
    """A config file others can read (copied by hand, restored from a backup) is made private again."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        path.chmod(0o600)
        print(f"agent-billy: {path} was readable by others; it is now readable only by you.", file=sys.stderr)


class ConfigError(Exception):
    """The config file exists but cannot be used; the message says what to do."""
