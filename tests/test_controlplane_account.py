"""The Owner's account pages on the control plane, driven as a browser would: ask for a link, open
it from the mail, change plan, cancel, reactivate, open Billy. Real database (SQLite and
PostgreSQL), Billy's Stripe account in the sandbox, real SMTP; the provisioner is the recording spy.
The app's clock is a test clock, moved to expire links and sessions and to reach day 30."""

from __future__ import annotations

import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from html.parser import HTMLParser
from typing import Any

import pytest
from fastapi.testclient import TestClient

from controlplane.config import ControlPlaneSettings, session_key
from controlplane.lifecycle import ProvisioningFailed
from controlplane.store import OrgState
from controlplane.web import create_app
from tests.controlplane_fixtures import Plane, cp_store, plane, real_now  # noqa: F401 - fixtures

PUBLIC = "http://localhost:8000"
DAY = timedelta(days=1)
SENT = "If that address owns an organisation, we sent a link to its Owner&#39;s email."
HANDOVER = "http://acme.localhost:8080/api/auth/handover?token=h"


@dataclass
class Clock:
    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def move(self, by: timedelta) -> None:
        self.now += by


@dataclass
class Site:
    plane: Plane
    clock: Clock
    client: TestClient

    def browser(self, origin: str = PUBLIC) -> TestClient:
        """Another browser (no cookies) on the same app."""
        return TestClient(self.client.app, base_url=origin, follow_redirects=False, headers={"Origin": origin})

    def ask(self, email: str = "jane@acme.example", address: str = "acme", client: TestClient | None = None) -> Any:
        return (client or self.client).post("/account", data={"email": email, "address": address})

    def mailed_link(self, to: str = "jane@acme.example") -> str:
        links = [link for link in self.plane.mail.links(to=to) if "/account/open?token=" in link]
        assert links, f"no sign-in link was mailed to {to}"
        return links[0]  # newest first

    def sign_in(self, slug: str = "acme", email: str = "", client: TestClient | None = None) -> Any:
        client = client or self.client
        email = email or f"jane@{slug}.example"
        assert SENT in self.ask(email, slug, client).text
        opened = client.get(self.mailed_link(email))
        assert opened.status_code == 303 and opened.headers["location"] == f"/account/{slug}"
        return opened


def _make_site(p: Plane, clock: Clock, public_url: str = PUBLIC) -> TestClient:
    app = create_app(p.cp, address_suffix="localhost:8000", clock=clock, public_url=public_url)
    return TestClient(app, base_url=public_url, follow_redirects=False, headers={"Origin": public_url})


@pytest.fixture
def site(plane: Plane) -> Iterator[Site]:  # noqa: F811
    clock = Clock(real_now())
    plane.sign_up("acme", now=clock.now)
    with _make_site(plane, clock) as client:
        yield Site(plane, clock, client)


