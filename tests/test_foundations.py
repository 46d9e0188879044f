"""Settings, money, secrets and log scrubbing: the pieces every other part stands on."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.config import (
    PROJECT_ROOT,
    SecretStoreKind,
    SmtpTls,
    get_settings,
    settings_from_env,
    settings_table,
)
from services.errors import BillyError, SettingsInvalid
from services.logging_setup import install_scrubber, scrub
from services.money import format_money, parse_money
from services.secrets import LocalEncryptedSecretStore, SecretStoreError


def test_settings_read_from_environment_with_types() -> None:
    s = settings_from_env({"BILLY_SANDBOX": "true", "BILLY_SESSION_DAYS": "3", "BILLY_DATA_DIR": "/srv/billy"})
    assert s.sandbox is True and s.session_days == 3
    assert s.resolved_database_url == "sqlite:////srv/billy/db/billy.db"
    assert s.resolved_master_key_file == Path("/srv/billy/keys/master.key")
    assert settings_from_env({}).first_run_signup is True


def test_settings_defaults_are_the_local_set_up() -> None:
    s = settings_from_env({})
    assert s.data_dir == PROJECT_ROOT / "data"
    assert s.resolved_database_url == f"sqlite:///{PROJECT_ROOT / 'data' / 'db' / 'billy.db'}"
    assert s.resolved_secrets_dir == PROJECT_ROOT / "data" / "secrets"
    assert s.resolved_master_key_file == PROJECT_ROOT / "data" / "keys" / "master.key"
    assert s.secret_store is SecretStoreKind.LOCAL and s.secret_store == "local"
    assert s.smtp_tls is SmtpTls.NONE and s.smtp_tls == "none"
    assert (s.smtp_host, s.smtp_port, s.mail_from) == ("127.0.0.1", 1025, "Agent Billy <billy@localhost>")
    assert (s.access_token_seconds, s.session_days) == (3600, 14)
    assert (s.login_limit_per_account, s.login_limit_per_address) == ("5/15 minutes", "30/15 minutes")
    assert (s.stripe_requests_per_second, s.event_poll_seconds) == (0, 5)
    assert (s.sandbox, s.first_run_signup, s.sync_on_start) == (False, True, True)
    assert s.database_url == s.secrets_dir == s.master_key_file == s.stripe_api_base == s.redis_url == ""
    assert s.public_url == "http://localhost:3000" and s.log_level == "INFO"
    assert s.allowed_origins == ["http://localhost:3000", "http://127.0.0.1:3000"] and not s.cookie_secure


def test_settings_enums_empty_values_and_unrelated_variables() -> None:
    s = settings_from_env(
        {"BILLY_SMTP_TLS": "starttls", "BILLY_SMTP_PORT": "", "BILLY_TEST_PG_HOST": "db", "PATH": "/bin"}
    )
    assert s.smtp_tls is SmtpTls.STARTTLS and s.smtp_port == 1025  # empty counts as unset
    azure = {"BILLY_SECRET_STORE": "azure", "BILLY_KEY_VAULT_URL": "https://billy-acme.vault.azure.net"}
    assert settings_from_env(azure).secret_store is SecretStoreKind.AZURE
    with pytest.raises(ValidationError):  # one settings object for the whole instance: no edits
        s.smtp_port = 25  # type: ignore[misc]


def test_an_explicit_mapping_is_the_only_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BILLY_SMTP_HOST", "mail.from-the-environment.test")
    monkeypatch.setenv("BILLY_SMTP_PORT", "not a port")  # would fail if it leaked in
    assert settings_from_env({}).smtp_host == "127.0.0.1"
    assert settings_from_env({"BILLY_SESSION_DAYS": "3"}).smtp_host == "127.0.0.1"
    monkeypatch.delenv("BILLY_SMTP_PORT")
    get_settings.cache_clear()
    try:
        assert settings_from_env().smtp_host == "mail.from-the-environment.test"
        assert get_settings().smtp_host == "mail.from-the-environment.test"
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"BILLY_SMTP_PORT": "abc"}, "BILLY_SMTP_PORT is 'abc': use a whole number."),
        ({"BILLY_SMTP_TLS": "tls"}, "BILLY_SMTP_TLS is 'tls': use none, starttls or ssl."),
        ({"BILLY_SECRET_STORE": "vault"}, "BILLY_SECRET_STORE is 'vault': use local or azure."),
        ({"BILLY_SANDBOX": "maybe"}, "BILLY_SANDBOX is 'maybe': use true or false."),
        (
            {"BILLY_EVENT_POLL_SECONDS": "often", "BILLY_SESSION_DAYS": "2.5"},
            "BILLY_SESSION_DAYS is '2.5': use a whole number; BILLY_EVENT_POLL_SECONDS is 'often': use a number.",
        ),
    ],
)
def test_a_bad_setting_is_one_clear_error_naming_the_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsInvalid) as failure:
        settings_from_env(environ)
    assert str(failure.value) == message  # plain words, no pydantic dump
    assert isinstance(failure.value, BillyError) and failure.value.code == "settings_invalid"
    assert failure.value.__cause__ is None and failure.value.__suppress_context__


def test_a_bad_setting_stops_the_billy_command_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from services import cli

    monkeypatch.setenv("BILLY_SMTP_PORT", "abc")
    get_settings.cache_clear()
    try:
        assert cli.main(["audit", "verify"]) == 2
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().err == "billy: BILLY_SMTP_PORT is 'abc': use a whole number.\n"


def test_readme_documents_every_setting() -> None:
    """The README's settings tables are generated from the settings objects (the instance's and the
    control plane's), so neither can drift."""
    from controlplane.config import ENV_PREFIX as CONTROLPLANE_PREFIX
    from controlplane.config import ControlPlaneSettings

    readme = (PROJECT_ROOT / "README.md").read_text()
    assert settings_table() in readme
    assert settings_table(ControlPlaneSettings, CONTROLPLANE_PREFIX) in readme


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (4599, "usd", "$45.99"),
        (120000, "usd", "$1,200.00"),
        (500, "jpy", "¥500"),
        (1234, "sek", "12.34 SEK"),
        (-250, "eur", "-€2.50"),
    ],
)
def test_format_money(amount: int, currency: str, text: str) -> None:
    assert format_money(amount, currency) == text


