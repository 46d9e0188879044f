"""Where the Stripe key and other instance secrets live: never the database (DESIGN, key custody).

`SecretStore` is the interface; `LocalEncryptedSecretStore` is the embedded default and
`AzureKeyVaultSecretStore` (services/keyvault.py, `BILLY_SECRET_STORE=azure`) the hosted one.
"""

from __future__ import annotations

import os
import re
import secrets as _random
import threading
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


class SecretStoreUnavailable(SecretStoreError):
    """The store did not answer (network, throttling, the vault's own outage) even after a few tries.

    The wording is for the member who was connecting or using Stripe, whose key lives there."""

    code = "secret_store_unavailable"
    MESSAGE = (
        "Stripe connection temporarily unavailable: Billy could not reach its key vault. "
        "Nothing was changed; try again in a minute."
    )

    def __init__(self) -> None:
        super().__init__(self.MESSAGE)


class SecretStore(Protocol):
    def get(self, name: str, *, fresh: bool = False) -> str | None:
        """The secret's value, None when there is none. A store may answer from a copy it read a
        few seconds ago (Key Vault: `BILLY_KEY_VAULT_KEPT_SECONDS`); `fresh` asks the store itself."""
        ...

    def set(self, name: str, value: str) -> None: ...

    def create_if_absent(self, name: str, value: str) -> str:
        """Store `value` unless the name already holds one, and answer what the name holds then.

        For keys an instance makes for itself on first use: several processes of one instance may
        each find none and propose their own, and every one of them must go on with the same."""
        ...

    def delete(self, name: str) -> None: ...

    def disable_versions_except_latest(self, name: str) -> int:
        """After a key rotation: make older versions unusable; returns how many were disabled."""
        ...

    def share_changes(self) -> None:
        """A store that answers reads from a copy kept in memory hears of the other workers' writes
        from now on, and tells them of its own (Key Vault); called on the process's own store."""
        ...


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):  # not `match`: its `$` also matches before a final newline
        raise SecretStoreError(f"Invalid secret name {name!r}: use letters, digits and dashes.")


