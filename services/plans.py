"""Billy's own plans (what the organisation pays Billy for), as data."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from services.config import get_settings

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


def where_plans_are_chosen() -> str:
    """Where the Owner goes to choose a plan, as a sentence ends: a provisioned instance's plan is
    paid for on the control plane's account page (`BILLY_ACCOUNT_URL`), so sending people to
    Settings → Plan there would leave them at a link rather than an answer."""
    url = get_settings().account_url
    return f"on the account page ({url})" if url else "in Settings → Plan"


def trial_ended_message(ended_on: date) -> str:
    """Why Billy is read-only and where to go: one wording for the refusal, the banner and Settings → Plan."""
    return (
        f"Your free trial ended on {ended_on:%d %B %Y}, so Billy is read-only until the Owner chooses a plan "
        f"{where_plans_are_chosen()}."
    )
