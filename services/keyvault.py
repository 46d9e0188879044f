"""`AzureKeyVaultSecretStore`: the secret store on Azure Key Vault (`BILLY_SECRET_STORE=azure`).

Deliberate choices, each for a reason:

- Sign-in: `DefaultAzureCredential`, trimmed to what a server can use. In Azure Container Apps it
  resolves to the app's managed identity (`IDENTITY_ENDPOINT`/`IDENTITY_HEADER`), with no secret
  anywhere in Billy's settings. Kept before it: a service principal from `AZURE_CLIENT_*` variables
  (hosting outside Azure) and workload identity (Kubernetes); kept after it: the Azure CLI (a
  developer's `az login` against a dev vault). Excluded: the shared token cache, VS Code, PowerShell,
  the Developer CLI, the broker and the interactive browser. None applies to a server, and each
  costs time (a subprocess, a file search) on every cold start or failed sign-in.
- Trust: the vault's certificate is checked against the system's CAs, or against
  `BILLY_KEY_VAULT_CA_FILE` when set (a private CA in front of a private endpoint, or the test
  fake). It is passed to this client only (`connection_verify`), not through `SSL_CERT_FILE` or
  `REQUESTS_CA_BUNDLE`, which would change whom every other HTTPS client of the process trusts,
  Stripe's included. The SDK's check that the vault's challenge names a resource above the vault's
  own host (`verify_challenge_resource`) stays on.
- Retries: the SDK's own retry policy is off (`retry_total=0`). Tenacity retries each operation
  instead (connection errors, timeouts, 408, 429, 5xx and 409 conflicts of a deletion under way),
  `attempts` times with exponential waits of `retry_wait`, 2×, 4×… seconds (4 attempts and
  0.5 s by default: at most 3.5 s of waiting before a member hears "try again in a minute").
  Then `SecretStoreUnavailable`. One layer, so the numbers are the real ones.
- Reads kept a few seconds (`kept_seconds`, `BILLY_KEY_VAULT_KEPT_SECONDS`, 5 by default): every
  Stripe request reads the restricted key, so a first sync at 100 requests/s would be 100 vault
  reads a second per worker, each a round trip, against the vault's limit (4,000 reads per 10 s,
  for every worker and replica together, and every organisation if several share the vault). A
  value this store wrote or deleted is seen at once by this process. The process's own store
  (`secrets.get_secret_store`) also announces each write and delete as a signal on the
  store-change notices (`SECRET_CHANGES`, the secret's name only; no page hears it), and forgets
  what it kept of a name when it hears one: with Redis, every worker and replica drops a rotated
  or disconnected key within the signal's round trip (a few ms). Only while Redis is away does
  another process see the change at the end of the window.
  `get(name, fresh=True)` asks the vault itself (is a key that Stripe refused still the one
  connected?). A missing secret is never kept.
- Soft delete: a vault keeps deleted secrets (recoverable for 7 to 90 days), so their names stay
  taken. `set` on such a name recovers it and writes the new version (see `set`), and `delete`
  purges only when asked.

Messages never carry a secret value, the vault's own error text, or a traceback.
"""

from __future__ import annotations

import contextlib
import logging
import ssl
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.keyvault.secrets import SecretClient
from tenacity import RetryCallState, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from services import notices
from services.config import VAULT_PREFIX, Settings, vault_url_problem
from services.errors import SettingsInvalid
from services.secrets import SecretStoreError, SecretStoreUnavailable, _check_name

log = logging.getLogger("billy.keyvault")
# azure-core logs every request's URL and headers at INFO (tokens redacted, bodies never): one
# record per vault call would drown Billy's own log, so only its warnings are kept.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(logging.WARNING)

T = TypeVar("T")

VAULT_NAME_MAX = 127  # Key Vault: ^[0-9a-zA-Z-]{1,127}$
RECOVERABLE = "ObjectIsDeletedButRecoverable"  # Key Vault's inner error code on a set of a soft-deleted name
DISABLED = "SecretDisabled"  # ... on a read of a disabled version
SECRET_CHANGES = "secret"  # the signal of a secret written or deleted (its full name; never a value)
_EPOCH = datetime.fromtimestamp(0, UTC)


