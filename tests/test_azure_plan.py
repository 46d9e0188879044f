"""The Azure provisioner's plan (controlplane/azure.py), checked with no Azure account.

The plan is the `azure-mgmt-*` model objects `apply` sends; assertions read them, and their
serialised bodies (what Azure Resource Manager would receive). `apply` and `destroy` run against
recording stand-ins for the clients, to check order and that no password reaches a plan or ARM.
The database role script runs on the test PostgreSQL server as a non-superuser admin, like
Azure's, to show one organisation's role cannot open another's database.
"""

from __future__ import annotations

import inspect
import json
import re
import shlex
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import MagicMock

import psycopg2
import pytest
from azure.core.exceptions import ResourceNotFoundError

from controlplane.azure import (
    CONTAINER_NAME,
    DATABASE_URL_SECRET,
    KEY_VAULT_SECRETS_OFFICER,
    PENDING_CLIENT_ID,
    PENDING_PRINCIPAL_ID,
    TARGET_PORT,
    AzureClients,
    AzureDeployment,
    AzurePlan,
    AzureProvisioner,
    OrgNames,
    RegionStack,
    SmtpRelay,
    apply,
    teardown,
)
from controlplane.postgres import PASSWORD_PARAMETER, drop_role_sql
from controlplane.provisioning import (
    RESERVED_SLUGS,
    InstanceState,
    InvalidOrg,
    OrgSpec,
    Provisioner,
    ProvisioningError,
    check_slug,
)
from services.config import SecretStoreKind, settings_from_env
from services.signing import INSTANCE_KEYS
from tests.conftest import PG_HOST, PG_USER

ROOT = Path(__file__).resolve().parent.parent
SUB = "00000000-0000-0000-0000-0000000000a1"
SHARED = f"/subscriptions/{SUB}/resourceGroups/billy-shared/providers"


def deployment(seed: str = "billy-test", **changes: Any) -> AzureDeployment:
    values: dict[str, Any] = {
        "subscription_id": SUB,
        "tenant_id": "00000000-0000-0000-0000-0000000000t1",
        "resource_group": "billy-orgs",
        "name_seed": seed,
        "base_domain": "agentbilly.ai",
        "dns_zone_id": f"/subscriptions/{SUB}/resourceGroups/billy-dns/providers/Microsoft.Network/dnszones/agentbilly.ai",
        "domain_verification_id": "F00DFACE" * 8,
        "image": "billyacr.azurecr.io/billy:1.4.0",
        "registry_server": "billyacr.azurecr.io",
        "registry_identity_id": f"{SHARED}/Microsoft.ManagedIdentity/userAssignedIdentities/billy-pull",
        "operator_vault_url": "https://billy-operator.vault.azure.net",
        "postgres_admin_user": "billyadmin",
        "postgres_admin_secret": "pg-admin-password",
        "regions": {
            "westeurope": RegionStack(
                environment_id=f"{SHARED}/Microsoft.App/managedEnvironments/billy-weu",
                environment_domain="calmsea-1a2b3c4d.westeurope.azurecontainerapps.io",
                postgres_server_id=f"{SHARED}/Microsoft.DBforPostgreSQL/flexibleServers/billy-weu-pg",
            )
        },
        "smtp": SmtpRelay(host="smtp.sendgrid.net", user="apikey", password_secret="smtp-relay-password"),
    }
    values.update(changes)
    return AzureDeployment(**values)


def org(slug: str = "acme", **changes: Any) -> OrgSpec:
    values: dict[str, Any] = {
        "slug": slug,
        "plan": "pro",
        "owner_email": f"owner@{slug}.example.com",
        "base_domain": "agentbilly.ai",
        "region": "westeurope",
    }
    values.update(changes)
    return OrgSpec(**values)


def plan_for(slug: str = "acme", *, suspended: bool = False, seed: str = "billy-test", **changes: Any) -> AzurePlan:
    return AzureProvisioner(deployment(seed)).plan(org(slug, **changes), suspended=suspended)


def body(plan: AzurePlan) -> dict[str, Any]:
    """The Container App as ARM would receive it."""
    return plan.container_app.as_dict()


def main_container(plan: AzurePlan) -> dict[str, Any]:
    (container,) = [c for c in body(plan)["properties"]["template"]["containers"] if c["name"] == CONTAINER_NAME]
    return container


# ---- scale -----------------------------------------------------------------------------------


def test_one_replica_normally_none_when_suspended() -> None:
    running, suspended = plan_for(), plan_for(suspended=True)
    assert body(running)["properties"]["template"]["scale"] == {"minReplicas": 1, "maxReplicas": 1}
    # Container Apps refuses maxReplicas 0: suspended is min 0, and `apply` stops the app (below).
    assert body(suspended)["properties"]["template"]["scale"] == {"minReplicas": 0, "maxReplicas": 1}
    assert running.info().state is InstanceState.RUNNING and running.info().min_replicas == 1
    assert suspended.info().state is InstanceState.SUSPENDED and suspended.info().min_replicas == 0
    # Suspending changes the replicas and nothing else: the data and secrets stay where they were.
    assert suspended.to_arm().keys() == running.to_arm().keys()
    assert suspended.vault.as_dict() == running.vault.as_dict() and suspended.database_sql == running.database_sql


