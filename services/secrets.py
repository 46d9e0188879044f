"""Where the Stripe key and other instance secrets live: never the database (DESIGN, key custody).

`SecretStore` is the interface; `LocalEncryptedSecretStore` is the embedded default
and `AzureKeyVaultSecretStore` arrives with its own issue.
"""

from __future__ import annotations

import os
import re
import secrets as _random
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from services.config import SecretStoreKind, Settings, get_settings
from services.errors import BillyError

_NAME = re.compile(r"^[A-Za-z0-9-]{1,127}$")  # Key Vault's own rule for secret names


class SecretStoreError(BillyError):
    code = "secret_store"


class SecretStore(Protocol):
    def get(self, name: str) -> str | None: ...

    def set(self, name: str, value: str) -> None: ...

    def delete(self, name: str) -> None: ...


def _check_name(name: str) -> None:
    if not _NAME.match(name):
        raise SecretStoreError(f"Invalid secret name {name!r}: use letters, digits and dashes.")


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, atomically (no torn secret on a crash)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{_random.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


class LocalEncryptedSecretStore:
    """One AES-256-GCM encrypted file per secret; the master key sits in its own 0600 file.

    The secret's name is the GCM associated data, so a ciphertext copied onto another
    name fails to decrypt instead of silently answering with the wrong secret.
    """

    def __init__(self, folder: Path, master_key_file: Path) -> None:
        self.folder = folder
        self.master_key_file = master_key_file
        self._aead = AESGCM(self._load_or_create_master_key())

    def _load_or_create_master_key(self) -> bytes:
        if self.master_key_file.exists():
            key = self.master_key_file.read_bytes()
            if len(key) != 32:
                raise SecretStoreError(f"The master key file {self.master_key_file} is damaged (wrong length).")
            return key
        key = AESGCM.generate_key(bit_length=256)
        _write_private(self.master_key_file, key)
        return key

    def _path(self, name: str) -> Path:
        _check_name(name)
        return self.folder / f"{name}.secret"

    def get(self, name: str) -> str | None:
        path = self._path(name)
        if not path.exists():
            return None
        blob = path.read_bytes()
        try:
            return self._aead.decrypt(blob[:12], blob[12:], name.encode()).decode()
        except InvalidTag as exc:
            raise SecretStoreError(
                f"Secret {name!r} cannot be decrypted: the master key file does not match this store."
            ) from exc

    def set(self, name: str, value: str) -> None:
        nonce = _random.token_bytes(12)
        _write_private(self._path(name), nonce + self._aead.encrypt(nonce, value.encode(), name.encode()))

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)


def make_secret_store(settings: Settings) -> SecretStore:
    if settings.secret_store == SecretStoreKind.LOCAL:
        return LocalEncryptedSecretStore(settings.resolved_secrets_dir, settings.resolved_master_key_file)
    raise SecretStoreError(f"Secret store {str(settings.secret_store)!r} is not available in this version.")


@lru_cache(maxsize=1)
def get_secret_store() -> SecretStore:
    return make_secret_store(get_settings())
