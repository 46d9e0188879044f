"""Time zones and whole days as a person picks them, for filters in the viewer's own zone."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from services.errors import ValidationFailed

EARLIEST_DAY, LATEST_DAY = date(1970, 1, 1), date(9998, 12, 31)


def known_zone(name: object) -> str | None:
    """An IANA time zone this machine knows ("Europe/Paris"), or None."""
    if isinstance(name, str) and 0 < len(name) <= 64 and re.fullmatch(r"[A-Za-z0-9_+\-/]+", name):
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError, OSError):
            return None
        return name
    return None


def viewer_zone(name: object) -> str:
    """The viewer's IANA time zone as the browser names it, if this machine knows it; else UTC."""
    return known_zone(name) or "UTC"


@cache
def zone_choices() -> tuple[str, ...]:
    """The zones a person picks from: UTC, then every "Region/City" zone, sorted (no legacy aliases
    such as "US/Eastern" or "Etc/GMT+5")."""
    regions = {"Africa", "America", "Antarctica", "Asia", "Atlantic", "Australia", "Europe", "Indian", "Pacific"}
    return ("UTC", *sorted(z for z in available_timezones() if z.split("/")[0] in regions))


def _day(text: object, name: str) -> date | None:
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if not isinstance(text, str):
        raise ValidationFailed(f"The '{name}' date must be a date like 2025-01-31.")
    try:
        day = date.fromisoformat(text.strip()[:10]) if len(text.strip()) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise ValidationFailed(f"“{text.strip()[:40]}” is not a date: use the form 2025-01-31.")
    if not EARLIEST_DAY <= day <= LATEST_DAY:
        raise ValidationFailed(f"The '{name}' date must lie between 1970 and 9998.")
    return day


def day_range(date_from: object, date_to: object, zone: str = "UTC") -> tuple[datetime | None, datetime | None]:
    """Whole days as a person picks them, in their time zone → (date_from, date_to) for
    AuditFilters: from the start of the first day to the end of the last, in UTC."""
    tz = ZoneInfo(viewer_zone(zone))
    first, last = _day(date_from, "from"), _day(date_to, "to")
    if first is not None and last is not None and first > last:
        raise ValidationFailed(
            f"The 'from' date ({first.isoformat()}) is after the 'to' date ({last.isoformat()}): "
            "swap them or clear one."
        )
    since = datetime(first.year, first.month, first.day, tzinfo=tz).astimezone(UTC) if first else None
    after = last + timedelta(days=1) if last else None
    before = datetime(after.year, after.month, after.day, tzinfo=tz).astimezone(UTC) if after else None
    return since, before