def test_max_replicas_follow_the_organisation_and_several_need_redis_and_stickiness() -> None:
    one, three = plan_for(), plan_for(max_replicas=3)
    assert body(three)["properties"]["template"]["scale"]["maxReplicas"] == 3
    assert "stickySessions" not in body(one)["properties"]["configuration"]["ingress"]
    assert body(three)["properties"]["configuration"]["ingress"]["stickySessions"] == {"affinity": "sticky"}
    env = {e["name"]: e for e in main_container(three)["env"]}
    assert env["BILLY_REDIS_URL"] == {"name": "BILLY_REDIS_URL", "secretRef": "redis-url"}
    assert "BILLY_REDIS_URL" not in {e["name"] for e in main_container(one)["env"]}
    with pytest.raises(InvalidOrg, match="use 0 to 1"):
        AzureProvisioner(deployment()).plan(org(), min_replicas=2)


# ---- identity and vault ------------------------------------------------------------------------


def test_the_identity_may_use_its_own_vault_and_nothing_else() -> None:
    a, b = plan_for("acme"), plan_for("globex")
    for plan in (a, b):
        vault = f"/subscriptions/{SUB}/resourceGroups/billy-orgs/providers/Microsoft.KeyVault/vaults/{plan.names.vault}"
        assert plan.role_assignment_scope == plan.vault_id == vault  # one vault: not the group, not the subscription
        assert plan.role_assignment.role_definition_id == (
            f"/subscriptions/{SUB}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_SECRETS_OFFICER}"
        )
        assert plan.role_assignment.principal_type == "ServicePrincipal"
        assert plan.role_assignment.principal_id == PENDING_PRINCIPAL_ID  # the identity's, filled in by apply
        properties = plan.vault.as_dict()["properties"]
        assert properties["enableRbacAuthorization"] is True and properties["accessPolicies"] == []
        assert "enablePurgeProtection" not in properties  # destroy must be able to purge
        # The one role assignment in the whole plan.
        assert [rid for rid in plan.to_arm() if "/roleAssignments/" in rid] == [
            f"{vault}/providers/Microsoft.Authorization/roleAssignments/{plan.role_assignment_name}"
        ]
    assert a.role_assignment_scope != b.role_assignment_scope
    assert not b.vault_id.startswith(a.role_assignment_scope + "/")
    assert a.role_assignment_name != b.role_assignment_name


def test_every_app_secret_is_a_key_vault_reference_in_its_own_vault_with_its_own_identity() -> None:
    plan = plan_for()
    app = body(plan)
    secrets = app["properties"]["configuration"]["secrets"]
    assert secrets, "the database URL at least"
    for secret in secrets:
        assert set(secret) == {"name", "keyVaultUrl", "identity"}, secret  # no "value"
        assert secret["identity"] == plan.identity_id
        assert secret["keyVaultUrl"].startswith(f"{plan.vault_url}/secrets/{plan.names.secret_prefix}")
    by_name = {s["name"]: s for s in secrets}
    assert by_name[DATABASE_URL_SECRET]["keyVaultUrl"] == f"{plan.vault_url}/secrets/acme-database-url"
    # Every secret an env var references exists; every vault secret an app secret names is planned.
    for container in [*app["properties"]["template"]["containers"], *app["properties"]["template"]["initContainers"]]:
        refs = {e["secretRef"] for e in container["env"] if "secretRef" in e}
        assert refs <= by_name.keys()
    planned = {s.name for s in plan.vault_secrets}
    assert {s["keyVaultUrl"].rsplit("/", 1)[1] for s in secrets} <= planned
    # The organisation's identity is the app's own (code and Key Vault references); the shared pull
    # identity is attached for the registry only, out of the code's reach.
    assert set(app["identity"]["userAssignedIdentities"]) == {plan.identity_id, plan.deployment.registry_identity_id}
    assert {(s["identity"], s["lifecycle"]) for s in app["properties"]["configuration"]["identitySettings"]} == {
        (plan.identity_id, "All"),
        (plan.deployment.registry_identity_id, "None"),
    }
    assert app["properties"]["configuration"]["registries"] == [
        {"server": "billyacr.azurecr.io", "identity": plan.deployment.registry_identity_id}
    ]


CREDENTIALS_IN_URL = re.compile(r"://[^/\s:@]+:[^/\s@]+@")


