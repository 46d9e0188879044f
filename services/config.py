"""One settings object for the instance, read from `BILLY_*` environment variables.

Everything configurable lives here so the README's settings table and the code
cannot disagree: `SETTINGS_DOC` is rendered into the README by a test.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def _flag(value: str) -> bool:
    return value.strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Settings:
    """Instance settings. Defaults are the embedded local set-up (`make run`)."""

    data_dir: Path = field(
        default=PROJECT_ROOT / "data",
        metadata={"env": "BILLY_DATA_DIR", "doc": "Folder for the local database, secret store and sandbox state."},
    )
    database_url: str = field(
        default="",
        metadata={
            "env": "BILLY_DATABASE_URL",
            "doc": "SQLAlchemy URL of the store. Empty: SQLite at `<data_dir>/db/billy.db`. "
            "PostgreSQL: `postgresql+psycopg2://user@host/db`.",
        },
    )
    secret_store: str = field(
        default="local",
        metadata={"env": "BILLY_SECRET_STORE", "doc": "`local` (encrypted files) or `azure` (Key Vault, later issue)."},
    )
    secrets_dir: str = field(
        default="",
        metadata={"env": "BILLY_SECRETS_DIR", "doc": "Local secret store folder. Empty: `<data_dir>/secrets`."},
    )
    master_key_file: str = field(
        default="",
        metadata={
            "env": "BILLY_MASTER_KEY_FILE",
            "doc": "Master key of the local secret store (back this file up). Empty: `<data_dir>/keys/master.key`.",
        },
    )
    stripe_api_base: str = field(
        default="",
        metadata={
            "env": "BILLY_STRIPE_API_BASE",
            "doc": "Stripe API address. Empty: real Stripe. `make run` points it at the local sandbox.",
        },
    )
    sandbox: bool = field(
        default=False,
        metadata={
            "env": "BILLY_SANDBOX",
            "doc": "Sandbox mode: the wizard offers the sandbox's demo restricted key.",
        },
    )
    sandbox_demo_key: str = field(
        default="",
        metadata={"env": "BILLY_SANDBOX_DEMO_KEY", "doc": "The demo restricted key the wizard offers in sandbox mode."},
    )
    first_run_signup: bool = field(
        default=True,
        metadata={
            "env": "BILLY_FIRST_RUN_SIGNUP",
            "doc": "Offer signup while the instance has no organisation (off in hosted deployments).",
        },
    )
    public_url: str = field(
        default="http://localhost:3000",
        metadata={
            "env": "BILLY_PUBLIC_URL",
            "doc": "Address users open; its origin is the only one allowed to POST forms.",
        },
    )
    access_token_seconds: int = field(
        default=3600,
        metadata={
            "env": "BILLY_ACCESS_TOKEN_SECONDS",
            "doc": "Lifetime of an access token (seconds, one hour by default); pages refresh it before it ends.",
        },
    )
    session_days: int = field(
        default=14,
        metadata={
            "env": "BILLY_SESSION_DAYS",
            "doc": "How long a sign-in (its refresh token family) lasts before signing in again (days).",
        },
    )
    login_limit_per_account: str = field(
        default="5/15 minutes",
        metadata={"env": "BILLY_LOGIN_LIMIT_PER_ACCOUNT", "doc": "Failed sign-ins allowed per email address."},
    )
    login_limit_per_address: str = field(
        default="30/15 minutes",
        metadata={"env": "BILLY_LOGIN_LIMIT_PER_ADDRESS", "doc": "Failed sign-ins allowed per client address."},
    )
    sync_on_start: bool = field(
        default=True,
        metadata={"env": "BILLY_SYNC_ON_START", "doc": "Catch the store up with Stripe when the app starts."},
    )
    stripe_requests_per_second: float = field(
        default=0,
        metadata={
            "env": "BILLY_STRIPE_REQUESTS_PER_SECOND",
            "doc": "Ceiling on Billy's Stripe requests per second. 0: under Stripe's limits (90 live, 20 test mode).",
        },
    )
    event_poll_seconds: float = field(
        default=5,
        metadata={
            "env": "BILLY_EVENT_POLL_SECONDS",
            "doc": "How often to read new Stripe events when no webhook secret is set (0: never).",
        },
    )
    smtp_host: str = field(
        default="127.0.0.1",
        metadata={"env": "BILLY_SMTP_HOST", "doc": "SMTP server for invites and password resets."},
    )
    smtp_port: int = field(
        default=1025,
        metadata={"env": "BILLY_SMTP_PORT", "doc": "SMTP port (1025: the local mail catcher `make run` starts)."},
    )
    smtp_user: str = field(
        default="", metadata={"env": "BILLY_SMTP_USER", "doc": "SMTP user name, if the server needs one."}
    )
    smtp_password: str = field(
        default="", metadata={"env": "BILLY_SMTP_PASSWORD", "doc": "SMTP password, if the server needs one."}
    )
    smtp_tls: str = field(
        default="none",
        metadata={"env": "BILLY_SMTP_TLS", "doc": "`none`, `starttls` or `ssl` (implicit TLS, usually port 465)."},
    )
    mail_from: str = field(
        default="Agent Billy <billy@localhost>",
        metadata={"env": "BILLY_MAIL_FROM", "doc": "Sender of Billy's emails."},
    )
    redis_url: str = field(
        default="",
        metadata={
            "env": "BILLY_REDIS_URL",
            "doc": "Redis for Reflex's per-tab state and live-update notices when several workers run.",
        },
    )
    log_level: str = field(default="INFO", metadata={"env": "BILLY_LOG_LEVEL", "doc": "Python log level."})

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'db' / 'billy.db'}"

    @property
    def resolved_secrets_dir(self) -> Path:
        return Path(self.secrets_dir) if self.secrets_dir else self.data_dir / "secrets"

    @property
    def resolved_master_key_file(self) -> Path:
        return Path(self.master_key_file) if self.master_key_file else self.data_dir / "keys" / "master.key"

    @property
    def allowed_origins(self) -> list[str]:
        """Origins that may open the websocket and post forms: the public URL, plus its
        loopback aliases when it is a local address (localhost and 127.0.0.1 are one place)."""
        parts = urlsplit(self.public_url)
        origin = f"{parts.scheme}://{parts.netloc}"
        if parts.hostname not in ("localhost", "127.0.0.1"):
            return [origin]
        port = f":{parts.port}" if parts.port else ""
        return [f"{parts.scheme}://{host}{port}" for host in ("localhost", "127.0.0.1")]

    @property
    def cookie_secure(self) -> bool:
        """Cookies are `Secure` everywhere but plain-HTTP localhost development."""
        return not self.public_url.startswith("http://")


def settings_from_env(environ: dict[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}  # each value parsed to its field's type below
    for f in fields(Settings):
        raw = env.get(f.metadata["env"])
        if raw is None or raw == "":
            continue
        if f.type in ("bool", bool):
            values[f.name] = _flag(raw)
        elif f.type in ("int", int):
            values[f.name] = int(raw)
        elif f.type in ("float", float):
            values[f.name] = float(raw)
        elif f.type in ("Path", Path):
            values[f.name] = Path(raw)
        else:
            values[f.name] = raw
    return Settings(**values)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()


def settings_table() -> str:
    """The README's settings table, generated from the dataclass."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for f in fields(Settings):
        default = f.default
        if isinstance(default, Path):
            default = "`./data`"
        elif default == "":
            default = "(empty)"
        else:
            default = f"`{str(default).lower() if isinstance(default, bool) else default}`"
        rows.append(f"| `{f.metadata['env']}` | {default} | {f.metadata['doc']} |")
    return "\n".join(rows)
