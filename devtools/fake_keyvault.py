"""A local Azure Key Vault (secrets API) and managed-identity token endpoint, for tests of the real Azure SDK.

    with FakeKeyVault() as vault:
        monkeypatch.setenv("IDENTITY_ENDPOINT", vault.identity_endpoint)   # or vault.identity_env()
        monkeypatch.setenv("IDENTITY_HEADER", vault.identity_header)
        store = AzureKeyVaultSecretStore(vault.url, ca_file=vault.ca_file)

Two listeners, as in Azure Container Apps:

- the vault, over HTTPS on 127.0.0.1 with a throwaway CA made here (`ca_file`): Key Vault's
  secrets REST API as azure-keyvault-secrets 4.12 sends it (any `api-version`; 4.12's default is
  `2026-04-01`), answering in Key Vault's shapes and error bodies (`{"error": {"code", "message",
  "innererror"}}`), including its soft delete (`/deletedsecrets`), recovery and purge;
- the identity endpoint, over plain HTTP like the platform's local one: what azure-identity's
  `ManagedIdentityCredential` calls when `IDENTITY_ENDPOINT` and `IDENTITY_HEADER` are set (MSAL's
  App Service flavour: `GET ?api-version=2019-08-01&resource=…` with header `X-IDENTITY-HEADER`,
  answered with `access_token` and `expires_on` in epoch seconds, as a string).

The vault answers a request without a valid token with Key Vault's 401 challenge
(`WWW-Authenticate: Bearer authorization="https://login.microsoftonline.com/<tenant>", resource="…"`)
and accepts only tokens its identity endpoint issued for that resource, so a test sees the SDK's
whole dance: challenge, token, authorized retry.

The challenge's resource is not `https://vault.azure.net`: the SDK checks that the vault's host
ends with `.<resource host>` (`verify_challenge_resource`, on by default and kept on in Billy), and
127.0.0.1 is not under vault.azure.net. The fake names the parent of its own host instead
(`https://0.0.1:<port>` for `https://127.0.0.1:<port>`), which passes the same check the way
`NAME.vault.azure.net` passes it for `vault.azure.net`. `resource=` overrides it.

Faults for tests: `fail_next(n, status)` answers the next n vault requests with that status,
`drop_next(n)` closes the connection instead of answering, `stall_next(n, seconds)` answers late,
and `outage = True` drops every vault request until set back. `requests` records each vault
request (method, path, query, whether it carried a valid token, the status, 0 for dropped);
`token_requests` each token request.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import re
import secrets
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

DEFAULT_TENANT = "72f988bf-0000-4000-8000-00000000b111"
IDENTITY_API_VERSION = "2019-08-01"  # the App Service / Container Apps token protocol MSAL speaks
RECOVERABLE_DAYS = 90
MAX_VALUE_CHARS = 25 * 1024  # Key Vault refuses larger secret values
_NAME = re.compile(r"^[0-9a-zA-Z-]{1,127}$")

# Routes of the secrets API (paths after unquoting; "/secrets/x/" is "latest version of x").
_VERSIONS = re.compile(r"^/secrets/(?P<name>[^/]+)/versions$")
_SECRET = re.compile(r"^/secrets/(?P<name>[^/]+)/?$")
_VERSION = re.compile(r"^/secrets/(?P<name>[^/]+)/(?P<version>[^/]+)$")
_DELETED = re.compile(r"^/deletedsecrets/(?P<name>[^/]+)$")
_RECOVER = re.compile(r"^/deletedsecrets/(?P<name>[^/]+)/recover$")


@dataclass(frozen=True)
class Recorded:
    """One request to the vault, as the fake saw it."""

    method: str
    path: str
    query: dict[str, str]
    authorized: bool  # carried a token the identity endpoint issued for the vault's resource
    status: int  # 0: the connection was dropped without an answer


@dataclass
class _Version:
    version: str
    value: str
    created: int
    updated: int
    enabled: bool = True
    content_type: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class _Secret:
    versions: list[_Version] = field(default_factory=list)  # oldest first
    state: str = "active"  # "active" | "deleting" (not yet in /deletedsecrets) | "deleted"
    deleted_date: int = 0
    polls_until_deleted: int = 0

    @property
    def latest(self) -> _Version:
        return self.versions[-1]


class _KeyVaultError(Exception):
    """An answer in Key Vault's error shape."""

    def __init__(self, status: int, code: str, message: str, inner: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.inner = status, code, message, inner

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.inner:
            error["innererror"] = {"code": self.inner}
        return {"error": error}


def _not_found(name: str) -> _KeyVaultError:
    return _KeyVaultError(
        404, "SecretNotFound", f"A secret with (name/id) {name} was not found in this key vault. (fake)"
    )


@functools.cache
def _certificates() -> tuple[bytes, bytes, bytes]:
    """(CA certificate, server certificate, server key) in PEM, made once per process.

    A CA and a leaf rather than one self-signed certificate: the client trusts the CA file
    (`connection_verify`), as it would a private CA in front of a private endpoint."""
    now = datetime.now(UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Billy fake Key Vault test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName("localhost"),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                    x509.IPAddress(ipaddress.ip_address("::1")),
                ]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    return (
        ca_cert.public_bytes(serialization.Encoding.PEM),
        leaf.public_bytes(serialization.Encoding.PEM),
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive connections of a client that outlives the fake must not hold stop()

    def __init__(self, address: tuple[str, int], vault: FakeKeyVault, tls: ssl.SSLContext | None) -> None:
        self.vault = vault
        self.tls = tls
        handler = _VaultHandler if tls else _IdentityHandler
        super().__init__(address, handler)

    def finish_request(self, request: Any, client_address: Any) -> None:
        """The TLS handshake happens here, in the connection's own thread, not in the accept loop."""
        if self.tls is None:
            super().finish_request(request, client_address)
            return
        try:
            conn = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return  # e.g. a client that does not trust the CA hangs up during the handshake
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects
    timeout = 10  # an idle kept-alive connection's thread ends after this
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # the stdlib's parameter name
        pass  # the request log is `FakeKeyVault.requests`

    def _body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _answer(self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode() if body is not None else b""
        try:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            if body is not None:
                self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            self.close_connection = True  # the client gave up (a stalled answer past its timeout)


class _IdentityHandler(_Handler):
    """The managed-identity endpoint (`IDENTITY_ENDPOINT`), App Service / Container Apps flavour."""

    def do_GET(self) -> None:
        self.server.vault._issue_token(self)


class _VaultHandler(_Handler):
    def do_GET(self) -> None:
        self.server.vault._serve(self)

    def do_PUT(self) -> None:
        self.server.vault._serve(self)

    def do_PATCH(self) -> None:
        self.server.vault._serve(self)

    def do_DELETE(self) -> None:
        self.server.vault._serve(self)

    def do_POST(self) -> None:
        self.server.vault._serve(self)


class FakeKeyVault:
    """One fake vault with its identity endpoint; `start()` (or `with`) binds free ports on 127.0.0.1."""

    def __init__(
        self,
        *,
        tenant_id: str = DEFAULT_TENANT,
        resource: str | None = None,
        page_size: int = 2,
        delete_polls: int = 0,
        token_seconds: int = 3600,
        folder: Path | None = None,
    ) -> None:
        """`page_size`: versions per page of a listing (small, so the SDK follows `nextLink`);
        `delete_polls`: how many reads of `/deletedsecrets/<name>` answer 404 after a delete before
        the deletion completes (Key Vault's delete takes a moment; the SDK's poller waits for it)."""
        self.tenant_id = tenant_id
        self.page_size = page_size
        self.delete_polls = delete_polls
        self.token_seconds = token_seconds
        self.identity_header = secrets.token_hex(16)
        self.requests: list[Recorded] = []
        self.token_requests: list[dict[str, str]] = []
        self.outage = False
        self._resource = resource
        self._secrets: dict[str, _Secret] = {}
        self._tokens: dict[str, tuple[str, int]] = {}  # token -> (resource, expires_on)
        self._faults: list[tuple[str, float]] = []
        self._clock_offset = 0.0
        self._lock = threading.RLock()
        self._own_folder = folder is None
        self._folder = folder or Path(tempfile.mkdtemp(prefix="fake-keyvault-"))
        self._servers: list[_Server] = []
        self._threads: list[threading.Thread] = []
        self._ports = (0, 0)  # (vault, identity); kept after stop() for a stalled answer still on its way

    # --- running ---------------------------------------------------------------------------

    def start(self) -> FakeKeyVault:
        ca_pem, cert_pem, key_pem = _certificates()
        self._folder.mkdir(parents=True, exist_ok=True)
        (self._folder / "ca.pem").write_bytes(ca_pem)
        (self._folder / "server.pem").write_bytes(cert_pem)
        (self._folder / "server.key").write_bytes(key_pem)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(self._folder / "server.pem", self._folder / "server.key")
        for context in (tls, None):
            server = _Server(("127.0.0.1", 0), self, context)
            thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True)
            thread.name = "fake-keyvault" if context else "fake-identity"
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        self._ports = (self._servers[0].server_address[1], self._servers[1].server_address[1])
        return self

    def stop(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(timeout=5)
        self._servers.clear()
        self._threads.clear()
        if self._own_folder:
            shutil.rmtree(self._folder, ignore_errors=True)

    def __enter__(self) -> FakeKeyVault:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- addresses -------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The vault's address, what `BILLY_KEY_VAULT_URL` would hold."""
        return f"https://127.0.0.1:{self._ports[0]}"

    @property
    def resource(self) -> str:
        """The audience its tokens must carry: the parent of its host, as vault.azure.net is for a vault."""
        if self._resource:
            return self._resource
        return f"https://0.0.1:{self._ports[0]}"

    @property
    def identity_endpoint(self) -> str:
        return f"http://127.0.0.1:{self._ports[1]}/msi/token"

    @property
    def ca_file(self) -> str:
        """The CA that signed the vault's certificate (for `BILLY_KEY_VAULT_CA_FILE`)."""
        return str(self._folder / "ca.pem")

    def identity_env(self) -> dict[str, str]:
        """The variables that make azure-identity's managed identity ask this fake for tokens."""
        return {"IDENTITY_ENDPOINT": self.identity_endpoint, "IDENTITY_HEADER": self.identity_header}

    # --- faults and clock ------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 503) -> None:
        """Answer the next `count` vault requests with `status` (503, 429, 500…) in Key Vault's error shape."""
        with self._lock:
            self._faults.extend([("status", float(status))] * count)

    def drop_next(self, count: int) -> None:
        """Close the connection of the next `count` vault requests without answering."""
        with self._lock:
            self._faults.extend([("drop", 0.0)] * count)

    def stall_next(self, count: int, seconds: float) -> None:
        """Answer the next `count` vault requests only after `seconds` (past a client's read timeout)."""
        with self._lock:
            self._faults.extend([("stall", seconds)] * count)

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (versions' `created`, which Key Vault gives in whole seconds)."""
        with self._lock:
            self._clock_offset += seconds

    def _now(self) -> int:
        return int(time.time() + self._clock_offset)

    # --- what is stored (for assertions) ---------------------------------------------------

    def names(self) -> list[str]:
        """Names of the secrets that exist (not deleted)."""
        with self._lock:
            return sorted(n for n, s in self._secrets.items() if s.state == "active")

    def deleted_names(self) -> list[str]:
        with self._lock:
            return sorted(n for n, s in self._secrets.items() if s.state != "active")

    def versions(self, name: str) -> list[tuple[str, bool]]:
        """(version, enabled) of each version of `name`, oldest first."""
        with self._lock:
            secret = self._secrets.get(name)
            return [(v.version, v.enabled) for v in secret.versions] if secret else []

    def set_enabled(self, name: str, version: str, enabled: bool) -> None:
        """Enable or disable one version, as an operator would in the portal."""
        with self._lock:
            self._version(name, version).enabled = enabled

    # --- the identity endpoint -------------------------------------------------------------

    def _issue_token(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        query = dict(parse_qsl(parts.query))
        header_ok = handler.headers.get("X-IDENTITY-HEADER") == self.identity_header
        with self._lock:
            self.token_requests.append(
                {"path": parts.path, "resource": query.get("resource", ""), "api-version": query.get("api-version", "")}
            )
        if parts.path != "/msi/token" or not header_ok or query.get("api-version") != IDENTITY_API_VERSION:
            handler._answer(400, {"statusCode": 400, "message": "Unexpected request to the identity endpoint."})
            return
        resource = query.get("resource", "")
        if not resource:
            handler._answer(400, {"statusCode": 400, "message": "resource is required."})
            return
        token = "fake-mi-" + secrets.token_urlsafe(24)
        expires_on = int(time.time()) + self.token_seconds
        with self._lock:
            self._tokens[token] = (resource, expires_on)
        handler._answer(
            200,
            {
                "access_token": token,
                "expires_on": str(expires_on),
                "resource": resource,
                "token_type": "Bearer",
                "client_id": "00000000-0000-4000-8000-0000000000c1",
            },
        )

    def _authorized(self, handler: _Handler) -> bool:
        scheme, _, token = (handler.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() != "bearer":
            return False
        with self._lock:
            issued = self._tokens.get(token.strip())
        return issued is not None and issued[0].rstrip("/") == self.resource and issued[1] > time.time()

    # --- the vault -------------------------------------------------------------------------

    def _serve(self, handler: _Handler) -> None:
        parts = urlsplit(handler.path)
        path = unquote(parts.path)
        query = dict(parse_qsl(parts.query))
        body = handler._body()
        authorized = self._authorized(handler)

        def record(status: int) -> None:
            with self._lock:
                self.requests.append(Recorded(handler.command, path, query, authorized, status))

        with self._lock:
            fault = ("drop", 0.0) if self.outage else (self._faults.pop(0) if self._faults else None)
        if fault and fault[0] == "drop":
            record(0)
            handler.close_connection = True
            return
        if fault and fault[0] == "status":
            status = int(fault[1])
            record(status)
            code = {429: "Throttled", 503: "ServiceUnavailable"}.get(status, "InternalServerError")
            handler._answer(status, {"error": {"code": code, "message": f"Injected fault {status} (fake)."}})
            return
        if fault and fault[0] == "stall":
            time.sleep(fault[1])
        if not authorized:
            record(401)
            challenge = (
                f'Bearer authorization="https://login.microsoftonline.com/{self.tenant_id}", resource="{self.resource}"'
            )
            handler._answer(
                401,
                {"error": {"code": "Unauthorized", "message": "AKV10000: Request is missing a Bearer or PoP token."}},
                {"WWW-Authenticate": challenge},
            )
            return
        try:
            status, answer = self._route(handler.command, path, query, body)
        except _KeyVaultError as error:
            status, answer = error.status, error.body()
        record(status)
        handler._answer(status, answer)

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> tuple[int, dict[str, Any] | None]:
        with self._lock:
            if match := _VERSIONS.match(path):
                if method == "GET":
                    return 200, self._list_versions(match["name"], query)
            elif match := _SECRET.match(path):
                name = match["name"]
                if method == "PUT":
                    return 200, self._set(name, _json(body))
                if method == "GET":
                    return 200, self._get(name, "")
                if method == "PATCH":
                    return 200, self._update(name, "", _json(body))
                if method == "DELETE":
                    return 200, self._delete(name)
            elif match := _VERSION.match(path):
                if method == "GET":
                    return 200, self._get(match["name"], match["version"])
                if method == "PATCH":
                    return 200, self._update(match["name"], match["version"], _json(body))
            elif match := _RECOVER.match(path):
                if method == "POST":
                    return 200, self._recover(match["name"])
            elif match := _DELETED.match(path):
                if method == "GET":
                    return 200, self._get_deleted(match["name"])
                if method == "DELETE":
                    self._purge(match["name"])
                    return 204, None
        raise _KeyVaultError(400, "BadParameter", f"The fake vault does not serve {method} {path}.")

    def _active(self, name: str) -> _Secret:
        _check(name)
        secret = self._secrets.get(name)
        if secret is None or secret.state != "active":
            raise _not_found(name)
        return secret

    def _version(self, name: str, version: str) -> _Version:
        secret = self._active(name)
        if not version:
            return secret.latest
        for candidate in secret.versions:
            if candidate.version == version:
                return candidate
        raise _not_found(f"{name}/{version}")

    def _bundle(self, name: str, version: _Version, *, value: bool) -> dict[str, Any]:
        bundle: dict[str, Any] = {
            "id": f"{self.url}/secrets/{name}/{version.version}",
            "attributes": {
                "enabled": version.enabled,
                "created": version.created,
                "updated": version.updated,
                "recoveryLevel": "Recoverable+Purgeable",
                "recoverableDays": RECOVERABLE_DAYS,
            },
            "tags": version.tags,
        }
        if version.content_type is not None:
            bundle["contentType"] = version.content_type
        if value:
            bundle["value"] = version.value
        return bundle

    def _deleted_bundle(self, name: str, secret: _Secret) -> dict[str, Any]:
        return self._bundle(name, secret.latest, value=False) | {
            "recoveryId": f"{self.url}/deletedsecrets/{name}",
            "deletedDate": secret.deleted_date,
            "scheduledPurgeDate": secret.deleted_date + RECOVERABLE_DAYS * 86400,
        }

    def _set(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        _check(name)
        value = body.get("value")
        if not isinstance(value, str):
            raise _KeyVaultError(400, "BadParameter", "The request must carry the secret's value.")
        if len(value) > MAX_VALUE_CHARS:
            raise _KeyVaultError(400, "BadParameter", "The secret's value is larger than Key Vault allows.")
        secret = self._secrets.get(name)
        if secret is not None and secret.state == "deleted":
            raise _KeyVaultError(
                409,
                "Conflict",
                f"Secret {name} is currently in a deleted but recoverable state, and its name cannot be reused; "
                "in this state, the secret can only be recovered or purged.",
                "ObjectIsDeletedButRecoverable",
            )
        if secret is not None and secret.state == "deleting":
            raise _KeyVaultError(409, "Conflict", f"Secret {name} is currently being deleted.", "ObjectIsBeingDeleted")
        if secret is None:
            secret = self._secrets[name] = _Secret()
        now = self._now()
        attributes = body.get("attributes") or {}
        version = _Version(
            version=uuid.uuid4().hex,
            value=value,
            created=now,
            updated=now,
            enabled=bool(attributes.get("enabled", True)),
            content_type=body.get("contentType"),
            tags=dict(body.get("tags") or {}),
        )
        secret.versions.append(version)
        return self._bundle(name, version, value=True)

    def _get(self, name: str, version: str) -> dict[str, Any]:
        found = self._version(name, version)
        if not found.enabled:
            raise _KeyVaultError(
                403, "Forbidden", "Operation get is not allowed on a disabled secret.", "SecretDisabled"
            )
        return self._bundle(name, found, value=True)

    def _update(self, name: str, version: str, body: dict[str, Any]) -> dict[str, Any]:
        found = self._version(name, version)
        attributes = body.get("attributes") or {}
        if "enabled" in attributes and attributes["enabled"] is not None:
            found.enabled = bool(attributes["enabled"])
        if body.get("contentType") is not None:
            found.content_type = body["contentType"]
        if body.get("tags") is not None:
            found.tags = dict(body["tags"])
        found.updated = self._now()
        return self._bundle(name, found, value=False)

    def _list_versions(self, name: str, query: dict[str, str]) -> dict[str, Any]:
        secret = self._active(name)
        size = min(int(query.get("maxresults") or self.page_size), self.page_size)
        start = int(query.get("$skiptoken") or 0)
        page = secret.versions[start : start + size]
        answer: dict[str, Any] = {"value": [self._bundle(name, v, value=False) for v in page]}
        if start + size < len(secret.versions):
            rest = {"api-version": query.get("api-version", ""), "$skiptoken": str(start + size), "maxresults": size}
            answer["nextLink"] = f"{self.url}/secrets/{name}/versions?{urlencode(rest)}"
        else:
            answer["nextLink"] = None
        return answer

    def _delete(self, name: str) -> dict[str, Any]:
        secret = self._active(name)
        secret.deleted_date = self._now()
        secret.polls_until_deleted = self.delete_polls
        secret.state = "deleting" if self.delete_polls else "deleted"
        return self._deleted_bundle(name, secret)

    def _deleted(self, name: str) -> _Secret:
        _check(name)
        secret = self._secrets.get(name)
        if secret is None or secret.state != "deleted":
            raise _KeyVaultError(404, "SecretNotFound", f"Deleted Secret not found: {name} (fake).")
        return secret

    def _get_deleted(self, name: str) -> dict[str, Any]:
        secret = self._secrets.get(name)
        if secret is not None and secret.state == "deleting":
            secret.polls_until_deleted -= 1
            if secret.polls_until_deleted <= 0:
                secret.state = "deleted"
            raise _KeyVaultError(404, "SecretNotFound", f"Deleted Secret not found: {name} (fake).")
        return self._deleted_bundle(name, self._deleted(name))

    def _purge(self, name: str) -> None:
        secret = self._secrets.get(name)
        if secret is not None and secret.state == "deleting":
            raise _KeyVaultError(409, "Conflict", f"Secret {name} is currently being deleted.", "ObjectIsBeingDeleted")
        self._deleted(name)
        del self._secrets[name]

    def _recover(self, name: str) -> dict[str, Any]:
        secret = self._deleted(name)
        secret.state = "active"
        return self._bundle(name, secret.latest, value=False)


def _check(name: str) -> None:
    if not _NAME.fullmatch(name):  # not `match`: its `$` also matches before a final newline
        raise _KeyVaultError(
            400, "BadParameter", "The request URI contains an invalid name: " + json.dumps(name)[:140] + " (fake)."
        )


def _json(body: bytes) -> dict[str, Any]:
    try:
        parsed = json.loads(body or b"{}")
    except ValueError:
        raise _KeyVaultError(400, "BadParameter", "The request body is not JSON.") from None
    if not isinstance(parsed, dict):
        raise _KeyVaultError(400, "BadParameter", "The request body is not a JSON object.")
    return parsed


def free_port() -> int:
    """A port nothing listens on (for a vault address that refuses connections)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
