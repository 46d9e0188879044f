"""The signup site's own rules (controlplane/web.py), over a control plane wired to real peers
(its database on SQLite and PostgreSQL, Billy's Stripe account in the sandbox, SMTP) with the
recording provisioner: each signup that goes through starts an instance, so a network may start a
few an hour, while a person correcting the form is never stopped."""

from __future__ import annotations

from fastapi.testclient import TestClient

from controlplane.web import create_app
from tests.controlplane_fixtures import PASSWORD, Plane, cp_store, plane  # noqa: F401 - fixtures

PUBLIC = "http://localhost:8000"


def _form(slug: str, **fields: str) -> dict[str, str]:
    return {
        "org_name": f"Org {slug}",
        "slug": slug,
        "plan": "starter",
        "owner_name": "Jane Doe",
        "email": f"jane@{slug}.example",
        "password": PASSWORD,
        **fields,
    }


def _browser(app: object, address: str) -> TestClient:
    return TestClient(app, base_url=PUBLIC, follow_redirects=False, client=(address, 50000))  # type: ignore[arg-type]


def test_a_network_may_start_a_few_organisations_an_hour_and_mistakes_do_not_count(plane: Plane) -> None:  # noqa: F811 - the fixture
    app = create_app(plane.cp, address_suffix="localhost:8000", signups_per_hour=2)
    office = _browser(app, "203.0.113.7")
    for _ in range(3):  # a person getting the form wrong, three times
        assert office.post("/signup", data=_form("acme", password="short")).status_code == 422
    assert office.post("/signup", data=_form("acme")).status_code == 303
    assert office.post("/signup", data=_form("globex")).status_code == 303
    third = office.post("/signup", data=_form("initech"))
    assert third.status_code == 429 and "try again in an hour" in third.text
    assert 'value="initech"' in third.text and PASSWORD not in third.text  # the form is kept, never the password
    assert [call[1] for call in plane.provisioner.named("provision")] == ["acme", "globex"]  # nothing started
    assert plane.store.org("initech") is None
    # Another network is not held up by this one.
    elsewhere = _browser(app, "198.51.100.20")
    assert elsewhere.post("/signup", data=_form("initech")).status_code == 303


def test_the_address_is_checked_as_it_is_typed_in_signups_own_words(plane: Plane) -> None:  # noqa: F811 - the fixture
    """The form's live check says what signup itself would: a suggestion from the name, a reserved
    or badly formed address, and an address another organisation holds."""
    client = _browser(create_app(plane.cp, address_suffix="localhost:8000"), "203.0.113.7")
    assert client.get("/api/slug", params={"org_name": "Société Générale"}).json()["suggested"] == "societe-generale"
    assert "reserved" in client.get("/api/slug", params={"slug": "admin"}).json()["problem"]
    assert client.get("/api/slug", params={"slug": "acme"}).json()["problem"] == ""
    plane.sign_up("acme")
    assert client.get("/api/slug", params={"slug": "acme"}).json()["problem"] == (
        "acme.localhost is taken: choose another name."
    )