def test_no_password_anywhere_in_the_plan() -> None:
    plan = plan_for()
    arm = json.dumps(plan.to_arm())
    assert not CREDENTIALS_IN_URL.search(arm)
    assert '"value": "' not in json.dumps([s for s in body(plan)["properties"]["configuration"]["secrets"]])
    for container in [main_container(plan), *body(plan)["properties"]["template"]["initContainers"]]:
        for env in container["env"]:
            assert "password" not in env["name"].lower() or "value" not in env, env
            assert not CREDENTIALS_IN_URL.search(env.get("value", "")), env
        names = {e["name"] for e in container["env"]}
        assert "BILLY_SMTP_PASSWORD" not in names  # copied into the vault instead
    # The role script binds the password as a parameter; it holds no literal one.
    assert plan.database_sql.count(PASSWORD_PARAMETER) == 1
    assert not re.search(r"PASSWORD\s+'", plan.database_sql, re.IGNORECASE)


def test_the_instance_accepts_the_settings_the_plan_gives_it() -> None:
    """The env the Container App gets passes the instance's own settings checks (services/config.py)."""
    plan = plan_for()
    environ = {
        e["name"]: e.get("value", "postgresql+psycopg2://resolved-by-container-apps@db/x")
        for e in main_container(plan)["env"]
    }
    settings = settings_from_env(environ)
    assert settings.secret_store is SecretStoreKind.AZURE
    assert settings.key_vault_url == plan.vault_url == f"https://{plan.names.vault}.vault.azure.net"
    assert settings.key_vault_secret_prefix == "acme-" == plan.names.secret_prefix
    assert settings.public_url == "https://acme.agentbilly.ai" and settings.cookie_secure
    assert settings.allowed_origins == ["https://acme.agentbilly.ai"]
    assert settings.account_url == "https://agentbilly.ai/account/acme"  # where its Owner manages the plan
    assert settings.first_run_signup is False  # a visitor cannot claim a provisioned instance
    assert environ["AZURE_CLIENT_ID"] == PENDING_CLIENT_ID
    init = body(plan)["properties"]["template"]["initContainers"]
    assert [c["command"] for c in init] == [["python", "-m", "services.cli", "migrate"]]
    assert all(c["env"] == main_container(plan)["env"] and c["image"] == plan.deployment.image for c in init)


# ---- address, TLS and probes -------------------------------------------------------------------


def test_ingress_serves_the_organisation_host_over_tls_only() -> None:
    plan = plan_for("acme-eu")
    ingress = body(plan)["properties"]["configuration"]["ingress"]
    assert ingress["external"] is True and ingress["targetPort"] == TARGET_PORT == 3000
    assert ingress["allowInsecure"] is False
    assert ingress["customDomains"] == [
        {"name": "acme-eu.agentbilly.ai", "bindingType": "SniEnabled", "certificateId": plan.certificate_id}
    ]
    assert plan.certificate_id.startswith(plan.region.environment_id + "/managedCertificates/")
    assert plan.certificate.as_dict()["properties"] == {
        "subjectName": "acme-eu.agentbilly.ai",
        "domainControlValidation": "CNAME",
    }
    records = {(r.type, r.name): r.record_set.serialize()["properties"] for r in plan.dns_records}
    assert records[("CNAME", "acme-eu")]["CNAMERecord"] == {
        "cname": "acme-eu.calmsea-1a2b3c4d.westeurope.azurecontainerapps.io"
    }
    assert records[("TXT", "asuid.acme-eu")]["TXTRecords"] == [{"value": [plan.deployment.domain_verification_id]}]


def test_probes_watch_healthz_and_readyz_on_the_app_port() -> None:
    probes = {p["type"]: p for p in main_container(plan_for())["probes"]}
    assert probes["Liveness"]["httpGet"] == {"path": "/healthz", "port": TARGET_PORT, "scheme": "HTTP"}
    assert probes["Readiness"]["httpGet"] == {"path": "/readyz", "port": TARGET_PORT, "scheme": "HTTP"}
    assert probes["Startup"]["httpGet"]["path"] == "/healthz"
    for probe in probes.values():  # Container Apps' ranges (the SDK's docs)
        assert 1 <= probe["failureThreshold"] <= 10 and 1 <= probe["initialDelaySeconds"] <= 60
        assert 1 <= probe["periodSeconds"] <= 240


# ---- database --------------------------------------------------------------------------------


def test_the_role_script_touches_only_its_own_database_and_role() -> None:
    a, b = plan_for("acme"), plan_for("globex")
    db_a, db_b = a.names.database, b.names.database
    sql = a.database_sql
    assert f'REVOKE ALL ON DATABASE "{db_a}" FROM PUBLIC;' in sql
    assert f'GRANT CONNECT, TEMPORARY ON DATABASE "{db_a}" TO "{a.names.role}";' in sql
    assert db_b not in sql and b.names.role not in sql
    grants = re.findall(r"^GRANT .*$", sql, re.MULTILINE)
    assert all(not g.rstrip(";").endswith("PUBLIC") for g in grants), grants
    assert set(re.findall(r'"([^"]+)"', sql)) == {db_a, a.names.role}  # no other identifier at all
    for word in ("SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS"):
        assert f"NO{word}" in sql and f" {word}" not in sql.replace(f"NO{word}", "")
    # Names every role can read in pg_catalog say nothing about who the customer is.
    assert "acme" not in db_a and "acme" not in a.names.role
    assert drop_role_sql(a.names.role) == f'DROP ROLE IF EXISTS "{a.names.role}";\n'


