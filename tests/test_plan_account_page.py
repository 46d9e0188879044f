"""A provisioned instance's plan is managed on the control plane's account page (`BILLY_ACCOUNT_URL`).

Billy's plan is paid for in Billy's own Stripe account there, and provisioning writes the result
into the instance. Choosing a plan inside such an instance would give the organisation a plan
nobody pays for, so the service refuses it (every edge goes through it), Settings → Plan links to
the account page instead, and the trial-ended message sends people there. Without the setting (a
first-run-signup instance, no control plane) nothing changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlmodel import col, select

from billy_app.billy_app import app  # noqa: F401 - every page and state registered
from billy_app.state.plan import PlanState
from billy_app.state.session import SessionState
from controlplane.local import InstanceSettings, LocalProvisioner
from services import identity, organization, team
from services.config import get_settings, settings_from_env
from services.db import session_scope
from services.errors import PermissionDenied, PlanLimitReached, SettingsInvalid, ValidationFailed
from services.models import AuditEntry, Organization, utcnow
from services.permissions import Actor, authorize
from services.plans import trial_ended_message
from tests.conftest import OWNER_EMAIL, OWNER_PASSWORD, member_actor
from tests.reflex_events import event_pipeline

ACCOUNT = "https://agentbilly.ai/account/acme"
REFUSAL = f"Billy's plan is managed on your account page: {ACCOUNT}"


@pytest.fixture
def account_page(monkeypatch: pytest.MonkeyPatch) -> str:
    """This instance was provisioned: its plan lives on the control plane's account page."""
    monkeypatch.setenv("BILLY_ACCOUNT_URL", ACCOUNT)
    get_settings.cache_clear()
    return ACCOUNT


def _end_trial() -> Actor:
    """The trial ended a minute ago; the Owner as a fresh sign-in sees it."""
    with session_scope() as s:
        s.get(Organization, 1).trial_ends_at = utcnow() - timedelta(minutes=1)  # type: ignore[union-attr]
    return identity.verify_access(identity.login(OWNER_EMAIL, OWNER_PASSWORD).access)


def _plan_row() -> tuple[str, bool]:
    with session_scope() as s:
        org = s.get(Organization, 1)
        assert org is not None
        return org.plan, org.plan_chosen_at is not None


def _choose_plan_outcomes() -> list[tuple[str, str | None]]:
    with session_scope() as s:
        rows = s.exec(
            select(AuditEntry).where(AuditEntry.action == "billy.choose_plan").order_by(col(AuditEntry.id))
        ).all()
        return [(r.outcome, r.error) for r in rows]


# --- the setting ---------------------------------------------------------------------------------


def test_the_account_url_is_empty_by_default_and_only_a_web_address_is_taken() -> None:
    assert settings_from_env({}).account_url == ""
    assert settings_from_env({"BILLY_ACCOUNT_URL": ACCOUNT}).account_url == ACCOUNT
    # It ends up in a link's href: a script URL there would run on the Owner's click.
    for bad in ("javascript:alert(1)", "agentbilly.ai/account/acme", "https:///account/acme", "http://x:port/"):
        with pytest.raises(SettingsInvalid, match=r"BILLY_ACCOUNT_URL is .*http or https address"):
            settings_from_env({"BILLY_ACCOUNT_URL": bad})


def test_the_local_provisioner_points_each_instance_at_its_account_page(tmp_path: Path) -> None:
    provisioner = LocalProvisioner(tmp_path, 8080, InstanceSettings(frontend=False))
    env = provisioner.env("acme")
    assert env["BILLY_ACCOUNT_URL"] == "http://localhost:8080/account/acme"
    assert settings_from_env(env).account_url == "http://localhost:8080/account/acme"


# --- the service -----------------------------------------------------------------------------------


def test_choosing_a_plan_is_refused_on_a_provisioned_instance(any_store_owner: Actor, account_page: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        organization.choose_plan(any_store_owner, "business")
    assert refused.value.message == REFUSAL
    assert _plan_row() == ("pro", False)  # the trial's plan, still not chosen
    # Roles first, as everywhere: a member learns only that the Owner manages the plan.
    with pytest.raises(PermissionDenied):
        organization.choose_plan(member_actor("billing_manager", "m@example.com"), "business")
    outcomes = _choose_plan_outcomes()
    assert [outcome for outcome, _ in outcomes] == ["failed", "denied"] and outcomes[0][1] == REFUSAL


def test_without_an_account_page_the_owner_still_chooses_here(any_store_owner: Actor) -> None:
    assert organization.choose_plan(any_store_owner, "business").plan == "business"
    assert _plan_row() == ("business", True)


def test_an_ended_trial_sends_people_to_the_account_page(any_store_owner: Actor, account_page: str) -> None:
    owner = _end_trial()
    with pytest.raises(PlanLimitReached) as refused:
        authorize(owner, "team.invite")
    assert refused.value.message == trial_ended_message(owner.trial_ended_on)  # type: ignore[arg-type]
    assert f"read-only until the Owner chooses a plan on the account page ({ACCOUNT})." in refused.value.message
    assert "Settings → Plan" not in refused.value.message
    (invite,) = team.invite_members(owner, [("clerk@example.com", "billing_clerk")])
    assert not invite.ok and ACCOUNT in invite.message
    # And choosing here is no way out of it: the account page is.
    with pytest.raises(ValidationFailed, match="managed on your account page"):
        organization.choose_plan(owner, "pro")


def test_an_ended_trial_without_an_account_page_names_settings_plan(any_store_owner: Actor) -> None:
    owner = _end_trial()
    with pytest.raises(PlanLimitReached, match=r"chooses a plan in Settings → Plan\.$"):
        authorize(owner, "team.invite")


# --- the page, through Reflex's real event pipeline ----------------------------------------------------


@pytest.fixture
def owner_pipeline(owner: Actor, account_page: str) -> Iterator[object]:
    with event_pipeline() as pipeline:
        yield pipeline


def test_the_plan_page_links_to_the_account_page_and_a_forged_choice_is_refused(owner_pipeline) -> None:  # type: ignore[no-untyped-def]
    tab = owner_pipeline.owner_tab("/settings/plan")
    loaded = tab.send(PlanState, "load")
    assert loaded.last(PlanState, "account_url") == ACCOUNT
    assert loaded.last(PlanState, "can_manage") is True  # the Owner: the link, not the "only the Owner" line
    assert loaded.last(PlanState, "can_choose") is False  # no buttons
    # The buttons are not drawn, but an event can still be sent by hand: the service answers it.
    sent = tab.send(PlanState, "choose", {"plan": "business"})
    assert sent.last(PlanState, "message") == REFUSAL
    assert sent.last(PlanState, "message_kind") == "error"
    assert _plan_row() == ("pro", False)


def test_after_the_trial_the_banner_and_the_plan_page_name_the_account_page(owner_pipeline) -> None:  # type: ignore[no-untyped-def]
    ended_on = _end_trial().trial_ended_on
    assert ended_on is not None
    tab = owner_pipeline.owner_tab("/settings/plan")
    banner = tab.send(SessionState, "require_member").last(SessionState, "read_only_notice")
    notice = tab.send(PlanState, "load").last(PlanState, "trial_notice")
    assert banner == notice == trial_ended_message(ended_on)
    assert f"on the account page ({ACCOUNT})" in notice
