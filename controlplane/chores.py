"""The control plane's clock work while it serves: a tick a minute, and a backup of every store a day."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from controlplane.lifecycle import LIVE, ControlPlane
from controlplane.local import LocalProvisioner

log = logging.getLogger("billy.controlplane")

TICK_SECONDS = 60
BACKUP_EVERY = 24 * 3600


def backup_all(plane: ControlPlane, now: datetime) -> list[str]:
    """One backup of every live organisation's store, then backups past the 30 days pruned. Only the
    local provisioner keeps its own; on Azure the Flexible Server's automated backups are the daily ones."""
    provisioner = plane.provisioner
    if not isinstance(provisioner, LocalProvisioner):
        return []
    done = []
    for org in plane.store.orgs_in(*LIVE):
        provisioner.backup(plane.spec(org), now=now)
        done.append(org.slug)
    provisioner.prune_backups(now)
    return done


def run_chores(plane: ControlPlane, stop: threading.Event) -> None:
    """The clock's work while serving: a tick a minute, backups once a day."""
    last_backup = 0.0
    while not stop.wait(TICK_SECONDS if last_backup else 5):
        now = datetime.now(UTC)
        try:
            report = plane.tick(now)
            if report.failures:
                log.warning("tick failures: %s", report.failures)
            if now.timestamp() - last_backup >= BACKUP_EVERY:
                backup_all(plane, now)
                last_backup = now.timestamp()
        except Exception:  # a chore's failure must not stop the next one
            log.exception("control plane chore failed")
