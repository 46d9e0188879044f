"""The local secret store's master key can be rotated (issue 17): every secret re-encrypted, the old
key useless afterwards, and a crash at any point leaves every secret readable."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from services import secrets as secret_store
from services.config import PROJECT_ROOT
from services.secrets import LocalEncryptedSecretStore, SecretStoreError

SECRETS = {
    "stripe-restricted-key": "rk_test_" + "R" * 40,
    "jwt-signing-key": "j" * 64,
    "webhook-secret": "whsec_abc",
    "smtp-password": "pässwörd ✓",
}


def _store(root: Path) -> LocalEncryptedSecretStore:
    return LocalEncryptedSecretStore(root / "secrets", root / "keys" / "master.key")


def _filled(root: Path) -> LocalEncryptedSecretStore:
    store = _store(root)
    for name, value in SECRETS.items():
        store.set(name, value)
    return store


def _readable(root: Path) -> dict[str, str | None]:
    fresh = _store(root)  # as a restarted process would read the disk
    return {name: fresh.get(name) for name in SECRETS}


def test_rotation_re_encrypts_every_secret_and_the_old_key_opens_none(tmp_path: Path) -> None:
    store = _filled(tmp_path)
    old_key = store.master_key_file.read_bytes()
    old_files = {name: (tmp_path / "secrets" / f"{name}.secret").read_bytes() for name in SECRETS}
    assert store.rotate_master_key() == len(SECRETS)
    assert store.master_key_file.read_bytes() != old_key and not store.next_key_file.exists()
    assert oct(store.master_key_file.stat().st_mode & 0o777) == "0o600"
    assert _readable(tmp_path) == SECRETS
    for name in SECRETS:
        assert (tmp_path / "secrets" / f"{name}.secret").read_bytes() != old_files[name]
    # Someone kept a copy of the old key file: it opens nothing now.
    stolen = tmp_path / "stolen"
    (stolen / "keys").mkdir(parents=True)
    (stolen / "keys" / "master.key").write_bytes(old_key)
    (stolen / "secrets").symlink_to(tmp_path / "secrets")
    with pytest.raises(SecretStoreError, match="cannot be decrypted"):
        _store(stolen).get("stripe-restricted-key")


@pytest.mark.parametrize("crash_after_writes", [0, 1, 3, len(SECRETS)])  # the last: at the swap
def test_a_crash_midway_leaves_every_secret_readable_and_a_second_run_finishes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash_after_writes: int
) -> None:
    store = _filled(tmp_path)
    old_key = store.master_key_file.read_bytes()
    real_write, real_replace = secret_store._write_private, os.replace
    writes = 0

    def write_then_die(path: Path, data: bytes) -> None:
        nonlocal writes
        if path.suffix == ".secret":
            writes += 1
            if writes > crash_after_writes:
                raise KeyboardInterrupt("the process died here")
        real_write(path, data)

    def replace_then_die(src: os.PathLike[str] | str, dst: os.PathLike[str] | str) -> None:
        if str(src).endswith(".next") and writes >= crash_after_writes:  # dies right at the swap
            raise KeyboardInterrupt("the process died here")
        real_replace(src, dst)

    monkeypatch.setattr(secret_store, "_write_private", write_then_die)
    monkeypatch.setattr(secret_store.os, "replace", replace_then_die)
    with pytest.raises(KeyboardInterrupt):
        store.rotate_master_key()
    monkeypatch.undo()

    assert _readable(tmp_path) == SECRETS  # mid-rotation: every secret opens
    fresh = _store(tmp_path)
    fresh.set("written-mid-rotation", "late")  # a write during the crash window is not lost either
    assert fresh.rotate_master_key() == len(SECRETS) + 1
    assert _readable(tmp_path) == SECRETS and _store(tmp_path).get("written-mid-rotation") == "late"
    assert store.master_key_file.read_bytes() != old_key and not store.next_key_file.exists()


def test_a_running_instance_keeps_reading_and_writing_across_a_rotation_elsewhere(tmp_path: Path) -> None:
    running = _filled(tmp_path)  # the app, holding the old key in memory
    _store(tmp_path).rotate_master_key()  # `billy rotate-master-key` in another process
    assert running.get("stripe-restricted-key") == SECRETS["stripe-restricted-key"]
    running.set("jwt-signing-key", "new value")  # written under the new key, not the stale one
    assert _store(tmp_path).get("jwt-signing-key") == "new value"


def test_billy_rotate_master_key_from_the_command_line(tmp_path: Path) -> None:
    _filled(tmp_path)
    env = {
        **os.environ,
        "BILLY_SECRETS_DIR": str(tmp_path / "secrets"),
        "BILLY_MASTER_KEY_FILE": str(tmp_path / "keys" / "master.key"),
        "BILLY_SECRET_STORE": "local",
    }
    before = (tmp_path / "keys" / "master.key").read_bytes()
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "rotate-master-key"],
        capture_output=True,
        text=True,
        env=env,
        cwd=PROJECT_ROOT,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(SECRETS)} secrets re-encrypted" in done.stdout and "back up the new key" in done.stdout
    assert (tmp_path / "keys" / "master.key").read_bytes() != before
    assert _readable(tmp_path) == SECRETS
    assert SECRETS["stripe-restricted-key"] not in done.stdout + done.stderr


def test_processes_starting_together_agree_on_one_master_key(tmp_path: Path) -> None:
    """The web server and its workers may each find no master key at the same moment: one key wins
    and every process uses it, so a secret one of them writes opens in all of them."""
    script = (
        "import sys; from pathlib import Path; from services.secrets import LocalEncryptedSecretStore as S; "
        "r = Path(sys.argv[1]); s = S(r / 'secrets', r / 'keys' / 'master.key'); "
        "s.set('from-' + sys.argv[2], sys.argv[2]); print(s.get('from-' + sys.argv[2]))"
    )
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(tmp_path), str(n)], cwd=PROJECT_ROOT, stdout=subprocess.PIPE, text=True
        )
        for n in range(8)
    ]
    assert [p.communicate(timeout=60)[0].strip() for p in procs] == [str(n) for n in range(8)]
    fresh = _store(tmp_path)
    assert [fresh.get(f"from-{n}") for n in range(8)] == [str(n) for n in range(8)]
    assert sorted(p.name for p in (tmp_path / "keys").iterdir()) == ["master.key"]  # no leftovers
