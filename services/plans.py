"""Billy's own plans (what the organisation pays Billy for), as data."""

from __future__ import annotations

from dataclasses import dataclass

TRIAL_DAYS = 14


@dataclass(frozen=True)
class Plan:
    key: str
    label: str
    member_limit: int | None  # None: unlimited
    export: bool
    custom_roles: bool

    @property
    def limits(self) -> str:
        """What the plan holds, as signup and Settings → Plan say it (one wording for both)."""
        members = "Unlimited members" if self.member_limit is None else f"Up to {self.member_limit} members"
        adds = [word for word, has in (("exports", self.export), ("custom roles", self.custom_roles)) if has]
        return f"{members} · {' and '.join(adds)}" if adds else f"{members} · no exports"


PLANS: dict[str, Plan] = {
    "starter": Plan("starter", "Starter", 3, export=False, custom_roles=False),
    "pro": Plan("pro", "Pro", 10, export=True, custom_roles=False),
    "business": Plan("business", "Business", None, export=True, custom_roles=True),
}