@pytest.fixture
def pg_admin_role(postgres_available: bool) -> Iterator[tuple[str, list[str], list[str]]]:
    """A non-superuser admin with CREATEROLE and CREATEDB, as on Azure Flexible Server; every database
    and role the test makes is dropped afterwards (the server is shared with other test runs)."""
    if not postgres_available:
        pytest.skip("PostgreSQL test server not available")
    admin = f"billy_test_admin_{uuid.uuid4().hex[:10]}"
    databases: list[str] = []
    roles: list[str] = []
    su = psycopg2.connect(host=PG_HOST, user=PG_USER, dbname="postgres")
    su.autocommit = True
    su.cursor().execute(f'CREATE ROLE "{admin}" LOGIN CREATEROLE CREATEDB')
    try:
        yield admin, databases, roles
    finally:
        cursor = su.cursor()
        for db in databases:
            cursor.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')
        for role in [*roles, admin]:
            cursor.execute(f'DROP ROLE IF EXISTS "{role}"')
        su.close()


def _connect(user: str, dbname: str, *, autocommit: bool = True) -> Any:
    conn = psycopg2.connect(host=PG_HOST, user=user, dbname=dbname, password="unused-with-trust")
    conn.autocommit = autocommit
    return conn


@pytest.mark.postgres
def test_no_organisation_role_can_open_another_organisation_database(
    pg_admin_role: tuple[str, list[str], list[str]],
) -> None:
    admin, databases, roles = pg_admin_role
    seed = f"pgtest-{uuid.uuid4().hex}"
    a, b = plan_for("acme", seed=seed), plan_for("globex", seed=seed)
    databases += [a.names.database, b.names.database]
    roles += [a.names.role, b.names.role]
    conn = _connect(admin, "postgres")  # what ARM's databases.begin_create does, as the admin
    for plan in (a, b):
        conn.cursor().execute(f'CREATE DATABASE "{plan.names.database}"')
    conn.close()
    for plan in (a, b, a):  # the script runs again safely (a re-run of apply)
        conn = _connect(admin, "postgres", autocommit=False)
        with conn, conn.cursor() as cursor:
            cursor.execute(plan.database_sql, {"password": f"pw-{uuid.uuid4().hex}"})
        conn.close()

    own = _connect(a.names.role, a.names.database)
    own.cursor().execute("CREATE TABLE migrated (id integer)")  # the migrations can build the schema
    own.close()
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(a.names.role, b.names.database)
    with pytest.raises(psycopg2.OperationalError, match="permission denied for database"):
        _connect(b.names.role, a.names.database)

    su = _connect(PG_USER, "postgres")
    cursor = su.cursor()
    for x, y in ((a, b), (b, a)):
        for privilege in ("CONNECT", "TEMPORARY", "CREATE"):
            cursor.execute("SELECT has_database_privilege(%s, %s, %s)", (x.names.role, y.names.database, privilege))
            assert cursor.fetchone() == (False,), (x.names.role, y.names.database, privilege)
        cursor.execute("SELECT pg_has_role(%s, %s, 'MEMBER')", (x.names.role, y.names.role))
        assert cursor.fetchone() == (False,)
    cursor.execute(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls, rolcanlogin "
        "FROM pg_roles WHERE rolname = %s",
        (a.names.role,),
    )
    assert cursor.fetchone() == (False, False, False, False, False, True)
    cursor.execute("SELECT has_database_privilege('public', %s, 'CONNECT')", (a.names.database,))
    assert cursor.fetchone() == (False,)
    su.close()

    # Teardown: the database goes (ARM), then the role script's counterpart drops the role.
    conn = _connect(admin, "postgres")
    cursor = conn.cursor()
    cursor.execute(f'DROP DATABASE "{a.names.database}"')
    cursor.execute(drop_role_sql(a.names.role))
    cursor.execute("SELECT count(*) FROM pg_roles WHERE rolname = %s", (a.names.role,))
    assert cursor.fetchone() == (0,)
    conn.close()


# ---- two organisations -----------------------------------------------------------------------


