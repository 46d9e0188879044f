"""Every process of one instance signs and verifies with the same keys.

Stop 32's CI failure: two workers of a new instance each found no JWT key on first use, each made
one, and each kept its own. A page signed in on one worker was sent back to the sign-in page when
its next connection landed on the other. Here real processes start at once over one local store,
as Granian's workers do, and the server's start makes the keys before any worker runs.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest

from billy_app.serve import make_shared_keys
from services import identity, signing
from services.config import get_settings
from services.secrets import LocalEncryptedSecretStore, SecretStore, get_secret_store

PROCESSES = 6
ROUNDS = 4


def _first_use(
    folder: str, name: str, start: multiprocessing.synchronize.Barrier, answers: multiprocessing.Queue
) -> None:  # type: ignore[type-arg]
    """One worker's first use of a key: a store of its own over the shared folder, as each process has."""
    store = LocalEncryptedSecretStore(Path(folder) / "secrets", Path(folder) / "master.key")
    signing.get_secret_store = lambda: store  # type: ignore[assignment]  # this child process only
    signing._kept.clear()
    start.wait()
    answers.put(signing.instance_key(name))


@pytest.mark.parametrize("name", signing.INSTANCE_KEYS)
def test_workers_making_a_key_at_the_same_moment_all_go_on_with_the_same_one(tmp_path: Path, name: str) -> None:
    context = multiprocessing.get_context("fork")  # as Granian's workers: the app already imported
    for round_ in range(ROUNDS):
        folder = tmp_path / f"instance-{round_}"
        start = context.Barrier(PROCESSES)
        answers: multiprocessing.Queue[str] = context.Queue()
        workers = [
            context.Process(target=_first_use, args=(str(folder), name, start, answers)) for _ in range(PROCESSES)
        ]
        for worker in workers:
            worker.start()
        keys = [answers.get(timeout=30) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
        stored = LocalEncryptedSecretStore(folder / "secrets", folder / "master.key").get(name)
        assert len(set(keys)) == 1, f"round {round_}: {len(set(keys))} different keys among {PROCESSES} workers"
        assert keys[0] == stored and len(stored) >= 60


def test_the_server_makes_the_keys_before_its_workers_and_leaves_existing_ones(instance) -> None:  # type: ignore[no-untyped-def]
    store: SecretStore = get_secret_store()
    assert all(store.get(name) is None for name in signing.INSTANCE_KEYS)  # a new instance

    assert sorted(make_shared_keys()) == sorted(signing.INSTANCE_KEYS)
    made = {name: store.get(name) for name in signing.INSTANCE_KEYS}
    assert make_shared_keys() == []  # a restart keeps them: tokens already handed out stay valid
    assert {name: store.get(name) for name in signing.INSTANCE_KEYS} == made

    # What a worker signs with afterwards is the key made at the start.
    signing._kept.clear()
    assert signing.instance_key(signing.JWT_KEY_SECRET) == made[signing.JWT_KEY_SECRET] == identity._jwt_key()
    assert signing.instance_key() == made[signing.SIGNING_KEY_SECRET]


def test_a_secret_store_it_cannot_open_does_not_stop_the_start(instance, capsys) -> None:  # type: ignore[no-untyped-def]
    """The workers then meet the same store and say so on their readiness probe."""
    master = get_settings().resolved_master_key_file
    master.parent.mkdir(parents=True, exist_ok=True)
    master.write_bytes(b"too short to be a key")

    assert make_shared_keys() == []
    assert "signing keys are not checked" in capsys.readouterr().err
