"""One settings object for the instance, read from `BILLY_*` environment variables.

Everything configurable lives here so the README's settings table and the code
cannot disagree: `settings_table()` is rendered into the README by a test.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from services.errors import SettingsInvalid

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_PREFIX = "BILLY_"


class SecretStoreKind(StrEnum):
    """Where the instance keeps its secrets (`BILLY_SECRET_STORE`)."""

    LOCAL = "local"
    AZURE = "azure"


class SmtpTls(StrEnum):
    """How Billy secures its SMTP connection (`BILLY_SMTP_TLS`)."""

    NONE = "none"
    STARTTLS = "starttls"
    SSL = "ssl"


def choices(values: type[StrEnum]) -> str:
    """`none, starttls or ssl`: an enum's allowed values, as a sentence would list them."""
    words = [member.value for member in values]
    return words[0] if len(words) == 1 else f"{', '.join(words[:-1])} or {words[-1]}"


class Settings(BaseSettings):
    """Instance settings. Defaults are the embedded local set-up (`make run`).

    Each field `name` is read from `BILLY_<NAME>`; an empty variable counts as unset."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_ignore_empty=True,
        frozen=True,
        extra="ignore",
    )

    data_dir: Path = Field(
        default=PROJECT_ROOT / "data",
        description="Folder for the local database, secret store and sandbox state.",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the store. Empty: SQLite at `<data_dir>/db/billy.db`. "
        "PostgreSQL: `postgresql+psycopg2://user@host/db`.",
    )
    secret_store: SecretStoreKind = Field(
        default=SecretStoreKind.LOCAL,
        description="`local` (encrypted files) or `azure` (Key Vault, later issue).",
    )
    secrets_dir: str = Field(
        default="",
        description="Local secret store folder. Empty: `<data_dir>/secrets`.",
    )
    master_key_file: str = Field(
        default="",
        description="Master key of the local secret store (back this file up). Empty: `<data_dir>/keys/master.key`.",
    )
    stripe_api_base: str = Field(
        default="",
        description="Stripe API address. Empty: real Stripe. `make run` points it at the local sandbox.",
    )
    sandbox: bool = Field(
        default=False,
        description="Sandbox mode: the wizard offers the sandbox's demo restricted key.",
    )
    sandbox_demo_key: str = Field(
        default="",
        description="The demo restricted key the wizard offers in sandbox mode.",
    )
    first_run_signup: bool = Field(
        default=True,
        description="Offer signup while the instance has no organisation (off in hosted deployments).",
    )
    public_url: str = Field(
        default="http://localhost:3000",
        description="Address users open; its origin is the only one allowed to POST forms.",
    )
    access_token_seconds: int = Field(
        default=3600,
        description="Lifetime of an access token (seconds, one hour by default); pages refresh it before it ends.",
    )
    session_days: int = Field(
        default=14,
        description="How long a sign-in (its refresh token family) lasts before signing in again (days).",
    )
    login_limit_per_account: str = Field(
        default="5/15 minutes",
        description="Failed sign-ins allowed per email address.",
    )
    login_limit_per_address: str = Field(
        default="30/15 minutes",
        description="Failed sign-ins allowed per client address.",
    )
    sync_on_start: bool = Field(
        default=True,
        description="Catch the store up with Stripe when the app starts.",
    )
    stripe_requests_per_second: float = Field(
        default=0,
        description="Ceiling on Billy's Stripe requests per second. 0: under Stripe's limits (90 live, 20 test mode).",
    )
    event_poll_seconds: float = Field(
        default=5,
        description="How often to read new Stripe events when no webhook secret is set (0: never).",
    )
    smtp_host: str = Field(
        default="127.0.0.1",
        description="SMTP server for invites and password resets.",
    )
    smtp_port: int = Field(
        default=1025,
        description="SMTP port (1025: the local mail catcher `make run` starts).",
    )
    smtp_user: str = Field(default="", description="SMTP user name, if the server needs one.")
    smtp_password: str = Field(default="", repr=False, description="SMTP password, if the server needs one.")
    smtp_tls: SmtpTls = Field(
        default=SmtpTls.NONE,
        description="`none`, `starttls` or `ssl` (implicit TLS, usually port 465).",
    )
    mail_from: str = Field(
        default="Agent Billy <billy@localhost>",
        description="Sender of Billy's emails.",
    )
    redis_url: str = Field(
        default="",
        description="Redis for Reflex's per-tab state and live-update notices when several workers run.",
    )
    log_level: str = Field(default="INFO", description="Python log level.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Values given in code, then `BILLY_*` variables: no `.env` file, no secrets folder."""
        return init_settings, env_settings

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


class _EnvironSource(EnvSettingsSource):
    """The environment source, reading `BILLY_*` variables from a given mapping only."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def env_name(field_name: str) -> str:
    """The environment variable of a settings field: `smtp_port` -> `BILLY_SMTP_PORT`."""
    return f"{ENV_PREFIX}{field_name.upper()}"


_EXPECTED = {
    "int_parsing": "use a whole number",
    "int_from_float": "use a whole number",
    "int_type": "use a whole number",
    "float_parsing": "use a number",
    "float_type": "use a number",
    "finite_number": "use a number",
    "bool_parsing": "use true or false",
    "bool_type": "use true or false",
}


def _problem(error: ErrorDetails) -> str:
    """One bad value in plain words: `BILLY_SMTP_PORT is 'abc': use a whole number`."""
    field_name = str(error["loc"][0]) if error["loc"] else ""
    field = Settings.model_fields.get(field_name)
    name = env_name(field_name) if field else "A BILLY_ setting"
    annotation = field.annotation if field else None
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        expected = f"use {choices(annotation)}"
    else:
        expected = _EXPECTED.get(error["type"], error["msg"])
    return f"{name} is {error['input']!r}: {expected}"


def settings_from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """The settings from `environ` (only; default: the process environment).

    Raises `SettingsInvalid` naming each bad variable and what it accepts."""
    source = _EnvironSource(Settings, os.environ if environ is None else environ)
    try:
        # `_build_sources`: pydantic-settings' own hook for pre-built sources (not in the typed field signature).
        return Settings(_build_sources=((source,), {}))  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsInvalid("; ".join(_problem(error) for error in exc.errors()) + ".") from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return settings_from_env()


def settings_table() -> str:
    """The README's settings table, generated from the settings fields."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in Settings.model_fields.items():
        default: Any = field.default
        if isinstance(default, Path):
            default = "`./data`"
        elif default == "":
            default = "(empty)"
        else:
            default = f"`{str(default).lower() if isinstance(default, bool) else default}`"
        rows.append(f"| `{env_name(name)}` | {default} | {field.description} |")
    return "\n".join(rows)
