"""An organisation's whole life under a test clock: signup, trial reminders, read-only, plans,
cancel, reactivation and deletion at day 30. Real database (SQLite and PostgreSQL), real Stripe
sandbox for Billy's own account, real SMTP; the provisioner is a recording spy of our interface."""

from __future__ import annotations

import socket
from datetime import timedelta

import pytest

from controlplane.lifecycle import NotAllowed, ProvisioningFailed, SignupInvalid, suggest_slug
from controlplane.store import OrgState
from services.config import Settings
from services.mailer import SmtpMailer
from tests.controlplane_fixtures import PASSWORD, Plane, cp_store, plane, real_now  # noqa: F401 - fixtures

DAY = timedelta(days=1)


def _subscriptions(p: Plane, customer: str) -> list[dict]:
    listed = p.stripe().v1.subscriptions.list(params={"customer": customer, "status": "all"})
    return [s.to_dict() for s in listed.data]


@pytest.mark.parametrize(
    ("form", "field", "words"),
    [
        ({"slug": "Acme"}, "slug", "has capital letters: use lowercase ('acme')"),
        ({"slug": "ac"}, "slug", "has 2 characters: use 3 to 30"),
        ({"slug": "acme_ltd"}, "slug", "characters other than lowercase letters, digits and dashes"),
        ({"slug": "admin"}, "slug", "is reserved for Billy's own addresses"),
        ({"slug": "billing"}, "slug", "is reserved"),
        ({"password": "tiny-pw"}, "password", "Choose a password of at least 10 characters."),
        ({"password": "password123"}, "password", "This is a very common password."),
        ({"email": "jane@"}, "email", "That email address does not look right"),
        ({"plan": "enterprise"}, "plan", "Choose a plan: Starter, Pro or Business."),
        ({"owner_name": "  "}, "owner_name", "Enter your name"),
        ({"org_name": ""}, "org_name", "Enter your organisation's name."),
    ],
)
def test_signup_refuses_bad_input_with_clear_messages(plane: Plane, form: dict, field: str, words: str) -> None:  # noqa: F811
    with pytest.raises(SignupInvalid) as refused:
        plane.sign_up(**form)
    assert refused.value.field == field
    assert words in str(refused.value)
    assert plane.provisioner.calls == []
    assert plane.store.org(form.get("slug", "acme")) is None
    assert plane.stripe().v1.customers.list().data == []


def test_a_taken_slug_is_refused_and_the_first_signup_is_untouched(plane: Plane) -> None:  # noqa: F811
    plane.sign_up()
    with pytest.raises(SignupInvalid, match=r"acme\.localhost is taken: choose another name") as refused:
        plane.sign_up(email="mallory@evil.example", owner_name="Mallory")
    assert refused.value.field == "slug"
    # The same email with another password cannot take over the address either.
    with pytest.raises(SignupInvalid, match="is taken"):
        plane.sign_up(password="another-long-phrase-77")
    assert plane.provisioner.methods() == ["provision", "seed"]
    assert plane.store.org("acme").owner_email == "jane@acme.example"