class Outline(HTMLParser):
    """What a screen reader leans on: headings, labels and their fields, buttons' names, alerts."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.h1 = 0
        self.labels: set[str] = set()
        self.fields: list[tuple[str, str]] = []  # (type, id) of fields outside a <label>
        self.in_label = 0
        self.buttons: list[str] = []
        self._button: list[str] | None = None
        self.alerts = 0
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attr = dict(attrs)
        if tag == "h1":
            self.h1 += 1
        elif tag == "label":
            self.in_label += 1
            if attr.get("for"):
                self.labels.add(str(attr["for"]))
        elif tag == "input" and attr.get("type") != "hidden" and not self.in_label:
            self.fields.append((str(attr.get("type")), str(attr.get("id"))))
        elif tag == "button":
            self._button = []
        if attr.get("role") == "alert":
            self.alerts += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "label":
            self.in_label -= 1
        elif tag == "button" and self._button is not None:
            self.buttons.append(" ".join("".join(self._button).split()))
            self._button = None

    def handle_data(self, data: str) -> None:
        if self._button is not None:
            self._button.append(data)

    def assert_accessible(self) -> None:
        assert self.h1 == 1
        assert all(field_id in self.labels for _, field_id in self.fields), self.fields
        assert self.buttons and all(self.buttons), self.buttons


def _state(page: Any) -> str:
    found = re.search(r'<dd id="state">(.*?)</dd>', page.text, re.S)
    assert found, page.text
    return " ".join(found.group(1).split())


def _day(moment: datetime) -> str:
    return moment.strftime("%-d %B %Y at %H:%M UTC")


def _price_key(p: Plane, slug: str) -> str:
    org = p.store.org(slug)
    subscription = p.stripe().v1.subscriptions.retrieve(org.stripe_subscription_id)
    return str(subscription["items"]["data"][0]["price"]["lookup_key"])


# --- asking for a link ---------------------------------------------------------------------


def test_the_link_goes_only_to_the_owner_and_the_answer_never_tells(site: Site) -> None:
    site.plane.sign_up("globex", org_name="Globex", now=site.clock.now)
    form = site.client.get("/account")
    assert form.status_code == 200 and "Email me a sign-in link" in form.text
    Outline(form.text).assert_accessible()

    strangers = [
        site.ask("mallory@evil.example", "acme"),  # someone else's organisation
        site.ask("jane@globex.example", "acme"),  # an Owner, of another organisation
        site.ask("jane@acme.example", "nobody-here"),  # no such organisation
    ]
    owner = site.ask("Jane@ACME.example", "https://acme.localhost:8000/")  # as people paste it
    assert {page.status_code for page in [*strangers, owner]} == {200}
    assert {page.text for page in [*strangers, owner]} == {owner.text}  # word for word the same page
    assert SENT in owner.text

    (mail,) = site.plane.mail.messages()
    assert mail.to == "jane@acme.example"
    assert mail.subject == "Sign in to manage Acme Ltd's Agent Billy"
    (link,) = mail.links
    assert link.startswith(f"{PUBLIC}/account/open?token=")
    assert f"It works once, until {_day(site.clock.now + timedelta(minutes=15))}" in mail.text


def test_an_unfinished_signup_gets_no_link(site: Site) -> None:
    """Whoever stopped a signup midway finishes it on the signup form; there is no account to manage yet."""
    site.plane.provisioner.fail_next.add("seed")
    with pytest.raises(ProvisioningFailed):
        site.plane.sign_up("globex", org_name="Globex", now=site.clock.now)
    assert SENT in site.ask("jane@globex.example", "globex").text
    assert site.plane.mail.messages() == []


def test_the_form_says_what_is_missing_without_sending_anything(site: Site) -> None:
    refused = site.ask("", "Not An Address!")
    assert refused.status_code == 422
    assert "Enter the email address you signed up with." in refused.text
    assert "has characters other than lowercase letters" in refused.text
    outline = Outline(refused.text)
    outline.assert_accessible()
    assert outline.alerts == 1
    assert site.plane.mail.messages() == []


def test_asking_too_often_is_refused_for_that_address(site: Site) -> None:
    for _ in range(5):
        assert SENT in site.ask().text
    too_many = site.ask("someone@else.example", "acme")  # another email, the same address
    assert too_many.status_code == 429
    assert "asked for too often. Wait 15 minutes" in too_many.text
    assert len(site.plane.mail.messages()) == 5


# --- opening it ----------------------------------------------------------------------------


def test_the_link_signs_in_once_with_a_host_only_http_only_cookie(site: Site) -> None:
    site.ask()
    link = site.mailed_link()
    opened = site.client.get(link)
    assert opened.status_code == 303 and opened.headers["location"] == "/account/acme"
    cookie = opened.headers["set-cookie"]
    assert cookie.startswith("billy_cp_account=")
    attributes = {part.strip().split("=")[0].lower() for part in cookie.split(";")[1:]}
    assert {"httponly", "max-age", "path", "samesite"} <= attributes
    assert "domain" not in attributes and "secure" not in attributes  # plain http locally
    assert "SameSite=lax" in cookie and "Max-Age=3600" in cookie and "Path=/account" in cookie

    page = site.client.get("/account/acme")
    assert page.status_code == 200 and "<h1>Acme Ltd</h1>" in page.text
    Outline(page.text).assert_accessible()

    other_browser = site.browser()
    again = other_browser.get(link)
    assert again.status_code == 400
    assert "This link was already used: each link signs in once." in again.text
    assert "set-cookie" not in again.headers
    assert other_browser.get("/account/acme").headers["location"] == "/account?address=acme"


def test_the_link_expires_after_15_minutes(site: Site) -> None:
    site.ask()
    late = site.mailed_link()
    site.clock.move(timedelta(minutes=15))
    expired = site.client.get(late)
    assert expired.status_code == 400 and "This link has expired: links work for 15 minutes." in expired.text
    assert "set-cookie" not in expired.headers

    site.plane.mail.clear()
    site.ask()
    site.clock.move(timedelta(minutes=14, seconds=59))
    assert site.client.get(site.mailed_link()).status_code == 303


def test_a_changed_link_opens_nothing(site: Site) -> None:
    site.ask()
    link = site.mailed_link()
    forged = link[:-3] + ("aaa" if not link.endswith("aaa") else "bbb")
    refused = site.client.get(forged)
    assert refused.status_code == 400 and "This link is not valid" in refused.text
    assert site.client.get("/account/acme").headers["location"] == "/account?address=acme"


def test_the_cookie_is_secure_when_the_control_plane_is_https(plane: Plane) -> None:  # noqa: F811
    clock = Clock(real_now())
    plane.sign_up("acme", now=clock.now)
    with _make_site(plane, clock, "https://billy.example") as client:
        client.post("/account", data={"email": "jane@acme.example", "address": "acme"})
        (link,) = plane.mail.links(to="jane@acme.example")
        assert link.startswith("https://billy.example/account/open?token=")
        cookie = client.get(link).headers["set-cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "domain" not in cookie.lower()
        assert client.get("/account/acme").status_code == 200


def test_the_session_ends_after_an_hour(site: Site) -> None:
    site.sign_in()
    site.clock.move(timedelta(minutes=59))
    assert site.client.get("/account/acme").status_code == 200
    site.clock.move(timedelta(minutes=1))
    to_form = site.client.get("/account/acme")
    assert to_form.headers["location"] == "/account?address=acme"
    assert 'value="acme"' in site.client.get(to_form.headers["location"]).text  # only the email left to type
    assert site.client.post("/account/acme/cancel", data={"confirm": "yes"}).headers["location"].startswith("/account?")
    assert site.plane.store.org("acme").state == OrgState.TRIALING


def test_signing_out_forgets_the_session(site: Site) -> None:
    site.sign_in()
    out = site.client.post("/account/sign-out")
    assert out.status_code == 303 and out.headers["location"] == "/account"
    assert site.client.get("/account/acme").headers["location"] == "/account?address=acme"


# --- who may act ---------------------------------------------------------------------------


def test_a_session_for_one_organisation_cannot_touch_another(site: Site) -> None:
    site.plane.sign_up("globex", org_name="Globex", now=site.clock.now)
    site.sign_in("acme")
    assert site.client.get("/account/globex").headers["location"] == "/account?address=globex"
    for action, form in [("cancel", {"confirm": "yes"}), ("plan", {"plan": "business"}), ("open-billy", {})]:
        answer = site.client.post(f"/account/globex/{action}", data=form)
        assert answer.status_code == 303 and answer.headers["location"] == "/account?address=globex", action
    globex = site.plane.store.org("globex")
    assert (globex.state, globex.plan) == (OrgState.TRIALING, "starter")
    assert [call for call in site.plane.provisioner.calls if call[1] == "globex"] == [
        ("provision", "globex"),
        ("seed", "globex"),
    ]


def test_a_post_from_another_site_is_refused(site: Site) -> None:
    site.sign_in()
    evil = {"Origin": "https://evil.example"}
    refused = site.client.post("/account/acme/cancel", data={"confirm": "yes"}, headers=evil)
    assert refused.status_code == 403 and "sent from another site, so it was refused" in refused.text
    assert Outline(refused.text).alerts == 1
    # The organisation's own subdomain is another origin too: an instance's page cannot post here.
    sibling = {"Origin": "http://globex.localhost:8000"}
    assert site.client.post("/account/acme/plan", data={"plan": "pro"}, headers=sibling).status_code == 403
    assert site.client.post("/account/acme/open-billy", headers={"Origin": "null"}).status_code == 403
    unnamed = site.client.build_request("POST", "/account/acme/cancel", data={"confirm": "yes"})
    del unnamed.headers["Origin"]
    assert site.client.send(unnamed).status_code == 403
    assert site.plane.store.org("acme").state == OrgState.TRIALING
    assert site.plane.provisioner.methods() == ["provision", "seed"]

    # Our own page, named by its Referer alone, is accepted.
    referred = site.client.build_request(
        "POST", "/account/acme/plan", data={"plan": "pro"}, headers={"Referer": f"{PUBLIC}/account/acme"}
    )
    del referred.headers["Origin"]
    assert site.client.send(referred).status_code == 303
    assert site.plane.store.org("acme").plan == "pro"


# --- the actions ---------------------------------------------------------------------------


def test_changing_plan_applies_it_and_moves_billys_subscription(site: Site) -> None:
    trial_ends = site.clock.now + 14 * DAY
    site.clock.move(2 * DAY)
    site.sign_in()
    page = site.client.get("/account/acme")
    assert "Starter, $29 a month" in page.text
    assert _state(page) == f"On its free trial until {_day(trial_ends)}."
    # Before a plan was ever chosen, the trial's own plan is offered too (choosing it ends the trial's clock).
    assert all(f'value="{plan}"' in page.text for plan in ("starter", "pro", "business"))

    changed = site.client.post("/account/acme/plan", data={"plan": "pro"})
    assert changed.status_code == 303 and changed.headers["location"] == "/account/acme?done=plan"
    page = site.client.get(changed.headers["location"])
    assert "Your plan is changed and its limits apply now." in page.text
    assert "Pro, $79 a month" in page.text and _state(page) == "Active."
    assert "Pro (current plan)" in page.text and 'value="pro"' not in page.text
    assert 'value="starter"' in page.text and 'value="business"' in page.text

    org = site.plane.store.org("acme")
    assert (org.state, org.plan, org.plan_chosen_at) == (OrgState.ACTIVE, "pro", site.clock.now)
    assert site.plane.provisioner.named("set_plan") == [("set_plan", "acme", "pro", True)]
    assert _price_key(site.plane, "acme") == "agent_billy_pro"


def test_a_refused_plan_change_shows_the_reason(site: Site) -> None:
    site.sign_in()
    refused = site.client.post("/account/acme/plan", data={})
    assert refused.status_code == 400
    assert "Choose a plan: Starter, Pro or Business." in refused.text and Outline(refused.text).alerts == 1
    assert site.plane.provisioner.named("set_plan") == []
    assert _price_key(site.plane, "acme") == "agent_billy_starter"


def test_cancel_says_what_happens_then_scales_to_zero(site: Site) -> None:
    site.sign_in()
    unconfirmed = site.client.post("/account/acme/cancel")
    assert unconfirmed.headers["location"] == "/account/acme/cancel"
    assert "suspend" not in site.plane.provisioner.methods()

    confirm = site.client.get("/account/acme/cancel")
    Outline(confirm.text).assert_accessible()
    deleted_on = _day(site.clock.now + 30 * DAY)
    words = " ".join(confirm.text.split())
    assert "It is scaled to zero at once" in words
    assert f"Its data is kept for 30 days, until {deleted_on}." in words
    assert f"On {deleted_on} it is deleted for good: the instance, its database, its backups and its secrets." in words

    done = site.client.post("/account/acme/cancel", data={"confirm": "yes"})
    assert done.headers["location"] == "/account/acme?done=cancelled"
    assert site.plane.provisioner.methods()[-1] == "suspend"
    org = site.plane.store.org("acme")
    assert (org.state, org.delete_after) == (OrgState.CANCELLED, site.clock.now + 30 * DAY)
    page = site.client.get(done.headers["location"])
    cancelled_on = _day(site.clock.now)
    assert _state(page) == f"Cancelled on {cancelled_on}: scaled to zero. Deleted on {deleted_on} unless reactivated."
    assert "Reactivate my Billy" in page.text
    assert "Open my Billy" not in page.text and "Change plan" not in page.text


def test_reactivate_within_30_days_resumes(site: Site) -> None:
    site.sign_in()
    site.client.post("/account/acme/plan", data={"plan": "business"})
    site.client.post("/account/acme/cancel", data={"confirm": "yes"})
    site.clock.move(29 * DAY)
    site.plane.mail.clear()
    site.sign_in()  # a cancelled organisation's Owner can still sign in
    done = site.client.post("/account/acme/reactivate")
    assert done.headers["location"] == "/account/acme?done=reactivated"
    assert site.plane.provisioner.methods()[-2:] == ["suspend", "resume"]
    page = site.client.get(done.headers["location"])
    assert "Reactivated. Your Billy is running again" in page.text
    assert _state(page) == "Active." and "Open my Billy" in page.text and "Reactivate my Billy" not in page.text
    assert site.plane.store.org("acme").state == OrgState.ACTIVE
    assert _price_key(site.plane, "acme") == "agent_billy_business"


def test_after_30_days_there_is_nothing_to_reactivate(site: Site) -> None:
    site.sign_in()
    site.client.post("/account/acme/cancel", data={"confirm": "yes"})
    cancelled_at = site.clock.now
    site.clock.move(30 * DAY - timedelta(minutes=5))
    site.sign_in()
    assert "Reactivate my Billy" in site.client.get("/account/acme").text

    site.clock.move(timedelta(minutes=5))  # day 30, before the deletion job ran
    page = site.client.get("/account/acme")
    assert "Reactivate my Billy" not in page.text and "It can no longer be reactivated" in page.text
    late = site.client.post("/account/acme/reactivate")
    assert late.status_code == 409 and "it is being deleted and cannot be restored" in late.text

    assert site.plane.cp.tick(site.clock.now).deleted == ["acme"]
    page = site.client.get("/account/acme")
    assert _state(page).startswith(f"Deleted on {_day(site.clock.now)}: its instance, database, backups and secrets")
    assert "Reactivate my Billy" not in page.text and "Open my Billy" not in page.text
    refused = site.client.post("/account/acme/reactivate")
    assert refused.status_code == 409
    assert f"was deleted on {cancelled_at + 30 * DAY:%-d %B %Y}" in refused.text
    assert "its data is gone for good" in refused.text and Outline(refused.text).alerts == 1
    assert "resume" not in site.plane.provisioner.methods()

    site.plane.mail.clear()
    site.ask()  # a deleted organisation has no Owner left to mail
    assert site.plane.mail.messages() == []


def test_open_my_billy_hands_over_to_the_instance(site: Site) -> None:
    site.sign_in()
    opened = site.client.post("/account/acme/open-billy")
    assert opened.status_code == 303 and opened.headers["location"] == HANDOVER
    assert site.plane.provisioner.named("handover") == [("handover", "acme")]

    site.client.post("/account/acme/cancel", data={"confirm": "yes"})
    refused = site.client.post("/account/acme/open-billy")
    assert refused.status_code == 409 and "Your Billy cannot be opened now. Cancelled on" in refused.text
    assert len(site.plane.provisioner.named("handover")) == 1


# --- the key ---------------------------------------------------------------------------------


def test_the_session_key_is_made_once_kept_under_the_root_and_survives_a_restart(site: Site) -> None:
    settings: ControlPlaneSettings = site.plane.cp.settings
    kept = settings.root / "session.key"
    assert kept.exists() and stat.S_IMODE(kept.stat().st_mode) == 0o600
    assert session_key(settings) == kept.read_text().strip() and len(session_key(settings)) >= 32

    site.ask()
    link = site.mailed_link()
    with _make_site(site.plane, site.clock) as restarted:  # a new process, the same root
        assert restarted.get(link).headers["location"] == "/account/acme"
    given = settings.model_copy(update={"session_key": "k" * 40})
    assert session_key(given) == "k" * 40