def test_two_organisations_share_no_identity_database_vault_or_secret_prefix() -> None:
    a, b = plan_for("acme"), plan_for("acme-labs")  # a prefix of the other's name, on purpose
    for field in ("app", "identity", "vault", "database", "role", "secret_prefix", "certificate"):
        assert getattr(a.names, field) != getattr(b.names, field), field
    # "acme-" is a prefix of "acme-labs-": in one shared vault, acme's secret "labs-database-url" would
    # be acme-labs' database URL. A vault each makes prefixes a naming aid, not the boundary.
    assert b.names.secret_prefix.startswith(a.names.secret_prefix) and a.names.vault != b.names.vault
    assert a.identity_id != b.identity_id and a.vault_url != b.vault_url and a.database_id != b.database_id
    assert not set(a.to_arm()) & set(b.to_arm())  # no resource in common
    b_words = strings(b.to_arm()) | set(re.findall(r'"([^"]+)"', b.database_sql))
    for own in (a.identity_id, a.vault_id, a.names.database, a.certificate_id, a.names.vault):
        assert not any(word == own or word.startswith(f"{own}/") for word in b_words), own
    assert not any(word.startswith(a.vault_url + "/") for word in b_words)


def strings(value: Any) -> set[str]:
    """Every string in a serialised body, keys included."""
    if isinstance(value, str):
        return {value}
    if isinstance(value, dict):
        return set(value) | {s for item in value.values() for s in strings(item)}
    if isinstance(value, list):
        return {s for item in value for s in strings(item)}
    return set()


def test_names_fit_azure_rules_for_awkward_slugs() -> None:
    for slug in ("abc", "a-b", "x" * 30, "abcdefghij-klmnop", "abcdefghijk-lmno", "a1-" * 9 + "a1z"):
        names = OrgNames.of(slug, "seed")
        assert re.fullmatch(r"[a-z][a-z0-9-]{1,30}[a-z0-9]", names.app) and "--" not in names.app
        assert re.fullmatch(r"[a-z][a-z0-9-]{1,22}[a-z0-9]", names.vault), names.vault  # 3-24, global
        assert "--" not in names.vault
        assert re.fullmatch(r"[a-z][a-z0-9_]{0,62}", names.database) and names.database == names.role
    # Truncation cannot merge two long slugs' vaults, nor two deployments'.
    assert OrgNames.of("abcdefghijk-one", "seed").vault != OrgNames.of("abcdefghijk-two", "seed").vault
    assert OrgNames.of("acme", "prod").vault != OrgNames.of("acme", "staging").vault


# ---- slugs and specs -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("slug", "words"),
    [
        ("ab", "has 2 characters: use 3 to 30"),
        ("a" * 31, "has 31 characters: use 3 to 30"),
        ("Acme", "capital letters: use lowercase ('acme')"),
        ("acme_co", "other than lowercase letters, digits and dashes"),
        ("acmé", "other than lowercase letters, digits and dashes"),
        ("acme.co", "other than lowercase letters, digits and dashes"),
        ("1acme", "must start with a letter"),
        ("-acme", "must start with a letter"),
        ("acme-", "must end with a letter or a digit"),
        ("xn--acme", "two dashes in a row"),
        ("", "Choose a name"),
    ],
)
def test_invalid_slugs_are_refused_saying_why(slug: str, words: str) -> None:
    with pytest.raises(InvalidOrg) as refused:
        check_slug(slug)
    assert words in str(refused.value)
    with pytest.raises(InvalidOrg):
        org(slug)


@pytest.mark.parametrize("slug", ["www", "api", "admin", "app", "mail", "billing", "signup", "status"])
def test_reserved_slugs_are_refused(slug: str) -> None:
    assert slug in RESERVED_SLUGS
    with pytest.raises(InvalidOrg, match="reserved for Billy's own addresses"):
        check_slug(slug)


def test_good_slugs_pass_unchanged() -> None:
    for slug in ("acme", "acme-eu-2", "a1b", "x" * 30, "www2", "apis"):
        assert check_slug(slug) == slug


def test_an_org_spec_is_checked_whole() -> None:
    with pytest.raises(InvalidOrg, match="not one of Billy's plans"):
        org(plan="enterprise")
    with pytest.raises(InvalidOrg, match="email address does not look right"):
        org(owner_email="not-an-email")
    with pytest.raises(InvalidOrg, match="not a lowercase DNS name"):
        org(base_domain="AgentBilly.ai")
    with pytest.raises(InvalidOrg, match="not an Azure region name"):
        org(region="West Europe")
    with pytest.raises(InvalidOrg, match="use 1 to 10"):
        org(max_replicas=0)
    with pytest.raises(InvalidOrg, match=r"serves agentbilly\.ai, not example\.org"):
        AzureProvisioner(deployment()).plan(org(base_domain="example.org"))
    with pytest.raises(ProvisioningError, match="not set up in region 'eastus'"):
        AzureProvisioner(deployment()).plan(org(region="eastus"))
    with pytest.raises(ProvisioningError, match="does not hold the base domain"):
        deployment(base_domain="example.org")


# ---- apply, suspend, destroy (recorded, not run against Azure) -------------------------------


class FakeVault:
    def __init__(self, log: MagicMock, url: str, values: dict[str, str] | None = None) -> None:
        self.log, self.url, self.values = log, url, dict(values or {})

    def get_secret(self, name: str) -> Any:
        self.log.vault_get(self.url, name)
        if name not in self.values:
            raise ResourceNotFoundError("no such secret")
        return SimpleNamespace(value=self.values[name])

    def set_secret(self, name: str, value: str, **_: Any) -> None:
        self.log.vault_set(self.url, name)
        self.values[name] = value