def test_signup_bills_a_14_day_trial_without_a_card_provisions_and_hands_over(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    done = plane.sign_up(now=start, plan="pro")
    assert done.handover_url == "http://acme.localhost:8080/api/auth/handover?token=t1"
    assert done.instance_url == "http://acme.localhost:8080"
    assert done.trial_ends_at == start + 14 * DAY
    assert plane.provisioner.methods() == ["provision", "seed"]
    (seed,) = plane.provisioner.seeds
    assert (seed.org_name, seed.owner_name, seed.owner_email, seed.password) == (
        "Acme Ltd",
        "Jane Doe",
        "jane@acme.example",
        PASSWORD,
    )
    assert seed.trial_ends_at == start + 14 * DAY

    org = plane.store.org("acme")
    assert org.state == OrgState.TRIALING and org.plan == "pro"
    assert org.owner_password_hash is None  # the instance holds the Owner's password hash, not the control plane
    customer = plane.stripe().v1.customers.retrieve(org.stripe_customer_id)
    assert (customer.email, customer.name) == ("jane@acme.example", "Acme Ltd")
    (sub,) = _subscriptions(plane, org.stripe_customer_id)
    assert sub["id"] == org.stripe_subscription_id
    assert sub["status"] == "trialing" and sub["trial_end"] == int((start + 14 * DAY).timestamp())
    assert sub["default_payment_method"] is None and customer.invoice_settings.default_payment_method is None
    assert sub["items"]["data"][0]["price"]["lookup_key"] == "agent_billy_pro"
    kinds = [e.kind for e in plane.store.events("acme")]
    assert kinds == [
        "signup.started",
        "billing.customer",
        "billing.subscribed",
        "instance.provisioned",
        "signup.completed",
    ]
    if plane.store.url.startswith("sqlite"):
        raw = plane.store.url.removeprefix("sqlite:///")
        assert PASSWORD.encode() not in open(raw, "rb").read()  # noqa: SIM115


def test_a_signup_that_fails_midway_says_so_and_the_same_form_again_converges(plane: Plane) -> None:  # noqa: F811
    plane.provisioner.fail_next.add("seed")
    with pytest.raises(ProvisioningFailed, match=r"stopped midway \(seed\).*submit the same form again"):
        plane.sign_up()
    org = plane.store.org("acme")
    assert org.state == OrgState.PROVISIONING_FAILED
    assert plane.store.events("acme")[-1].detail == {"step": "seed", "error": "ProvisioningError"}
    assert org.owner_password_hash and PASSWORD not in org.owner_password_hash

    done = plane.sign_up()
    assert done.handover_url.endswith("token=t1")
    assert plane.store.org("acme").state == OrgState.TRIALING
    assert plane.provisioner.methods() == ["provision", "seed", "provision", "seed"]
    customers = plane.stripe().v1.customers.list().data
    assert len(customers) == 1 and len(_subscriptions(plane, customers[0].id)) == 1


def test_reminders_go_once_each_at_3_days_and_1_day(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    for day in (1, 5, 10.9):
        assert plane.cp.tick(start + day * DAY).reminders == []
    assert plane.mail.messages() == []

    assert plane.cp.tick(start + 11 * DAY).reminders == [("acme", 3)]
    assert plane.cp.tick(start + 11.5 * DAY).reminders == []
    assert plane.cp.tick(start + 12.9 * DAY).reminders == []
    assert plane.cp.tick(start + 13 * DAY).reminders == [("acme", 1)]
    assert plane.cp.tick(start + 13.5 * DAY).reminders == []

    later, first = plane.mail.messages()
    assert (first.to, first.subject) == ("jane@acme.example", "Your Agent Billy trial ends in 3 days")
    assert (later.to, later.subject) == ("jane@acme.example", "Your Agent Billy trial ends tomorrow")
    ends = (start + 14 * DAY).strftime("%-d %B %Y")
    assert ends in first.text and "http://acme.localhost:8080" in first.text and "Settings → Plan" in first.text
    assert "read-only" in later.text
    sent = [e.detail for e in plane.store.events("acme") if e.kind == "trial.reminder_sent"]
    assert sent == [{"days_left": 3}, {"days_left": 1}]


def test_a_late_tick_sends_only_the_nearest_reminder(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    assert plane.cp.tick(start + 13.2 * DAY).reminders == [("acme", 1)]
    assert [m.subject for m in plane.mail.messages()] == ["Your Agent Billy trial ends tomorrow"]


def test_the_trial_ends_read_only_without_a_plan(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    assert plane.cp.tick(start + 14 * DAY - timedelta(seconds=1)).read_only == []
    assert plane.store.org("acme").state == OrgState.TRIALING
    assert plane.cp.tick(start + 14 * DAY).read_only == ["acme"]
    assert plane.cp.tick(start + 15 * DAY).read_only == []
    assert plane.store.org("acme").state == OrgState.READ_ONLY
    ended = [e for e in plane.store.events("acme") if e.kind == "trial.ended_read_only"]
    assert len(ended) == 1 and ended[0].detail["plan"] == "starter"
    # The instance turns read-only by itself from its trial end: the control plane tells it nothing.
    assert plane.provisioner.methods() == ["provision", "seed"]

    org = plane.cp.change_plan("acme", "business", start + 16 * DAY)
    assert org.state == OrgState.ACTIVE
    assert plane.provisioner.named("set_plan") == [("set_plan", "acme", "business", True)]


def test_a_plan_chosen_before_the_end_stays_active(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    org = plane.cp.change_plan("acme", "pro", start + 5 * DAY)
    assert (org.state, org.plan, org.plan_chosen_at) == (OrgState.ACTIVE, "pro", start + 5 * DAY)
    assert plane.provisioner.named("set_plan") == [("set_plan", "acme", "pro", True)]
    (sub,) = _subscriptions(plane, org.stripe_customer_id)
    assert sub["items"]["data"][0]["price"]["lookup_key"] == "agent_billy_pro"

    for day in (11, 13, 14, 20):
        report = plane.cp.tick(start + day * DAY)
        assert report.reminders == [] and report.read_only == []
    assert plane.store.org("acme").state == OrgState.ACTIVE
    assert plane.mail.messages() == []
    # Choosing the same plan again changes nothing anywhere.
    plane.cp.change_plan("acme", "pro", start + 21 * DAY)
    assert len(plane.provisioner.named("set_plan")) == 1


def test_cancel_suspends_at_once_and_cancels_billys_subscription(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    cancelled_at = start + 3 * DAY
    org = plane.cp.cancel("acme", cancelled_at)
    assert plane.provisioner.methods() == ["provision", "seed", "suspend"]
    assert (org.state, org.cancelled_at, org.delete_after) == (
        OrgState.CANCELLED,
        cancelled_at,
        cancelled_at + 30 * DAY,
    )
    (sub,) = _subscriptions(plane, org.stripe_customer_id)
    assert sub["status"] == "canceled"
    assert org.subscription_cancelled_at == cancelled_at
    kinds = [e.kind for e in plane.store.events("acme")][-2:]
    assert kinds == ["cancelled", "billing.subscription_cancelled"]
    # Cancelling twice is one cancellation; a cancelled organisation gets no trial reminder.
    plane.cp.cancel("acme", cancelled_at + DAY)
    assert plane.provisioner.named("suspend") == [("suspend", "acme")]
    assert plane.cp.tick(start + 13 * DAY).reminders == []


def test_reactivate_on_day_29_resumes_with_a_new_subscription(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    plane.cp.change_plan("acme", "pro", start + DAY)
    plane.cp.cancel("acme", start + 2 * DAY)
    org = plane.cp.reactivate("acme", start + 2 * DAY + 29 * DAY)
    assert plane.provisioner.methods()[-2:] == ["suspend", "resume"]
    assert (org.state, org.delete_after, org.cancelled_at) == (OrgState.ACTIVE, None, None)
    subs = {s["id"]: s for s in _subscriptions(plane, org.stripe_customer_id)}
    assert len(subs) == 2 and org.stripe_subscription_id in subs
    current = subs[org.stripe_subscription_id]
    assert current["status"] not in ("canceled", "incomplete_expired")
    assert current["items"]["data"][0]["price"]["lookup_key"] == "agent_billy_pro"
    # Kept: the day-30 tick deletes nothing, and reactivating again is a no-op.
    assert plane.cp.tick(start + 40 * DAY).deleted == []
    plane.cp.reactivate("acme", start + 41 * DAY)
    assert plane.provisioner.named("resume") == [("resume", "acme")]
    assert "destroy" not in plane.provisioner.methods()


def test_reactivate_within_the_trial_continues_the_trial(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    plane.cp.cancel("acme", start + DAY)
    org = plane.cp.reactivate("acme", start + 2 * DAY)
    assert org.state == OrgState.TRIALING
    current = plane.stripe().v1.subscriptions.retrieve(org.stripe_subscription_id)
    assert current.status == "trialing" and current.trial_end == int((start + 14 * DAY).timestamp())


def test_deletion_at_day_30_destroys_once_and_keeps_a_tombstone(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    cancelled_at = start + 2 * DAY
    plane.cp.cancel("acme", cancelled_at)
    assert plane.cp.tick(cancelled_at + 30 * DAY - timedelta(seconds=1)).deleted == []
    assert "destroy" not in plane.provisioner.methods()

    assert plane.cp.tick(cancelled_at + 30 * DAY).deleted == ["acme"]
    assert plane.cp.tick(cancelled_at + 31 * DAY).deleted == []
    assert plane.provisioner.named("destroy") == [("destroy", "acme")]
    org = plane.store.org("acme")
    assert (org.state, org.deleted_at) == (OrgState.DELETED, cancelled_at + 30 * DAY)
    assert (org.owner_name, org.owner_email) == ("", "")  # the tombstone keeps no personal data
    (deleted,) = [e for e in plane.store.events("acme") if e.kind == "deleted"]
    assert deleted.detail["removed"] == ["instance", "database", "backups", "vault secrets"]
    assert deleted.detail["by"] == "RecordingProvisioner"
    assert all("jane" not in str(e.detail).lower() for e in plane.store.events("acme"))

    with pytest.raises(NotAllowed, match=r"was deleted on .*its data is gone for good and cannot be restored"):
        plane.cp.reactivate("acme", cancelled_at + 31 * DAY)
    assert "resume" not in plane.provisioner.methods()
    # The slug stays taken: its address may still be bookmarked or configured somewhere.
    with pytest.raises(SignupInvalid, match="is taken"):
        plane.sign_up()


def test_reactivate_on_day_31_is_refused_even_before_the_deletion_ran(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    plane.cp.cancel("acme", start)
    with pytest.raises(NotAllowed, match=r"its data was kept until .*cannot be restored"):
        plane.cp.reactivate("acme", start + 31 * DAY)
    assert "resume" not in plane.provisioner.methods()
    assert plane.store.org("acme").state == OrgState.CANCELLED


def test_a_failed_deletion_is_on_record_and_the_next_tick_tries_again(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    plane.cp.cancel("acme", start)
    plane.provisioner.fail_next.add("destroy")
    report = plane.cp.tick(start + 30 * DAY)
    assert report.deleted == [] and report.failures == [("acme", "deletion: ProvisioningError")]
    assert plane.store.org("acme").state == OrgState.CANCELLED
    assert plane.cp.tick(start + 30 * DAY + timedelta(minutes=5)).deleted == ["acme"]
    assert [e.kind for e in plane.store.events("acme")][-2:] == ["deletion.failed", "deleted"]


def test_the_form_suggests_an_allowed_slug_from_the_name() -> None:
    assert suggest_slug("Acme Ltd.") == "acme-ltd"
    assert suggest_slug("42 Wallaby Way") == "wallaby-way"
    assert suggest_slug("Société Générale") == "societe-generale"
    assert suggest_slug("Admin") == ""  # reserved: the person chooses


def test_a_cancelled_organisation_cannot_change_plan(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    plane.cp.cancel("acme", start)
    with pytest.raises(NotAllowed, match="acme's Billy is cancelled: its plan cannot change now"):
        plane.cp.change_plan("acme", "pro", start + DAY)
    assert plane.provisioner.named("set_plan") == []


def test_a_reminder_that_could_not_be_sent_goes_with_the_next_tick(plane: Plane) -> None:  # noqa: F811
    start = real_now()
    plane.sign_up(now=start)
    with socket.socket() as probe:  # a port nobody listens on: the mail server is down
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    working, plane.cp.mailer = plane.cp.mailer, SmtpMailer(Settings(smtp_port=closed), attempts=1)
    report = plane.cp.tick(start + 11 * DAY)
    assert report.reminders == [] and report.failures[0][0] == "acme"
    assert plane.store.org("acme").reminder_3d_sent_at is None
    assert plane.store.events("acme")[-1].detail == {"days_left": 3, "retryable": True}

    plane.cp.mailer = working
    assert plane.cp.tick(start + 11.1 * DAY).reminders == [("acme", 3)]
    assert [m.subject for m in plane.mail.messages()] == ["Your Agent Billy trial ends in 3 days"]
