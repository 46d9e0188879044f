"""Signup on the control plane to onboarding on one's own instance, in Chromium (issue 18's "done when").

The control plane runs as `make run-controlplane` runs it, with Caddy on this worker's build port:
the instance's pages are the worker's own production build (made for `localhost:<port>`; Reflex's
client swaps `localhost` for the page's host), so `{org}.localhost:<port>` needs no build of its own.
This module needs no `app_server`: the worker's port is free while it runs.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.sync_api import expect

from controlplane.local import InstanceSettings
from devtools.controlplane_runner import RunningControlPlane, running_control_plane
from sandbox.keys import DEMO_RESTRICTED_KEY
from tests.browser.axe import assert_accessible
from tests.browser.conftest import Shots

pytestmark = pytest.mark.browser

EMAIL = "ada@acme.example"
PASSWORD = "quartz-meadow-lantern-47"


@pytest.fixture(scope="module")
def control_plane(
    tmp_path_factory: pytest.TempPathFactory, sandbox: Any, mail_catcher: Any, app_port: int
) -> Iterator[RunningControlPlane]:
    import os

    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    instance = InstanceSettings(
        stripe_api_base=sandbox.url,
        sandbox=True,
        sandbox_demo_key=DEMO_RESTRICTED_KEY,
        smtp_host=mail_catcher.host,
        smtp_port=mail_catcher.smtp_port,
        web_workdir=f".web-{worker}" if worker else "",
        frontend=True,
    )
    from sandbox.seed import reset_to_demo

    reset_to_demo(sandbox.url)
    with running_control_plane(
        tmp_path_factory.mktemp("controlplane-browser"),
        proxy_port=app_port,
        stripe_api_base=sandbox.url,
        instance=instance,
        smtp_port=mail_catcher.smtp_port,
    ) as running:
        yield running


def test_signup_lands_the_owner_on_their_own_wizard_signed_in(browser: Any, control_plane: RunningControlPlane) -> None:
    context = browser.new_context(viewport={"width": 1366, "height": 850})
    page = context.new_page()
    shot = Shots(page, "controlplane-signup")
    page.goto(control_plane.url + "/")
    assert_accessible(page, "control plane signup")
    page.fill("#org_name", "Acme Ltd")
    # The address is suggested from the name as it is typed, and can be changed.
    expect(page.locator("#slug")).to_have_value("acme-ltd")
    page.fill("#slug", "acme")
    page.wait_for_selector("#slug-preview:has-text('acme.localhost')")
    page.check("input[name=plan][value=pro]")
    page.fill("#owner_name", "Ada Owner")
    page.fill("#email", EMAIL)
    page.fill("#password", PASSWORD)
    shot("filled")
    started = time.monotonic()
    # The click waits for the form's answer, which is the provisioning: on a worker whose pages are not
    # built yet for this address it includes the build, so it gets the same time as the address below.
    page.click("#start", timeout=180_000)
    page.wait_for_url(re.compile(rf"^http://acme\.localhost:{control_plane.proxy_port}/onboarding/?$"), timeout=180_000)
    page.wait_for_selector("#use-demo-key", timeout=60_000)
    seconds = time.monotonic() - started
    print(f"\nsignup click → own instance's wizard painted: {seconds:.1f} s")
    shot("wizard")
    # Signed in on the instance's own host only: no cookie on the parent that every organisation shares.
    cookies = context.cookies()
    assert cookies and {c["domain"] for c in cookies} == {"acme.localhost"}, cookies
    assert all(c["httpOnly"] for c in cookies if c["name"].startswith("billy_"))
    # The wizard goes on as on any instance: the sandbox's key, then the dashboard as the Owner.
    page.click("#use-demo-key")
    page.wait_for_selector("#form-message:has-text('Stripe connected')")
    page.click("#finish-onboarding")
    page.wait_for_url(re.compile(r".*/dashboard/?$"))
    page.wait_for_selector(f"#who-am-i:has-text('{EMAIL}')")
    shot("dashboard")
    # The trial the control plane started is the one the instance shows.
    org = control_plane.plane.store.org("acme")
    assert org is not None and org.trial_ends_at > datetime.now(UTC) + timedelta(days=13)
    context.close()


def test_a_used_handover_address_sends_the_person_to_sign_in(browser: Any, control_plane: RunningControlPlane) -> None:
    spec = control_plane.plane.spec(control_plane.plane.org("acme"))
    address = control_plane.provisioner.handover(spec)
    first = browser.new_context()
    page = first.new_page()
    page.goto(address)
    page.wait_for_url(re.compile(r".*/(onboarding|dashboard)/?$"))
    first.close()
    second = browser.new_context()
    page = second.new_page()
    page.goto(address)
    page.wait_for_url(re.compile(r".*/login.*"))
    page.wait_for_selector("text=/expired|used/i")
    assert not [c for c in second.cookies() if c["name"] == "billy_access"]
    second.close()


def test_an_address_typed_while_the_suggestion_is_on_its_way_is_kept(
    browser: Any, control_plane: RunningControlPlane
) -> None:
    """The address is suggested from the organisation's name by a request; whoever types an
    address of their own before that answer comes back keeps theirs (the answer used to
    overwrite it, and the Billy was then made at an address nobody chose)."""
    context = browser.new_context()
    page = context.new_page()
    held: list[Any] = []
    # The suggestion's request is held until the test lets it through.
    page.route(re.compile(r".*/api/slug\?org_name=.*"), lambda route: held.append(route))
    page.goto(control_plane.url + "/")
    page.fill("#org_name", "Globex Corporation")
    deadline = time.monotonic() + 10
    while not held and time.monotonic() < deadline:
        page.wait_for_timeout(20)
    assert held, "the page asked for a suggested address"
    page.fill("#slug", "globex")
    for route in held:
        route.continue_()
    page.wait_for_timeout(300)  # the suggestion's answer has been handled
    expect(page.locator("#slug")).to_have_value("globex")
    expect(page.locator("#slug-preview")).to_contain_text("globex.localhost")
    context.close()