class FakePostgres:
    """psycopg2.connect's stand-in: records each script and its parameters."""

    def __init__(self, log: MagicMock) -> None:
        self.log = log
        self.executed: list[tuple[str, Any]] = []

    def __call__(self, **kwargs: Any) -> Any:
        self.log.postgres_connect(kwargs["host"], kwargs["user"], kwargs["dbname"], kwargs.get("sslmode"))
        fake = self

        class Cursor:
            def __enter__(self) -> Cursor:
                return self

            def __exit__(self, *_: Any) -> None:
                pass

            def execute(self, script: str, params: Any = None) -> None:
                fake.log.postgres_execute(script.splitlines()[0])
                fake.executed.append((script, params))

        class Connection:
            def __enter__(self) -> Connection:
                return self

            def __exit__(self, *_: Any) -> None:
                fake.log.postgres_commit()

            def cursor(self) -> Cursor:
                return Cursor()

            def close(self) -> None:
                pass

        return Connection()


def recorded_clients(*, certificate_exists: bool = False, running_status: str = "Running") -> tuple[Any, ...]:
    log = MagicMock()
    vaults: dict[str, FakeVault] = {
        "https://billy-operator.vault.azure.net": FakeVault(
            log,
            "https://billy-operator.vault.azure.net",
            {"pg-admin-password": "admin-secret-Zz9", "smtp-relay-password": "smtp-secret-Yy8"},
        )
    }

    def secret_client(url: str) -> FakeVault:
        return vaults.setdefault(url, FakeVault(log, url))

    postgres = FakePostgres(log)
    log.identities.user_assigned_identities.create_or_update.return_value = SimpleNamespace(
        principal_id="11111111-aaaa-4bbb-8ccc-000000000001", client_id="22222222-aaaa-4bbb-8ccc-000000000002"
    )
    log.identities.user_assigned_identities.get.return_value = SimpleNamespace(
        client_id="22222222-aaaa-4bbb-8ccc-000000000002"
    )
    if not certificate_exists:
        log.apps.managed_certificates.get.side_effect = ResourceNotFoundError("none yet")
    log.apps.container_apps.begin_create_or_update.return_value.result.return_value = SimpleNamespace(
        properties=SimpleNamespace(running_status=running_status)
    )
    clients = AzureClients(
        identities=log.identities,
        vaults=log.vaults,
        authorization=log.authorization,
        postgres=log.postgres,
        dns=log.dns,
        apps=log.apps,
        secret_client=secret_client,
        connect_postgres=postgres,
        propagation_wait=0,
        propagation_limit=0,
    )
    return clients, log, vaults, postgres


def check_against_real_clients(log: MagicMock) -> None:
    """Every recorded management call names a real method of the real SDK client and binds to its
    signature (the clients are built with a dummy credential; nothing is sent)."""
    real = AzureClients.connect(DummyCredential(), SUB)
    checked = 0
    for name, args, kwargs in log.mock_calls:
        root, *path = name.split(".")
        if not path or "()" in name:
            continue  # the fakes' own log, and pollers' .result()
        method = getattr(real, root)
        for part in path:
            method = getattr(method, part)
        inspect.signature(method).bind(*args, **kwargs)
        checked += 1
    assert checked


class DummyCredential:
    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        raise AssertionError("nothing is sent to Azure in these tests")


def steps(log: MagicMock) -> list[str]:
    """The recorded calls in order, without the pollers' `.result()`."""
    return [name for name, _, _ in log.mock_calls if not name.endswith("().result") and "()." not in name]