def vault_credential() -> TokenCredential:
    """The identity Billy signs in to the vault with (module docstring: why these credentials)."""
    from azure.identity import DefaultAzureCredential  # slow to import; only instances on Azure need it

    return DefaultAzureCredential(
        exclude_shared_token_cache_credential=True,
        exclude_visual_studio_code_credential=True,
        exclude_powershell_credential=True,
        exclude_developer_cli_credential=True,
        exclude_interactive_browser_credential=True,
        exclude_broker_credential=True,
    )


def _error_codes(exc: HttpResponseError) -> set[str]:
    """Key Vault's error code and inner error code (`{"error": {"code", "innererror": {"code"}}}`)."""
    error = exc.error
    if error is None:
        return set()
    inner = error.innererror.get("code") if isinstance(error.innererror, dict) else None
    return {code for code in (error.code, inner) if code}


def _untrusted_certificate(exc: BaseException) -> bool:
    """The TLS handshake failed on the vault's certificate: a setting to fix, not a blip to wait out."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLCertVerificationError):
            return True
        if isinstance(current.args[0] if current.args else None, ssl.SSLCertVerificationError):
            return True  # urllib3 wraps it as an argument, not a cause
        inner = getattr(current, "inner_exception", None)
        current = inner if isinstance(inner, BaseException) else (current.__cause__ or current.__context__)
    return False


def is_transient(exc: BaseException) -> bool:
    """Worth another try: no answer, a timeout, throttling, the vault's own failure, or a conflict
    that clears in seconds (a deletion under way). Not: 401/403, 400, an untrusted certificate."""
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        return not _untrusted_certificate(exc)
    if isinstance(exc, ResourceExistsError):
        return RECOVERABLE not in _error_codes(exc)
    if isinstance(exc, ClientAuthenticationError):
        return False
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        return status in (408, 429) or status >= 500
    return False


def _describe(exc: BaseException) -> str:
    """A log-safe account of a failure: its type, status and Key Vault codes, never its text."""
    if isinstance(exc, HttpResponseError) and exc.status_code:
        codes = ",".join(sorted(_error_codes(exc)))
        return f"{type(exc).__name__} {exc.status_code}{f' ({codes})' if codes else ''}"
    return type(exc).__name__


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    wait = state.next_action.sleep if state.next_action else 0
    log.warning(
        "key vault request failed (%s), attempt %d; retrying in %.2fs",
        _describe(exc) if exc else "?",
        state.attempt_number,
        wait,
    )


class AzureKeyVaultSecretStore:
    """The `SecretStore` protocol on an Azure Key Vault, every name under one prefix.

    The prefix (`BILLY_KEY_VAULT_SECRET_PREFIX`) gives each organisation instance sharing a vault its
    own namespace: `get("stripe-restricted-key")` reads `acme-stripe-restricted-key`."""

    def __init__(
        self,
        vault_url: str,
        *,
        prefix: str = "",
        ca_file: str = "",
        credential: TokenCredential | None = None,
        attempts: int = 4,
        retry_wait: float = 0.5,
        timeout: float = 10.0,
        poll_interval: float = 1.0,
        kept_seconds: float = 5.0,
    ) -> None:
        """`timeout`: seconds to connect and, separately, to wait for an answer (the SDK's default is
        300 s, far past a page's patience). `poll_interval`: between checks that a delete or a
        recovery has completed (the SDK's default is 2 s). `kept_seconds`: how long a value read
        or written answers this process's reads (module docstring; 0 reads the vault every time)."""
        # Settings from the environment are checked on reading; this catches ones made in code.
        problem = vault_url_problem(vault_url)
        if problem:
            raise SettingsInvalid(f"BILLY_KEY_VAULT_URL is {vault_url!r}: {problem}.")
        if not VAULT_PREFIX.fullmatch(prefix):
            raise SettingsInvalid(f"BILLY_KEY_VAULT_SECRET_PREFIX is {prefix!r}: use letters, digits and dashes.")
        if ca_file and not Path(ca_file).is_file():
            raise SettingsInvalid(f"BILLY_KEY_VAULT_CA_FILE is {ca_file!r}: there is no file there.")
        self.vault_url = vault_url.rstrip("/")
        self.prefix = prefix
        self._poll_interval = poll_interval
        self._kept_seconds = kept_seconds
        self._kept: dict[str, tuple[float, str]] = {}  # full name → (until, value), by time.monotonic
        self._changes: dict[str, int] = {}  # full name → writes and deletes begun or ended here
        self._forgot_all = 0  # times every kept value was dropped (a "reload everything" notice)
        self._kept_lock = threading.Lock()
        self._announce: Callable[[str], None] | None = None  # tells the other workers (`share_changes`)
        self._stop_hearing: Callable[[], None] | None = None
        self._client = SecretClient(
            self.vault_url,
            credential or vault_credential(),
            retry_total=0,  # tenacity is the one retry layer (module docstring)
            connection_timeout=timeout,
            read_timeout=timeout,
            connection_verify=ca_file or True,
        )
        self._retrying = Retrying(
            stop=stop_after_attempt(max(1, attempts)),
            wait=wait_exponential(multiplier=retry_wait, max=retry_wait * 8),
            retry=retry_if_exception(is_transient),
            before_sleep=_log_retry,
            reraise=True,
        )

    @classmethod
    def from_settings(cls, settings: Settings, **options: Any) -> AzureKeyVaultSecretStore:
        return cls(
            settings.key_vault_url,
            prefix=settings.key_vault_secret_prefix,
            ca_file=settings.key_vault_ca_file,
            **({"kept_seconds": settings.key_vault_kept_seconds} | options),
        )

    def share_changes(self) -> None:
        """Announce every write and delete of this store as a signal, and forget what this store
        keeps of a secret when any process announces a change to it (module docstring).
        Nothing to share when nothing is kept. For the process's own store only: it starts the
        process's notice listener, which a store made before the workers fork must not."""
        if self._kept_seconds <= 0 or self._stop_hearing is not None:
            return
        self._announce = lambda full: notices.signal(SECRET_CHANGES, [full])
        self._stop_hearing = notices.watch(SECRET_CHANGES, lambda notice: self.forget(notice.ids))

    def forget(self, full_names: Iterable[str]) -> None:
        """Drop what this process keeps of these secrets (full names; none: every secret), and let
        no read already under way keep what it finds: another process changed them."""
        names = list(full_names)
        with self._kept_lock:
            if not names:
                self._forgot_all += 1
                self._kept.clear()
            for full in names:
                self._changes[full] = self._changes.get(full, 0) + 1
                self._kept.pop(full, None)

    def close(self) -> None:
        if self._stop_hearing is not None:
            self._stop_hearing()
            self._stop_hearing = None
        self._client.close()

    # --- the protocol ----------------------------------------------------------------------

    def get(self, name: str, *, fresh: bool = False) -> str | None:
        """The value of the newest enabled version; None when there is no such secret (or it is deleted).
        A value read less than `kept_seconds` ago is answered from memory unless `fresh`.

        Key Vault answers a read of a secret whose newest version is disabled with 403 rather
        than falling back: then the newest enabled version is read, as an operator who disables
        a bad new version means to go back to the one before."""
        full = self._full_name(name)
        if not fresh and (kept := self._kept_value(full)) is not None:
            return kept
        seen = self._change_count(full)

        def read() -> str | None:
            try:
                return self._client.get_secret(full).value
            except ResourceNotFoundError:
                return None
            except HttpResponseError as exc:
                if exc.status_code == 403 and DISABLED in _error_codes(exc):
                    return self._newest_enabled_value(full)
                raise

        value = self._run("read", name, read)
        self._keep(full, value, seen)
        return value

    def set(self, name: str, value: str) -> None:
        """Write `value` as the secret's new version.

        A name whose secret was deleted is still taken in the vault's soft-delete bin (409
        `ObjectIsDeletedButRecoverable`). It is recovered, then written, then its older versions are
        disabled. Recovering rather than purging: purge needs a permission Billy's identity should not
        hold, is refused on vaults with purge protection, and erases history an operator may want
        back. Disabling the recovered versions keeps a deleted value from ever being served again
        (`get` falls back to enabled versions only)."""
        full = self._full_name(name)

        def write() -> None:
            try:
                self._client.set_secret(full, value)
                return
            except ResourceExistsError as exc:
                if RECOVERABLE not in _error_codes(exc):
                    raise
            log.info("secret %s was deleted but recoverable: recovering it to write its new version", full)
            self._client.begin_recover_deleted_secret(full, _polling_interval=self._poll_interval).wait()
            self._client.set_secret(full, value)
            self._disable_older(full)

        self._forget(full)
        try:
            self._run("write", name, write)
        finally:
            self._changed(full)  # a read begun during the write may have seen either value: not kept
        self._keep(full, value, self._change_count(full))

    def create_if_absent(self, name: str, value: str) -> str:
        """Write `value` unless the secret exists, then answer what the vault holds.

        Key Vault has no conditional write, so two processes proposing within one round trip could
        each write; reading back after the write makes the later writer's value win for both unless
        they interleave exactly. Billy's server makes its instance keys in the one process that
        starts the workers, before any worker runs (`billy_app.serve`), so within an instance no
        such race happens."""
        current = self.get(name)
        if current is not None:
            return current
        self.set(name, value)
        return self.get(name, fresh=True) or value

    def delete(self, name: str, *, purge: bool = False) -> None:
        """Delete every version (the vault keeps them recoverable) and wait until the deletion is done.

        `purge=True` then erases the deleted secret for good, so the name is free and nothing can be
        recovered (the identity needs the purge permission; vaults with purge protection refuse).
        Deleting a name that does not exist is not an error, as on the local store."""
        full = self._full_name(name)
        self._forget(full)

        def soft_delete() -> None:
            try:
                poller = self._client.begin_delete_secret(full, _polling_interval=self._poll_interval)
            except ResourceNotFoundError:
                return  # nothing by that name, or already deleted
            poller.wait()

        try:
            self._run("delete", name, soft_delete)
        finally:
            self._changed(full)
        if purge:

            def erase() -> None:
                with contextlib.suppress(ResourceNotFoundError):  # never deleted, or already purged
                    self._client.purge_deleted_secret(full)

            self._run("purge", name, erase)

    def disable_versions_except_latest(self, name: str) -> int:
        """Disable every enabled version but the current one (after a key rotation, so a leaked old
        value cannot be read back); returns how many were disabled. `get` still answers the newest."""
        full = self._full_name(name)
        self._forget(full)
        try:
            return self._run("disable old versions of", name, lambda: self._disable_older(full))
        finally:
            self._changed(full)

    # --- helpers ---------------------------------------------------------------------------

    def _kept_value(self, full: str) -> str | None:
        with self._kept_lock:
            kept = self._kept.get(full)
        return kept[1] if kept is not None and kept[0] > time.monotonic() else None

    def _change_count(self, full: str) -> int:
        """Moves whenever the name's kept value must not be trusted any more (both terms only grow)."""
        with self._kept_lock:
            return self._changes.get(full, 0) + self._forgot_all

    def _keep(self, full: str, value: str | None, seen: int) -> None:
        """Remember `value` for `kept_seconds`, unless this process began or ended a write or delete
        of the name, or heard of another process's, since `seen` (`_change_count` when the read
        began). A missing secret is not kept."""
        with self._kept_lock:
            if self._changes.get(full, 0) + self._forgot_all != seen:
                return
            if value is None or self._kept_seconds <= 0:
                self._kept.pop(full, None)
            else:
                self._kept[full] = (time.monotonic() + self._kept_seconds, value)

    def _forget(self, full: str) -> None:
        """A write or delete of the name begins here: drop its kept value, and any read already
        under way will not keep what it finds."""
        self.forget([full])

    def _changed(self, full: str) -> None:
        """A write or delete of the name ended here, done or not: forget as `_forget`, and tell the
        other workers, whose kept copy may now be stale."""
        self.forget([full])
        if self._announce is not None:
            self._announce(full)

    def _full_name(self, name: str) -> str:
        _check_name(name)
        full = self.prefix + name
        if len(full) > VAULT_NAME_MAX:
            raise SecretStoreError(
                f"Invalid secret name {name!r}: with the prefix {self.prefix!r} it is longer than "
                f"Key Vault's {VAULT_NAME_MAX} characters."
            )
        return full

    def _current_version(self, full: str) -> str | None:
        """The version `get` answers with: the newest, or the newest enabled one when that is disabled."""
        try:
            return self._client.get_secret(full).properties.version
        except ResourceNotFoundError:
            return None
        except HttpResponseError as exc:
            if exc.status_code == 403 and DISABLED in _error_codes(exc):
                newest = self._newest_enabled(full)
                return newest.version if newest else None
            raise

    def _newest_enabled(self, full: str) -> Any:
        enabled = [p for p in self._client.list_properties_of_secret_versions(full) if p.enabled]
        return max(enabled, key=lambda p: p.created_on or _EPOCH, default=None)

    def _newest_enabled_value(self, full: str) -> str | None:
        newest = self._newest_enabled(full)
        if newest is None:
            log.warning("every version of secret %s is disabled: reading it as missing", full)
            return None
        try:
            return self._client.get_secret(full, newest.version).value
        except ResourceNotFoundError:
            return None

    def _disable_older(self, full: str) -> int:
        keep = self._current_version(full)
        if keep is None:
            return 0
        disabled = 0
        for props in self._client.list_properties_of_secret_versions(full):
            if props.enabled and props.version != keep:
                self._client.update_secret_properties(full, props.version, enabled=False)
                disabled += 1
        if disabled:
            log.info("disabled %d older version(s) of secret %s", disabled, full)
        return disabled

    def _run(self, action: str, name: str, operation: Callable[[], T]) -> T:
        """`operation` with retries; what the SDK raised, turned into words a person can act on."""
        try:
            return self._retrying.copy()(operation)  # a copy per call: its attempt state is per operation
        except SecretStoreError:
            raise
        except (AzureError, ValueError) as exc:  # ValueError: the SDK refusing a vault's challenge
            error = self._failure(action, name, exc)
            raise error from None  # the chain could carry the vault's text; the log has the type and status

    def _failure(self, action: str, name: str, exc: AzureError | ValueError) -> SecretStoreError:
        where = self.vault_url
        log.warning("could not %s secret %s in key vault %s: %s", action, name, where, _describe(exc))
        if is_transient(exc):
            return SecretStoreUnavailable()
        if isinstance(exc, ServiceRequestError | ServiceResponseError):  # not transient: the certificate
            return SecretStoreError(
                f"Billy does not trust the TLS certificate of its key vault at {where}: check BILLY_KEY_VAULT_URL "
                "(and BILLY_KEY_VAULT_CA_FILE for a private CA). Nothing was changed."
            )
        if isinstance(exc, ClientAuthenticationError):
            return SecretStoreError(
                f"Billy could not sign in to its key vault at {where}: check the managed identity (or the "
                "AZURE_CLIENT_* variables) it runs with. Nothing was changed."
            )
        if isinstance(exc, HttpResponseError) and exc.status_code == 403:
            return SecretStoreError(
                f"The key vault at {where} refused Billy's identity: give it the Key Vault Secrets Officer role "
                "(or get, list, set, delete, recover and purge permissions on secrets). Nothing was changed."
            )
        if isinstance(exc, HttpResponseError):
            codes = ", ".join(sorted(_error_codes(exc))) or "no error code"
            return SecretStoreError(
                f"The key vault at {where} refused to {action} secret {name!r} ({exc.status_code}: {codes})."
            )
        return SecretStoreError(f"Billy could not {action} secret {name!r} in its key vault at {where}.")