def _private_temp(path: Path, data: bytes) -> Path:
    """`data` written and flushed to a new owner-only file beside `path`, ready to be put in place."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{_random.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def _write_private(path: Path, data: bytes) -> None:
    """Write a file readable by its owner only, atomically (no torn secret on a crash)."""
    os.replace(_private_temp(path, data), path)


def _create_once(path: Path, data: bytes) -> bool:
    """Create `path` holding `data` unless it exists; answers whether this call created it.

    Several processes of one instance (the web server's workers) may start at once and each find
    no master key, or no signing key: a hard link of a finished private file onto the name
    succeeds for exactly one of them, and the others read that one's file."""
    tmp = _private_temp(path, data)
    try:
        os.link(tmp, path)
        return True
    except FileExistsError:
        return False  # another process created it first: theirs is the one
    finally:
        tmp.unlink(missing_ok=True)


class LocalEncryptedSecretStore:
    """One AES-256-GCM encrypted file per secret; the master key sits in its own 0600 file.

    The secret's name is the GCM associated data, so a ciphertext copied onto another
    name fails to decrypt instead of silently answering with the wrong secret.

    The master key can be rotated (`rotate_master_key`, `billy rotate-master-key`). While a
    rotation runs, the new key waits in `<master>.next`: the store then reads with either key and
    writes with the new one, so a crash at any point leaves every secret readable, and running the
    rotation again finishes it. A store that meets a secret its key cannot open reloads the keys
    from disk once (another process rotated them) before calling the file damaged.
    """

    def __init__(self, folder: Path, master_key_file: Path) -> None:
        self.folder = folder
        self.master_key_file = master_key_file
        self._keys_lock = threading.Lock()
        self._keys: list[AESGCM] = []  # newest first: the one `set` writes with
        self._stamp: tuple[int, int, bool] = (0, 0, False)
        self._load_keys()

    @property
    def next_key_file(self) -> Path:
        return self.master_key_file.with_name(self.master_key_file.name + ".next")

    @staticmethod
    def _read_key(path: Path) -> bytes:
        key = path.read_bytes()
        if len(key) != 32:
            raise SecretStoreError(f"The master key file {path} is damaged (wrong length).")
        return key

    def _load_keys(self) -> None:
        if not self.master_key_file.exists():
            _create_once(self.master_key_file, AESGCM.generate_key(bit_length=256))
        keys = [self._read_key(self.master_key_file)]
        if self.next_key_file.exists():  # a rotation is under way (or crashed): its key is the newest
            keys.insert(0, self._read_key(self.next_key_file))
        with self._keys_lock:
            self._keys = [AESGCM(k) for k in keys]
            self._stamp = self._key_files_stamp()

    def _key_files_stamp(self) -> tuple[int, int, bool]:
        """Changes when the master key file is replaced or a rotation's next key appears."""
        stat = self.master_key_file.stat()
        return stat.st_ino, stat.st_mtime_ns, self.next_key_file.exists()

    def _open(self, name: str, blob: bytes) -> str | None:
        with self._keys_lock:
            keys = list(self._keys)
        for aead in keys:
            try:
                return aead.decrypt(blob[:12], blob[12:], name.encode()).decode()
            except InvalidTag:
                continue
        return None

    def _path(self, name: str) -> Path:
        _check_name(name)
        return self.folder / f"{name}.secret"

    def get(self, name: str, *, fresh: bool = False) -> str | None:
        """Always the file as it is now (a read is cheap here), so `fresh` changes nothing."""
        path = self._path(name)
        if not path.exists():
            return None
        blob = path.read_bytes()
        value = self._open(name, blob)
        if value is None:
            self._load_keys()  # another process may have rotated the master key since we read it
            value = self._open(name, blob)
        if value is None:
            raise SecretStoreError(
                f"Secret {name!r} cannot be decrypted: the master key file does not match this store."
            )
        return value

    def _sealed(self, name: str, value: str) -> bytes:
        """`value` encrypted under the newest master key, as a secret's file holds it."""
        if self._key_files_stamp() != self._stamp:
            self._load_keys()  # another process began or finished a rotation: write with its newest key
        with self._keys_lock:
            newest = self._keys[0]
        nonce = _random.token_bytes(12)
        return nonce + newest.encrypt(nonce, value.encode(), name.encode())

    def set(self, name: str, value: str) -> None:
        _write_private(self._path(name), self._sealed(name, value))

    def create_if_absent(self, name: str, value: str) -> str:
        """Atomic across processes: the file appears complete under its name or not at all, and
        exactly one proposer's file does (`_create_once`)."""
        path = self._path(name)
        while True:
            if _create_once(path, self._sealed(name, value)):
                return value
            held = self.get(name)
            if held is not None:
                return held
            # deleted between our attempt and the read: propose again

    def names(self) -> list[str]:
        """Every secret's name (the files in the folder)."""
        if not self.folder.exists():
            return []
        return sorted(p.name.removesuffix(".secret") for p in self.folder.glob("*.secret"))

    def rotate_master_key(self) -> int:
        """Re-encrypt every secret under a new master key; the old key opens nothing afterwards.
        Returns how many secrets were re-encrypted. Safe to run again after a crash."""
        if not self.next_key_file.exists():
            _write_private(self.next_key_file, AESGCM.generate_key(bit_length=256))
        self._load_keys()  # [new, old]
        with self._keys_lock:
            new_key = self._keys[0]
        for name in self.names():
            self._rewrite(name, new_key)
        os.replace(self.next_key_file, self.master_key_file)  # the old key's only copy goes here
        # A write that began under the old key just before the rotation may have landed after
        # its file was visited: a last pass, still holding the old key in memory, catches it.
        for name in self.names():
            self._rewrite(name, new_key)
        self._load_keys()
        return len(self.names())

    def _rewrite(self, name: str, new_key: AESGCM) -> None:
        blob = self._path(name).read_bytes()
        try:
            new_key.decrypt(blob[:12], blob[12:], name.encode())
            return  # already under the new key
        except InvalidTag:
            pass
        value = self._open(name, blob)
        if value is None:
            raise SecretStoreError(f"Secret {name!r} cannot be decrypted with either master key; nothing was changed.")
        nonce = _random.token_bytes(12)
        _write_private(self._path(name), nonce + new_key.encrypt(nonce, value.encode(), name.encode()))

    def delete(self, name: str) -> None:
        self._path(name).unlink(missing_ok=True)

    def disable_versions_except_latest(self, name: str) -> int:
        """A no-op here: a local secret has one version only (`set` overwrites the file), so after a
        rotation nothing older remains to disable. It exists so rotation code runs on either store."""
        self._path(name)  # the same refusal of a bad name as every other method
        return 0

    def share_changes(self) -> None:
        """Nothing to share: every read opens the file as it is now, so no copy can go stale."""


def make_secret_store(settings: Settings) -> SecretStore:
    if settings.secret_store == SecretStoreKind.LOCAL:
        return LocalEncryptedSecretStore(settings.resolved_secrets_dir, settings.resolved_master_key_file)
    if settings.secret_store == SecretStoreKind.AZURE:
        from services.keyvault import AzureKeyVaultSecretStore  # the Azure SDK loads only where it is used

        return AzureKeyVaultSecretStore.from_settings(settings)
    raise SecretStoreError(f"Secret store {str(settings.secret_store)!r} is not available in this version.")


@lru_cache(maxsize=1)
def get_secret_store() -> SecretStore:
    """This process's store, sharing its changes with the instance's other workers. Never made in
    the process that forks the workers (`billy_app.serve` makes a store of its own there)."""
    store = make_secret_store(get_settings())
    store.share_changes()
    return store