def test_apply_creates_in_dependency_order_and_keeps_the_password_out_of_arm() -> None:
    plan = plan_for()
    clients, log, vaults, postgres = recorded_clients()
    info = apply(plan, None, SUB, clients=clients)
    assert info.state is InstanceState.RUNNING and info.url == "https://acme.agentbilly.ai"
    order = steps(log)
    expected = [
        "identities.user_assigned_identities.create_or_update",
        "vaults.vaults.begin_create_or_update",
        "authorization.role_assignments.create",
        "postgres.databases.begin_create",
        "postgres_execute",  # the role script, as the admin
        "vault_set",  # the database URL, into the organisation's vault
        "dns.record_sets.create_or_update",
        "apps.container_apps.begin_create_or_update",  # host added unbound
        "apps.managed_certificates.begin_create_or_update",
        "apps.container_apps.begin_create_or_update",  # now bound to its certificate
    ]
    position = -1
    for step in expected:  # each after the one before (ValueError: missing or out of order)
        position = order.index(step, position + 1)
    assert "apps.container_apps.begin_stop" not in order
    check_against_real_clients(log)

    # The identity's ids reach the role assignment and the app.
    _, (scope, name, parameters), _ = log.authorization.role_assignments.create.mock_calls[0]
    assert (scope, name) == (plan.role_assignment_scope, plan.role_assignment_name)
    assert parameters.principal_id == "11111111-aaaa-4bbb-8ccc-000000000001"
    first, final = [c.args[2] for c in log.apps.container_apps.begin_create_or_update.mock_calls if c.args]
    assert first.as_dict()["properties"]["configuration"]["ingress"]["customDomains"] == [
        {"name": "acme.agentbilly.ai", "bindingType": "Disabled"}
    ]
    assert final.as_dict()["properties"]["configuration"]["ingress"]["customDomains"][0]["bindingType"] == "SniEnabled"
    env = {e["name"]: e.get("value") for e in final.as_dict()["properties"]["template"]["containers"][0]["env"]}
    assert env["AZURE_CLIENT_ID"] == "22222222-aaaa-4bbb-8ccc-000000000002"
    assert PENDING_CLIENT_ID not in json.dumps(final.as_dict())

    # The generated password went to PostgreSQL (as a parameter) and the vault, and nowhere else.
    ((script, params),) = postgres.executed
    assert script == plan.database_sql and set(params) == {"password"}
    password = params["password"]
    assert len(password) >= 40
    stored = vaults[plan.vault_url].values
    assert set(stored) == {
        "acme-database-url",
        "acme-smtp-password",
        "acme-instance-signing-key",
        "acme-jwt-signing-key",
    }
    # The instance's signing keys are made before the app exists, so its replicas all start with them
    # (the instance reads `jwt-signing-key` under its prefix; Key Vault has no conditional write).
    keys = {name: stored[f"acme-{name}"] for name in INSTANCE_KEYS}
    assert all(len(key) >= 60 for key in keys.values()) and len(set(keys.values())) == len(keys)
    last_vault_write = max(i for i, step in enumerate(order) if step == "vault_set")
    assert last_vault_write < order.index("apps.container_apps.begin_create_or_update")
    assert f":{password}@" in stored["acme-database-url"] and stored["acme-smtp-password"] == "smtp-secret-Yy8"
    assert stored["acme-database-url"].startswith(f"postgresql+psycopg2://{plan.names.role}:")
    assert stored["acme-database-url"].endswith(f"/{plan.names.database}?sslmode=require")
    sent_to_arm = json.dumps([repr(c) for c in log.mock_calls], default=str) + json.dumps(
        [c.args[2].as_dict() for c in log.apps.container_apps.begin_create_or_update.mock_calls if c.args]
    )
    for secret in (password, "admin-secret-Zz9", "smtp-secret-Yy8", *keys.values()):
        assert secret not in sent_to_arm

    # A second run keeps the login (no new password) and the certificate binding.
    url_before = stored["acme-database-url"]
    again, log2, _, postgres2 = recorded_clients(certificate_exists=True)
    vaults2 = {plan.vault_url: vaults[plan.vault_url]}
    original = again.secret_client
    again.secret_client = lambda url: vaults2.get(url) or original(url)
    apply(plan, None, SUB, clients=again)
    assert postgres2.executed == [] and stored["acme-database-url"] == url_before
    assert {name: stored[f"acme-{name}"] for name in INSTANCE_KEYS} == keys  # tokens handed out stay valid
    assert steps(log2).count("apps.container_apps.begin_create_or_update") == 1
    assert "apps.managed_certificates.begin_create_or_update" not in steps(log2)


def test_apply_refuses_another_subscription_and_needs_a_credential() -> None:
    with pytest.raises(ProvisioningError, match="not 00000000-0000-0000-0000-00000000ffff"):
        apply(plan_for(), None, "00000000-0000-0000-0000-00000000ffff", clients=recorded_clients()[0])
    with pytest.raises(ProvisioningError, match="needs an Azure credential"):
        apply(plan_for(), None, SUB)


def test_suspend_stops_the_app_and_resume_starts_it_again() -> None:
    clients, log, _, postgres = recorded_clients(certificate_exists=True)
    provisioner = AzureProvisioner(deployment(), clients=clients)
    assert isinstance(provisioner, Provisioner)
    info = provisioner.suspend(org())
    assert info.state is InstanceState.SUSPENDED and info.min_replicas == 0
    (sent,) = [c.args[2] for c in log.apps.container_apps.begin_create_or_update.mock_calls if c.args]
    assert sent.as_dict()["properties"]["template"]["scale"]["minReplicas"] == 0
    assert steps(log)[-1] == "apps.container_apps.begin_stop"
    # Only the app changes: no identity, vault, database or DNS call, and no password made.
    assert not any(s.startswith(("vaults.", "postgres.", "dns.", "authorization.")) for s in steps(log))
    assert postgres.executed == []

    clients, log, _, _ = recorded_clients(certificate_exists=True, running_status="Stopped")
    info = AzureProvisioner(deployment(), clients=clients).resume(org())
    assert info.state is InstanceState.RUNNING and info.min_replicas == 1
    assert steps(log)[-1] == "apps.container_apps.begin_start"
    assert "apps.container_apps.begin_stop" not in steps(log)
    check_against_real_clients(log)


