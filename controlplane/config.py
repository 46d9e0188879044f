"""The control plane's settings: one object, read from `BILLY_CONTROLPLANE_*` variables.

Separate from the instance's `BILLY_*` settings on purpose: the control plane holds Billy's own
Stripe account and the operator's provisioning powers, and an instance must never be handed
either by sharing a variable name.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from services.config import PROJECT_ROOT, SmtpTls
from services.errors import SettingsInvalid

ENV_PREFIX = "BILLY_CONTROLPLANE_"
SESSION_KEY_FILE = "session.key"
SESSION_KEY_MIN = 32


class ControlPlaneSettings(BaseSettings):
    """Defaults are the local set-up: SQLite under `data/controlplane`, the local mail catcher,
    organisations at `{slug}.localhost`."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_ignore_empty=True, frozen=True, extra="ignore")

    root: Path = Field(
        default=PROJECT_ROOT / "data" / "controlplane",
        description="Folder of the control plane's own files (its SQLite database by default).",
    )
    database_url: str = Field(
        default="",
        description="SQLAlchemy URL of the control plane's database. Empty: SQLite at `<root>/controlplane.db`.",
    )
    base_domain: str = Field(
        default="localhost", description="Organisations live at `{slug}.<base_domain>` (`localhost` locally)."
    )
    region: str = Field(default="westeurope", description="Azure region of new organisations.")
    stripe_secret_key: str = Field(
        default="", repr=False, description="Secret key of Billy's own Stripe account (Billy's subscriptions)."
    )
    stripe_api_base: str = Field(default="", description="Stripe API address. Empty: real Stripe.")
    stripe_webhook_secret: str = Field(
        default="", repr=False, description="Signing secret of the control plane's Stripe webhook endpoint."
    )
    webhook_tolerance_seconds: int = Field(
        default=300, ge=30, le=3600, description="Oldest signed webhook delivery accepted (seconds)."
    )
    stripe_timeout_seconds: float = Field(default=30, gt=0, le=120, description="Wait for one Stripe answer.")
    stripe_retries: int = Field(
        default=2, ge=0, le=5, description="Retries of a lost Stripe request (same idempotency key)."
    )
    price_lookup_prefix: str = Field(
        default="agent_billy_",
        description="Billy's plan prices are found by lookup key `<prefix><plan>` in Billy's Stripe account.",
    )
    smtp_host: str = Field(default="127.0.0.1", description="SMTP server for trial reminders.")
    smtp_port: int = Field(default=1025, description="SMTP port (1025: the local mail catcher).")
    smtp_user: str = Field(default="", description="SMTP user name, if the server needs one.")
    smtp_password: str = Field(default="", repr=False, description="SMTP password, if the server needs one.")
    smtp_tls: SmtpTls = Field(default=SmtpTls.NONE, description="`none`, `starttls` or `ssl`.")
    mail_from: str = Field(default="Agent Billy <billing@localhost>", description="Sender of the control plane's mail.")
    session_key: str = Field(
        default="",
        repr=False,
        description="Signs the Owner's account sign-in links and session cookie. Empty: a random key made once "
        f"and kept in `<root>/{SESSION_KEY_FILE}` (every process sharing the root shares it).",
    )
    signups_per_hour: int = Field(
        default=3,
        ge=1,
        le=100_000,
        description="New organisations one client address may start in an hour (each starts an instance); "
        "a signup the form refused does not count.",
    )
    # What the local provisioner tells every instance it starts (`make run-controlplane` sets these).
    instance_stripe_api_base: str = Field(
        default="", description="Local instances: the customers' Stripe API address. Empty: real Stripe."
    )
    instance_sandbox: bool = Field(
        default=False, description="Local instances: sandbox mode (the wizard offers the sandbox's demo key)."
    )
    instance_sandbox_demo_key: str = Field(default="", description="Local instances: the sandbox's demo key.")
    instance_smtp_host: str = Field(default="127.0.0.1", description="Local instances: SMTP server for invites.")
    instance_smtp_port: int = Field(default=1025, description="Local instances: SMTP port.")
    instance_web_workdir: str = Field(
        default="", description="Local instances: the frontend build folder they share. Empty: Reflex's `.web`."
    )

    @field_validator("session_key")
    @classmethod
    def _long_enough(cls, value: str) -> str:
        if value and len(value) < SESSION_KEY_MIN:
            raise ValueError(f"use at least {SESSION_KEY_MIN} characters (or leave it unset to have one made)")
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
        """Values given in code, then `BILLY_CONTROLPLANE_*` variables: no `.env`, no secrets folder."""
        return init_settings, env_settings

    @property
    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.root / 'controlplane.db'}"


def session_key(settings: ControlPlaneSettings) -> str:
    """The key from the settings, else the one kept under the root, made on first use.

    Kept on disk rather than made per start: a restart must not sign every Owner out or kill the
    links already mailed. Written aside, then linked into place (which refuses to replace a file),
    so two processes starting together end up with the same key and never read a half-written one."""
    if settings.session_key:
        return settings.session_key
    path = settings.root / SESSION_KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{SESSION_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}")
        draft.touch(mode=0o600)
        try:
            draft.write_text(secrets.token_urlsafe(48) + "\n")
            os.link(draft, path)
        except FileExistsError:
            pass  # another process made it first: use theirs
        finally:
            draft.unlink(missing_ok=True)
    key = path.read_text().strip()
    if len(key) < SESSION_KEY_MIN:
        raise SettingsInvalid(f"{path} holds no usable session key: delete it to have a new one made.")
    return key


def load_settings(**overrides: object) -> ControlPlaneSettings:
    """The settings from the environment (and `overrides`), or `SettingsInvalid` naming each bad variable."""
    try:
        return ControlPlaneSettings(**overrides)  # type: ignore[arg-type]  # pydantic checks the values
    except ValidationError as exc:
        problems = [_problem(error) for error in exc.errors()]
        raise SettingsInvalid("; ".join(problems) + ".") from None


def _problem(error: Any) -> str:
    """One refused variable in words; a secret's value is never repeated (the message goes to logs)."""
    name = str(error["loc"][0]) if error["loc"] else ""
    field = ControlPlaneSettings.model_fields.get(name)
    shown = "not accepted" if field is not None and not field.repr else f"{error['input']!r}"
    return f"{ENV_PREFIX}{name.upper() or '?'} is {shown}: {error['msg']}"


@lru_cache(maxsize=1)
def get_settings() -> ControlPlaneSettings:
    return load_settings()
