"""One settings object for the instance, read from `BILLY_*` environment variables.

Everything configurable lives here so the README's settings table and the code
cannot disagree: `settings_table()` is rendered into the README by a test.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from enum import Enum, StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, EnvSettingsSource, PydanticBaseSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars

from services.errors import SettingsInvalid
from services.origins import origins_of

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


# Key Vault secret names are `^[0-9a-zA-Z-]{1,127}$`; the prefix leaves room for Billy's own names.
VAULT_PREFIX_MAX = 64
VAULT_PREFIX = re.compile(rf"^[0-9A-Za-z-]{{0,{VAULT_PREFIX_MAX}}}$")


def vault_url_problem(url: str) -> str:
    """What is wrong with `url` as a Key Vault address (empty: nothing), in words for `BILLY_KEY_VAULT_URL`."""
    example = "e.g. https://billy-acme.vault.azure.net"
    if not url:
        return f"BILLY_SECRET_STORE is azure, so give the vault's https address ({example})"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        return f"use the vault's https address ({example})"
    if parts.scheme != "https" or not parts.hostname:
        return f"use the vault's https address ({example}): Key Vault answers over https only"
    if parts.username or parts.password or parts.query or parts.fragment or parts.path.strip("/"):
        return f"use the vault's address alone, with no path, query or user ({example})"
    return ""


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
        description="`local` (encrypted files under the data folder) or `azure` (Azure Key Vault at "
        "`BILLY_KEY_VAULT_URL`).",
    )
    key_vault_url: str = Field(
        default="",
        description="Azure Key Vault address for `BILLY_SECRET_STORE=azure`, e.g. "
        "`https://billy-acme.vault.azure.net`. Billy signs in with its managed identity (Azure Container Apps), "
        "or a service principal or `az login` elsewhere; it needs the Key Vault Secrets Officer role on the vault.",
    )
    key_vault_secret_prefix: str = Field(
        default="",
        description="Prefix of every secret name Billy keeps in the vault (letters, digits and dashes), e.g. `acme-`: "
        "one namespace per organisation instance sharing a vault.",
    )
    key_vault_ca_file: str = Field(
        default="",
        description="PEM file of the CA the vault's TLS certificate must chain to, for tests and private endpoints "
        "with a private CA. Empty in production: the system's trusted CAs.",
    )
    key_vault_kept_seconds: float = Field(
        default=5.0,
        ge=0,
        le=300,
        description="Seconds a secret read from Key Vault answers this process's later reads (0: every read asks "
        "the vault). Every Stripe request reads the key, and the vault's read limit (4,000 per 10 s) is shared by "
        "every worker and replica. A change made by another worker or replica is heard through Redis at once; "
        "while Redis is away it is seen within this time.",
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
    account_url: str = Field(
        default="",
        description="The control plane's account page for this organisation, set by provisioning (e.g. "
        "`https://agentbilly.ai/account/acme`): Billy's plan is paid for and changed there, and Settings → Plan "
        "links to it. Empty: plans are chosen in the instance, as on a first-run-signup instance.",
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
    sync_walkers: int = Field(
        default=0,
        ge=0,
        le=256,
        description="How many list walks a backfill runs at once at most, across resources and the `created` "
        "ranges it splits them into (walkers join as ranges go on). 0: enough to keep the request ceiling busy at "
        "about 0.5 s per Stripe page (4 to 32).",
    )
    sync_writers: int = Field(
        default=0,
        ge=0,
        le=32,
        description="How many threads store a backfill's pages on PostgreSQL, each page in its own transaction. "
        "0: four. SQLite always has one, storing what waits in one transaction.",
    )
    event_poll_seconds: float = Field(
        default=5,
        description="How often to read new Stripe events when no webhook secret is set (0: never).",
    )
    event_log_retention_days: int = Field(
        default=30,
        ge=4,
        le=3650,
        description="How many days Billy keeps each Stripe event it received (the `stripe_event` log that makes a "
        "repeated delivery a no-op); older rows are pruned every hour, 1,000 rows per short transaction. At least 4: "
        "Stripe retries a delivery for up to 3 days, and a replay older than 5 minutes fails its signature check "
        "anyway.",
    )
    webhook_max_bytes: int = Field(
        default=1_048_576,
        ge=65_536,
        le=67_108_864,
        description="Largest Stripe webhook delivery Billy reads, in bytes (1 MiB by default). A bigger one is refused "
        "with 413 as soon as it passes this size, before it is parsed or its signature checked, whatever its "
        "`Content-Length` claims; Stripe's events are far smaller.",
    )
    stripe_timeout_seconds: float = Field(
        default=30,
        gt=0,
        le=120,
        description="How long Billy waits for one answer from Stripe before counting it as lost. A change whose answer "
        "was lost is asked for again with the same idempotency key, so Stripe makes it at most once.",
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
    smtp_password: str = Field(
        default="",
        repr=False,
        description="One-time seed of the SMTP password: when the secret store holds none yet, Billy copies this "
        "into it (secret `smtp-password`) and reads it from there. Remove the variable afterwards.",
    )
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
        description="Redis for Reflex's per-tab state, live-update notices and the shared Stripe request gate: "
        "needed to run several workers (`make run-scaled`).",
    )
    log_level: str = Field(
        default="INFO",
        description="Python log level. The Stripe SDK's lines for each request are written only at `DEBUG`.",
    )

    @field_validator("key_vault_url")
    @classmethod
    def _vault_url_when_azure(cls, value: str, info: ValidationInfo) -> str:
        """`azure` without a usable vault address would only fail at the first secret read: say so at start."""
        if info.data.get("secret_store") != SecretStoreKind.AZURE:
            return value
        problem = vault_url_problem(value)
        if problem:
            raise ValueError(problem)
        return value.rstrip("/")

    @field_validator("key_vault_secret_prefix")
    @classmethod
    def _prefix_is_a_name_part(cls, value: str) -> str:
        if not VAULT_PREFIX.fullmatch(value):
            raise ValueError(f"use at most {VAULT_PREFIX_MAX} letters, digits and dashes (Key Vault's secret names)")
        return value

    @field_validator("account_url")
    @classmethod
    def _account_url_is_a_web_address(cls, value: str) -> str:
        """Pages put it in a link's href, so only an http(s) address with a host may get there."""
        if not value:
            return value
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 - raises on a port that is not a number
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("use the account page's http or https address, e.g. https://agentbilly.ai/account/acme")
        return value

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
        return origins_of(self.public_url)

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
    elif error["type"] == "value_error" and "ctx" in error:
        expected = str(error["ctx"]["error"])  # a validator's own words, without pydantic's "Value error, "
    else:
        expected = _EXPECTED.get(error["type"], error["msg"])
    shown = "not set" if error["input"] == "" else repr(error["input"])  # "" only reaches here as a default
    return f"{name} is {shown}: {expected}"


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


def settings_table(settings_class: type[BaseSettings] | None = None, prefix: str = ENV_PREFIX) -> str:
    """A README settings table, generated from a settings object's fields: the instance's by
    default, the control plane's (`BILLY_CONTROLPLANE_*`) when given its class and prefix."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    for name, field in (settings_class or Settings).model_fields.items():
        default: Any = field.default
        if isinstance(default, Path):
            default = (
                f"`./{default.relative_to(PROJECT_ROOT)}`" if default.is_relative_to(PROJECT_ROOT) else f"`{default}`"
            )
        elif isinstance(default, Enum):
            default = f"`{default.value}`"
        elif default == "":
            default = "(empty)"
        else:
            default = f"`{str(default).lower() if isinstance(default, bool) else default}`"
        rows.append(f"| `{prefix}{name.upper()}` | {default} | {field.description} |")
    return "\n".join(rows)