def test_destroy_removes_app_database_role_vault_and_identity_in_that_order() -> None:
    plan = plan_for()
    clients, log, _, postgres = recorded_clients()
    log.vaults.vaults.delete.side_effect = ResourceNotFoundError("already gone")  # idempotent
    gone = list(teardown(plan, clients))
    assert gone[0] == plan.container_app_id and gone[-1] == plan.identity_id
    assert gone.index(plan.database_id) < gone.index(plan.vault_id)
    order = steps(log)
    for earlier, later in [
        ("apps.container_apps.begin_delete", "postgres.databases.begin_delete"),
        ("postgres.databases.begin_delete", "postgres_execute"),  # the role goes after its database
        ("authorization.role_assignments.delete", "vaults.vaults.delete"),
        ("vaults.vaults.delete", "vaults.vaults.begin_purge_deleted"),  # secrets purged, not only soft-deleted
        ("vaults.vaults.begin_purge_deleted", "identities.user_assigned_identities.delete"),
    ]:
        assert order.index(earlier) < order.index(later), (earlier, later, order)
    assert [script for script, _ in postgres.executed] == [drop_role_sql(plan.names.role)]
    assert log.vaults.vaults.begin_purge_deleted.call_args.args == (plan.names.vault, "westeurope")
    check_against_real_clients(log)


def test_a_provisioner_without_credentials_plans_but_does_not_apply() -> None:
    provisioner = AzureProvisioner(deployment())
    assert provisioner.plan(org()).org.slug == "acme"
    with pytest.raises(ProvisioningError, match="can plan, not apply"):
        provisioner.suspend(org())


# ---- the image ---------------------------------------------------------------------------------


def dockerfile() -> list[tuple[str, str]]:
    """deploy/Dockerfile as (instruction, arguments), continuation lines joined, comments dropped."""
    joined, parts = [], []
    for line in (ROOT / "deploy" / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        parts.append(line.rstrip().removesuffix("\\").strip())
        if not line.rstrip().endswith("\\"):
            joined.append(" ".join(parts))
            parts = []
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in joined]


def copied_sources() -> set[str]:
    """What the Dockerfile copies from the build context (not from another stage)."""
    return {
        source
        for op, args in dockerfile()
        if op == "COPY" and not args.startswith("--from")
        for source in shlex.split(args)[:-1]
    }


def test_the_image_matches_the_container_app() -> None:
    instructions = dockerfile()
    stages = [i for i, (op, _) in enumerate(instructions) if op == "FROM"]
    final = instructions[stages[-1] :]
    # Pinned bases: an exact Python 3.11 release, never a moving tag.
    for _, image in [instructions[i] for i in stages]:
        name = image.split()[0]
        assert ":" in name and not name.endswith(":latest"), name
    assert final[0][1] == "python:3.11.14-slim-bookworm"
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", final[0][1])
    # Runs as an unprivileged user.
    users = [args for op, args in final if op == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    # The port and the command are the plan's.
    assert [args for op, args in final if op == "EXPOSE"] == [str(TARGET_PORT)]
    (cmd,) = [json.loads(args) for op, args in final if op == "CMD"]
    assert cmd == ["python", "-m", "billy_app.serve", "--port", str(TARGET_PORT)]
    (health,) = [args for op, args in final if op == "HEALTHCHECK"]
    assert f"http://127.0.0.1:{TARGET_PORT}/healthz" in health
    # Pinned packages, installed the way scripts/bootstrap.sh installs them.
    runs = " ".join(args for op, args in instructions if op == "RUN")
    assert "pip install -r requirements.txt -c constraints.txt" in runs
    assert f"python -m billy_app.serve --build-only --port {TARGET_PORT}" in runs
    # bun, Reflex's toolchain, is the version the project bootstraps.
    bun = re.search(r"BUN_VERSION=(\S+)", (ROOT / "scripts" / "bootstrap.sh").read_text())
    assert bun and f"oven/bun:{bun.group(1)}-slim" in [instructions[i][1].split()[0] for i in stages]
    # What the plan's init container runs exists in the image.
    assert {
        "services",
        "billy_app",
        "alembic",
        "alembic.ini",
        "requirements.txt",
        "constraints.txt",
    } <= copied_sources()
    assert 'if __name__ == "__main__":' in (ROOT / "services" / "cli.py").read_text()


def test_the_build_context_admits_only_what_the_image_needs() -> None:
    lines = (ROOT / "deploy" / "Dockerfile.dockerignore").read_text().splitlines()
    rules = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert rules[0] == "*"  # an allow-list: anything new stays out until named
    admitted = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    assert copied_sources() <= admitted
    assert not admitted & {"sandbox", "tests", "devtools", "controlplane", "data", ".venv", ".web", "clients"}