def test_parse_money_accepts_what_people_type_and_refuses_the_rest() -> None:
    assert parse_money("45.99", "usd") == 4599
    assert parse_money("1,200", "usd") == 120000
    assert parse_money("500", "jpy") == 500
    for bad in ("", "abc", "1.234", "4.5.6"):
        with pytest.raises(ValueError):
            parse_money(bad, "usd")
    with pytest.raises(ValueError, match="decimals"):
        parse_money("5.5", "jpy")


def test_local_secret_store_round_trip_and_privacy(tmp_path: Path) -> None:
    store = LocalEncryptedSecretStore(tmp_path / "secrets", tmp_path / "keys" / "master.key")
    store.set("stripe-restricted-key", "rk_test_abcdefghijkl123")
    assert store.get("stripe-restricted-key") == "rk_test_abcdefghijkl123"
    assert store.get("absent") is None
    files = list((tmp_path / "secrets").iterdir())
    assert len(files) == 1
    assert b"rk_test_abcdefghijkl123" not in files[0].read_bytes()  # encrypted at rest
    for path in (files[0], tmp_path / "keys" / "master.key"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # A new store object with the same master key reads it back (restart).
    again = LocalEncryptedSecretStore(tmp_path / "secrets", tmp_path / "keys" / "master.key")
    assert again.get("stripe-restricted-key") == "rk_test_abcdefghijkl123"
    store.delete("stripe-restricted-key")
    assert again.get("stripe-restricted-key") is None


def test_secret_store_detects_swapped_ciphertext_and_wrong_master_key(tmp_path: Path) -> None:
    store = LocalEncryptedSecretStore(tmp_path / "s", tmp_path / "k" / "master.key")
    store.set("one", "first")
    store.set("two", "second")
    (tmp_path / "s" / "two.secret").write_bytes((tmp_path / "s" / "one.secret").read_bytes())
    with pytest.raises(SecretStoreError):
        store.get("two")  # ciphertext is bound to its name
    other = LocalEncryptedSecretStore(tmp_path / "s", tmp_path / "other.key")
    with pytest.raises(SecretStoreError, match="master key"):
        other.get("one")
    with pytest.raises(SecretStoreError):
        store.set("../escape", "x")


def test_log_records_are_scrubbed_of_stripe_keys(caplog: pytest.LogCaptureFixture) -> None:
    install_scrubber()
    key = "rk_live_51AbCdEfGhIjKlMnOpQrStUv"
    with caplog.at_level(logging.INFO):
        logging.getLogger("anything").info("pasted %s and sk_test_123456789abc", key)
        try:
            raise RuntimeError(f"boom {key}")
        except RuntimeError:
            logging.getLogger("anything").exception("failed")
    assert key not in caplog.text and "sk_test_123456789abc" not in caplog.text
    assert "rk_live_…[redacted]" in caplog.text
    assert scrub("whsec_abcdef123") == "whsec_ab…[redacted]"


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
def test_the_stripe_sdk_logs_each_request_only_at_debug(level: str, sandbox, caplog: pytest.LogCaptureFixture) -> None:  # type: ignore[no-untyped-def]
    """Two records per Stripe request buried Billy's own lines in its log during a sync; an
    operator who asks for DEBUG still gets them."""
    install_scrubber(level)
    try:
        with caplog.at_level(logging.DEBUG):
            sandbox.client().v1.customers.list(params={"limit": 1})
        stripe_lines = [r for r in caplog.records if r.name == "stripe" and r.levelno < logging.WARNING]
        assert bool(stripe_lines) is (level == "DEBUG")
    finally:
        install_scrubber("INFO")


def test_allowed_origins_cover_loopback_aliases_only_for_local_instances() -> None:
    local = settings_from_env({"BILLY_PUBLIC_URL": "http://localhost:3000"})
    assert local.allowed_origins == ["http://localhost:3000", "http://127.0.0.1:3000"]
    assert not local.cookie_secure
    hosted = settings_from_env({"BILLY_PUBLIC_URL": "https://acme.agentbilly.ai"})
    assert hosted.allowed_origins == ["https://acme.agentbilly.ai"] and hosted.cookie_secure


def test_the_migrations_build_exactly_the_models(any_store) -> None:  # type: ignore[no-untyped-def]
    """A model changed without a migration (or a migration that drifts from the models) fails here."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlmodel import SQLModel

    import services.models  # noqa: F401 - registers every table on SQLModel.metadata
    from services import db
    from services.search import include_name, include_object

    with db.get_engine().connect() as conn:
        # Only migration 0009's named search objects (FTS5 tables, trigram indexes) are skipped.
        opts = {"compare_type": True, "include_name": include_name, "include_object": include_object}
        context = MigrationContext.configure(conn, opts=opts)
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == [], f"models and migrations differ: {diff}"


def test_each_database_runs_as_billy_tunes_it(any_store) -> None:  # type: ignore[no-untyped-def]
    """SQLite: WAL, so pages read while a sync writes. PostgreSQL: no JIT and no parallel
    workers, which made a costly count overrun a page's budget sixfold (bench/pages)."""
    import sqlalchemy as sa

    from services import db

    engine = db.get_engine()
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            assert connection.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
        else:
            assert connection.execute(sa.text("SHOW jit")).scalar_one() == "off"
            assert connection.execute(sa.text("SHOW max_parallel_workers_per_gather")).scalar_one() == "0"


def test_the_smtp_password_never_shows_when_settings_are_printed() -> None:
    settings = settings_from_env({"BILLY_SMTP_PASSWORD": "hunter2-not-for-logs"})
    assert settings.smtp_password == "hunter2-not-for-logs"
    assert "hunter2" not in repr(settings) and "hunter2" not in str(settings)


def test_every_browser_test_lives_in_tests_browser() -> None:
    """`make test` collects its browser phase from tests/browser alone (scripts/test.sh), and the
    first phase deselects the browser marker: a browser test anywhere else would run in neither."""
    tests = Path(__file__).parent
    marker = "pytest.mark." + "browser"  # spelled apart, so this file does not match itself
    outside = [
        str(path.relative_to(tests))
        for path in sorted(tests.rglob("*.py"))
        if path.relative_to(tests).parts[0] != "browser" and marker in path.read_text()
    ]
    assert outside == []
    assert any(marker in path.read_text() for path in (tests / "browser").glob("test_*.py"))
