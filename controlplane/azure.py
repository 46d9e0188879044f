"""Organisations on Azure Container Apps: the plan as Azure SDK model objects, and `apply`.

`AzureProvisioner.plan(org)` computes, with no Azure account and no network, every resource one
organisation gets, as the `azure-mgmt-*` models that `apply` sends to Azure Resource Manager:

    user-assigned identity ─┬─ Key Vault (its own) ── role: Key Vault Secrets Officer, scoped to that vault
                            ├─ Container App ── image, ingress {slug}.{base domain} + managed certificate,
                            │                    secrets = Key Vault references, probes, scale
                            └─ Container Apps job ── the same image, settings and references, manual
                                                 trigger: the instance's own commands for the control plane
    PostgreSQL database (its own, on the region's shared Flexible Server) + login role SQL
    DNS: CNAME {slug} → the app, TXT asuid.{slug} (domain ownership)

Isolation, decided here and asserted by tests/test_azure_plan.py:

- **One Key Vault per organisation** rather than a shared vault with per-secret role assignments.
  Azure RBAC scopes a data-plane role to a vault or to one existing secret. The instance writes
  its own secrets at run time under names it picks (the Stripe key when the Owner connects it, its
  signing key, the audit log's head, the SMTP password), so per-secret scopes would need every
  name created in advance and would break the day the app adds one; the vault-wide alternative
  lets every organisation read every other's Stripe key. A vault per organisation costs nothing at
  rest, scopes the identity's one role assignment to exactly that organisation's secrets, throttles
  per organisation, and `destroy` deletes and purges it whole. `BILLY_KEY_VAULT_SECRET_PREFIX` is
  still `{slug}-`, so names stay unambiguous in logs and if vaults were ever merged.
- **Identity**: one user-assigned managed identity per organisation (it exists before the app, so
  its vault role is in place when the first revision resolves its Key Vault references, and it
  outlives re-creating the app). Its only role assignment is Key Vault Secrets Officer (read and
  write secrets; no keys, certificates or access changes) on its own vault. `AZURE_CLIENT_ID` tells
  the instance's `DefaultAzureCredential` which identity is its own.
- **Image pulls** use the deployment's shared pull identity (AcrPull on the registry, nothing
  else), attached with lifecycle `None`: the platform pulls with it, the instance's code cannot get
  a token for it.
- **PostgreSQL**: a database and a login role per organisation on a Flexible Server shared within
  a region (`controlplane.postgres`: `CONNECT` revoked from `PUBLIC`, granted to its role alone).
  Database and role names are opaque (`org_<hash>`), because every role can list the server's
  databases and roles in `pg_catalog`: readable names would tell each customer who the others are.
- **No password in the plan**: the Container App's only secrets are Key Vault references (URL +
  the organisation's identity). `apply` generates the role's password, binds it into the SQL
  script by parameter, and writes the database URL straight into the organisation's vault.
- **Writing into the instance** (`InstanceWriter`: organisation, Owner, plan, trial, hand-over):
  the control plane never reaches into the instance's database. It runs the instance's own command
  as the organisation's job, which holds exactly the app's identity and references, and the request
  and answer pass through the organisation's vault (`controlplane.azure_seeding` says why that way).
- **Suspend**: Container Apps refuses `maxReplicas: 0`, so a suspended plan has min 0 / max 1
  replicas and `apply` stops the app (a stopped app starts no replica, whatever requests arrive).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError
from azure.mgmt.appcontainers import models as aca
from azure.mgmt.authorization.v2022_04_01 import models as authz
from azure.mgmt.core.tools import is_valid_resource_id, parse_resource_id, resource_id
from azure.mgmt.dns import models as dns
from azure.mgmt.keyvault import models as kv
from azure.mgmt.msi import models as msi
from azure.mgmt.postgresqlflexibleservers import models as pg
from tenacity import Retrying, retry_if_exception, stop_after_delay, wait_fixed

from controlplane.postgres import drop_role_sql, role_sql
from controlplane.provisioning import (
    InstanceInfo,
    InstanceState,
    InvalidOrg,
    OrgSpec,
    OwnerSeed,
    ProvisioningError,
)
from services.plans import PLANS
from services.signing import INSTANCE_KEYS

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

TARGET_PORT = 3000  # billy_app.serve's port; deploy/Dockerfile EXPOSEs the same (a test checks)
CONTAINER_NAME = "billy"
DATABASE_URL_SECRET = "database-url"  # the Container App's secret name (a Key Vault reference)
REDIS_URL_SECRET = "redis-url"
INSTANCE_COMMAND = ("python", "-m", "services.cli")  # the instance's own command line (services/cli.py)
# A control-plane command migrates, writes a few rows and answers: seconds, or a minute for a first
# migration of a new database. Five minutes bounds a job that hangs.
JOB_REPLICA_TIMEOUT = 300
# Built-in role definition ids (the same GUIDs in every Azure tenant).
KEY_VAULT_SECRETS_OFFICER = "b86a8fe4-44ce-4948-aee5-eccb2c155cd7"
# Known only once the identity exists: `apply` puts the real values in place of these.
PENDING_PRINCIPAL_ID = "$(identity.principalId)"
PENDING_CLIENT_ID = "$(identity.clientId)"
SOFT_DELETE_DAYS = 7  # Key Vault's minimum; `destroy` purges anyway
_NAMESPACE = uuid.UUID("7d1b5f0e-3c64-4e55-9a4f-6b1f0c2d9e11")  # role assignment names (uuid5)
_TAG = "billy-org"


@dataclass(frozen=True)
class RegionStack:
    """What an operator sets up once per region and every organisation there shares (deploy/README.md)."""

    environment_id: str  # .../providers/Microsoft.App/managedEnvironments/<name>
    environment_domain: str  # the environment's default domain: apps answer at <app>.<domain>
    postgres_server_id: str  # .../providers/Microsoft.DBforPostgreSQL/flexibleServers/<name>


@dataclass(frozen=True)
class SmtpRelay:
    """The mail relay every instance sends invites and resets through; its password is copied from
    the operator's vault into each organisation's vault, where the instance reads `smtp-password`."""

    host: str
    port: int = 587
    user: str = ""
    tls: str = "starttls"
    mail_from: str = "Agent Billy <billy@agentbilly.ai>"
    password_secret: str = ""  # secret name in the operator's vault; empty: no password


@dataclass(frozen=True)
class AzureDeployment:
    """One Billy deployment on Azure: the operator's shared pieces. No credential lives here."""

    subscription_id: str
    tenant_id: str
    resource_group: str  # organisations' apps, identities and vaults
    name_seed: str  # stable for the deployment's life: vault and database names derive from it
    base_domain: str
    dns_zone_id: str  # .../providers/Microsoft.Network/dnszones/<zone>: the base domain or a parent
    domain_verification_id: str  # the environment's customDomainVerificationId (TXT asuid.<host>)
    image: str  # <registry>/billy:<version>, built from deploy/Dockerfile
    registry_server: str
    registry_identity_id: str  # shared pull identity: AcrPull on the registry only
    operator_vault_url: str  # holds the servers' admin password (and the SMTP password)
    postgres_admin_user: str
    postgres_admin_secret: str
    regions: Mapping[str, RegionStack]
    smtp: SmtpRelay | None = None
    cpu: float = 0.5
    memory: str = "1Gi"
    vault_domain: str = "vault.azure.net"
    postgres_domain: str = "postgres.database.azure.com"

    def __post_init__(self) -> None:
        ids = [self.dns_zone_id, self.registry_identity_id]
        for stack in self.regions.values():
            ids += [stack.environment_id, stack.postgres_server_id]
        bad = [rid for rid in ids if not is_valid_resource_id(rid)]
        if bad:
            raise ProvisioningError(f"Not Azure resource ids: {', '.join(bad)}.")
        zone = parse_resource_id(self.dns_zone_id)["name"]
        if self.base_domain != zone and not self.base_domain.endswith(f".{zone}"):
            raise ProvisioningError(f"The DNS zone {zone} does not hold the base domain {self.base_domain}.")

    @property
    def zone_name(self) -> str:
        return str(parse_resource_id(self.dns_zone_id)["name"])

    def region(self, name: str) -> RegionStack:
        try:
            return self.regions[name]
        except KeyError:
            known = ", ".join(sorted(self.regions)) or "none"
            raise ProvisioningError(
                f"Billy is not set up in region {name!r} (set up: {known}). An operator adds its "
                "Container Apps environment and PostgreSQL server first (deploy/README.md)."
            ) from None


@dataclass(frozen=True)
class OrgNames:
    """Every per-organisation resource name, derived from the slug and the deployment's seed."""

    app: str
    identity: str
    vault: str
    database: str
    role: str
    secret_prefix: str
    certificate: str
    job: str  # the Container Apps job that runs the instance's own commands for the control plane

    @classmethod
    def of(cls, slug: str, seed: str) -> OrgNames:
        def digest(purpose: str) -> str:  # one per purpose: a public vault name says nothing of the database's
            return hashlib.sha256(f"{seed}\0{purpose}\0{slug}".encode()).hexdigest()

        opaque = f"org_{digest('database')[:20]}"  # pg_catalog lists every database and role to every role
        return cls(
            app=slug,  # Container App names: 2-32 lowercase letters, digits, dashes, as slugs are
            identity=f"billy-{slug}",
            # Vault names are global across Azure, 3-24 characters: the hash keeps truncated slugs and
            # other deployments apart.
            vault=f"billy-{slug[:11].rstrip('-')}-{digest('vault')[:6]}",
            database=opaque,
            role=opaque,
            secret_prefix=f"{slug}-",
            certificate=f"{slug}-tls",
            # Job names follow app names' rules (at most 32 characters); the hash keeps two long slugs
            # that share their first 21 characters apart.
            job=f"{slug[:21].rstrip('-')}-job-{digest('job')[:6]}",
        )


@dataclass(frozen=True)
class DnsRecord:
    name: str  # relative to the zone
    type: str
    record_set: dns.RecordSet


@dataclass(frozen=True)
class VaultSecret:
    """A secret `apply` puts in the organisation's vault: its name and where the value comes from
    (never the value)."""

    name: str
    source: str
    app_secret: str = ""  # the Container App secret that references it ("": the instance reads it itself)
    operator_secret: str = ""  # copied from this secret of the operator's vault
    instance_key: bool = False  # a random key the instance signs with: made once, kept on a re-run


@dataclass(frozen=True)
class AzurePlan:
    """Everything one organisation gets, as the SDK objects `apply` sends, in dependency order."""

    org: OrgSpec
    deployment: AzureDeployment
    names: OrgNames
    suspended: bool
    identity_id: str
    identity: msi.Identity
    vault_id: str
    vault_url: str
    vault: kv.VaultCreateOrUpdateParameters
    role_assignment_scope: str
    role_assignment_name: str
    role_assignment: authz.RoleAssignmentCreateParameters
    database_id: str
    database: pg.Database
    database_sql: str
    vault_secrets: tuple[VaultSecret, ...]
    dns_records: tuple[DnsRecord, ...]
    certificate_id: str
    certificate: aca.ManagedCertificate
    container_app_id: str
    container_app: aca.ContainerApp
    job_id: str
    job: aca.Job

    @property
    def region(self) -> RegionStack:
        return self.deployment.region(self.org.region)

    @property
    def scale(self) -> aca.Scale:
        properties = self.container_app.properties
        assert properties and properties.template and properties.template.scale  # built so by `build_plan`
        return properties.template.scale

    def to_arm(self) -> dict[str, Any]:
        """Each resource's id and the body `apply` sends to Azure Resource Manager for it."""
        zone = self.deployment.dns_zone_id
        role_path = f"{self.role_assignment_scope}/providers/Microsoft.Authorization/roleAssignments/"
        bodies: dict[str, Any] = {
            self.identity_id: self.identity.serialize(),
            self.vault_id: self.vault.as_dict(),
            role_path + self.role_assignment_name: self.role_assignment.serialize(),
            self.database_id: self.database.as_dict(),
        }
        for record in self.dns_records:
            bodies[f"{zone}/{record.type}/{record.name}"] = record.record_set.serialize()
        bodies[self.certificate_id] = self.certificate.as_dict()
        bodies[self.container_app_id] = self.container_app.as_dict()
        bodies[self.job_id] = self.job.as_dict()
        return bodies

    def info(self) -> InstanceInfo:
        scale = self.scale
        return InstanceInfo(
            slug=self.org.slug,
            url=self.org.public_url,
            state=InstanceState.SUSPENDED if self.suspended else InstanceState.RUNNING,
            min_replicas=scale.min_replicas or 0,
            max_replicas=scale.max_replicas or 0,
            resources={
                "app": self.container_app_id,
                "identity": self.identity_id,
                "vault": self.vault_url,
                "database": self.database_id,
                "certificate": self.certificate_id,
                "job": self.job_id,
            },
        )


def _env(name: str, value: str = "", *, secret: str = "") -> aca.EnvironmentVar:
    return aca.EnvironmentVar(name=name, secret_ref=secret) if secret else aca.EnvironmentVar(name=name, value=value)


def _probe(kind: str, path: str, *, period: int, timeout: int, failures: int, delay: int = 1) -> aca.ContainerAppProbe:
    return aca.ContainerAppProbe(
        type=kind,
        http_get=aca.ContainerAppProbeHttpGet(path=path, port=TARGET_PORT, scheme="HTTP"),
        initial_delay_seconds=delay,
        period_seconds=period,
        timeout_seconds=timeout,
        failure_threshold=failures,
    )


def _container_env(org: OrgSpec, d: AzureDeployment, names: OrgNames, vault_url: str) -> list[aca.EnvironmentVar]:
    """The instance's settings (services/config.py): plain values, or references to Key Vault secrets."""
    env = [
        _env("BILLY_PUBLIC_URL", org.public_url),
        _env("BILLY_ACCOUNT_URL", f"https://{org.base_domain}/account/{org.slug}"),  # the plan is paid for there
        _env("BILLY_SECRET_STORE", "azure"),
        _env("BILLY_KEY_VAULT_URL", vault_url),
        _env("BILLY_KEY_VAULT_SECRET_PREFIX", names.secret_prefix),
        _env("BILLY_DATABASE_URL", secret=DATABASE_URL_SECRET),
        _env("BILLY_FIRST_RUN_SIGNUP", "false"),  # the control plane creates the organisation, not a visitor
        _env("AZURE_CLIENT_ID", PENDING_CLIENT_ID),  # which attached identity is the instance's own
    ]
    if org.replicas_ceiling > 1:  # several workers share tab state through Redis (DESIGN, Tenancy)
        env.append(_env("BILLY_REDIS_URL", secret=REDIS_URL_SECRET))
    if d.smtp:
        env += [
            _env("BILLY_SMTP_HOST", d.smtp.host),
            _env("BILLY_SMTP_PORT", str(d.smtp.port)),
            _env("BILLY_SMTP_USER", d.smtp.user),
            _env("BILLY_SMTP_TLS", d.smtp.tls),
            _env("BILLY_MAIL_FROM", d.smtp.mail_from),
        ]
    return env


def _vault_secrets(org: OrgSpec, d: AzureDeployment, names: OrgNames) -> tuple[VaultSecret, ...]:
    made = [VaultSecret(f"{names.secret_prefix}database-url", "generated: the login role's URL", DATABASE_URL_SECRET)]
    if org.replicas_ceiling > 1:
        made.append(
            VaultSecret(f"{names.secret_prefix}redis-url", "operator: the organisation's Redis", REDIS_URL_SECRET)
        )
    if d.smtp and d.smtp.password_secret:
        # The instance's own secret store reads `smtp-password` under its prefix.
        made.append(
            VaultSecret(
                f"{names.secret_prefix}smtp-password",
                "operator vault: the mail relay's password",
                operator_secret=d.smtp.password_secret,
            )
        )
    # Made here, before any replica runs: Key Vault has no conditional write, so replicas starting
    # together on a new instance could each make their own and refuse each other's tokens.
    made += [
        VaultSecret(f"{names.secret_prefix}{key}", "generated: the instance's own signing key", instance_key=True)
        for key in INSTANCE_KEYS
    ]
    return tuple(made)


def _identities(identity_id: str, d: AzureDeployment) -> aca.ManagedServiceIdentity:
    return aca.ManagedServiceIdentity(
        type="UserAssigned",
        user_assigned_identities={
            identity_id: aca.UserAssignedIdentity(),
            d.registry_identity_id: aca.UserAssignedIdentity(),
        },
    )


def _vault_references(vault_url: str, identity_id: str, vault_secrets: tuple[VaultSecret, ...]) -> list[aca.Secret]:
    return [
        aca.Secret(name=s.app_secret, key_vault_url=f"{vault_url}/secrets/{s.name}", identity=identity_id)
        for s in vault_secrets
        if s.app_secret
    ]


def _registries(d: AzureDeployment) -> list[aca.RegistryCredentials]:
    return [aca.RegistryCredentials(server=d.registry_server, identity=d.registry_identity_id)]


def _identity_settings(identity_id: str, d: AzureDeployment) -> list[aca.IdentitySettings]:
    return [
        aca.IdentitySettings(identity=identity_id, lifecycle="All"),
        aca.IdentitySettings(identity=d.registry_identity_id, lifecycle="None"),  # pulls only
    ]


def _runs_as_the_instance(
    d: AzureDeployment, identity_id: str, vault_url: str, vault_secrets: tuple[VaultSecret, ...]
) -> dict[str, Any]:
    """What the app and its job are configured with alike: the instance's Key Vault references,
    the registry, and the identities that read them, so the job always runs as the app does."""
    return {
        "secrets": _vault_references(vault_url, identity_id, vault_secrets),
        "registries": _registries(d),
        "identity_settings": _identity_settings(identity_id, d),
    }


def _container_app(
    org: OrgSpec,
    d: AzureDeployment,
    names: OrgNames,
    *,
    identity_id: str,
    vault_url: str,
    certificate_id: str,
    vault_secrets: tuple[VaultSecret, ...],
    min_replicas: int,
    suspended: bool,
    tags: dict[str, str],
) -> aca.ContainerApp:
    region = d.region(org.region)
    env = _container_env(org, d, names, vault_url)
    resources = aca.ContainerResources(cpu=d.cpu, memory=d.memory)
    ceiling = org.replicas_ceiling
    return aca.ContainerApp(
        location=org.region,
        tags=tags,
        identity=_identities(identity_id, d),
        properties=aca.ContainerAppProperties(
            managed_environment_id=region.environment_id,
            configuration=aca.Configuration(
                active_revisions_mode="Single",
                ingress=aca.Ingress(
                    external=True,
                    target_port=TARGET_PORT,
                    transport="auto",  # HTTP/1.1 and websockets (Reflex's event channel)
                    allow_insecure=False,  # plain HTTP is redirected to HTTPS
                    traffic=[aca.TrafficWeight(latest_revision=True, weight=100)],
                    custom_domains=[
                        aca.CustomDomain(name=org.host, binding_type="SniEnabled", certificate_id=certificate_id)
                    ],
                    sticky_sessions=aca.IngressStickySessions(affinity="sticky") if ceiling > 1 else None,
                ),
                **_runs_as_the_instance(d, identity_id, vault_url, vault_secrets),
            ),
            template=aca.Template(
                # The schema is migrated before the app starts, with the app's own settings.
                init_containers=[
                    aca.InitContainer(
                        name="migrate",
                        image=d.image,
                        command=[*INSTANCE_COMMAND, "migrate"],
                        env=env,
                        resources=resources,
                    )
                ],
                containers=[
                    aca.Container(
                        name=CONTAINER_NAME,
                        image=d.image,
                        env=env,
                        resources=resources,
                        probes=[
                            _probe("Startup", "/healthz", period=5, timeout=3, failures=10, delay=3),
                            _probe("Liveness", "/healthz", period=10, timeout=3, failures=3),
                            _probe("Readiness", "/readyz", period=15, timeout=5, failures=3),
                        ],
                    )
                ],
                scale=aca.Scale(min_replicas=0 if suspended else min_replicas, max_replicas=ceiling),
            ),
        ),
    )


def _container_job(
    org: OrgSpec,
    d: AzureDeployment,
    names: OrgNames,
    *,
    identity_id: str,
    vault_url: str,
    vault_secrets: tuple[VaultSecret, ...],
    tags: dict[str, str],
) -> aca.Job:
    """The job that runs the instance's own commands for the control plane (controlplane/azure_seeding.py):
    the app's image, settings, identity and Key Vault references, started only when asked.

    Run by hand (the portal's "Run now"), it migrates the schema and nothing else; the control plane
    starts it with its own command line each time (`azure_seeding.execution_template`)."""
    region = d.region(org.region)
    return aca.Job(
        location=org.region,
        tags=tags,
        identity=_identities(identity_id, d),
        properties=aca.JobProperties(
            environment_id=region.environment_id,
            configuration=aca.JobConfiguration(
                trigger_type="Manual",
                replica_timeout=JOB_REPLICA_TIMEOUT,
                # No second try by the platform: the instance deletes the request as it reads it, so a
                # replica started again would find none. The control plane starts a new exchange instead.
                replica_retry_limit=0,
                manual_trigger_config=aca.JobConfigurationManualTriggerConfig(
                    replica_completion_count=1, parallelism=1
                ),
                **_runs_as_the_instance(d, identity_id, vault_url, vault_secrets),
            ),
            template=aca.JobTemplate(
                containers=[
                    aca.Container(
                        name=CONTAINER_NAME,
                        image=d.image,
                        command=[*INSTANCE_COMMAND, "migrate"],
                        env=_container_env(org, d, names, vault_url),
                        resources=aca.ContainerResources(cpu=d.cpu, memory=d.memory),
                    )
                ]
            ),
        ),
    )


def build_plan(org: OrgSpec, d: AzureDeployment, *, suspended: bool = False, min_replicas: int = 1) -> AzurePlan:
    """The plan for `org` (see the module docstring). Pure: no network, no credential."""
    if org.base_domain != d.base_domain:
        raise InvalidOrg(f"This deployment serves {d.base_domain}, not {org.base_domain}.")
    if not 0 <= min_replicas <= org.replicas_ceiling:
        raise InvalidOrg(f"Min replicas is {min_replicas}: use 0 to {org.replicas_ceiling} for this organisation.")
    region = d.region(org.region)
    names = OrgNames.of(org.slug, d.name_seed)
    sub, rg = d.subscription_id, d.resource_group
    tags = {_TAG: org.slug, "billy-plan": org.plan, "managed-by": "billy-controlplane"}

    identity_id = resource_id(
        subscription=sub,
        resource_group=rg,
        namespace="Microsoft.ManagedIdentity",
        type="userAssignedIdentities",
        name=names.identity,
    )
    vault_id = resource_id(
        subscription=sub, resource_group=rg, namespace="Microsoft.KeyVault", type="vaults", name=names.vault
    )
    vault_url = f"https://{names.vault}.{d.vault_domain}"
    role_definition_id = (
        f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleDefinitions/{KEY_VAULT_SECRETS_OFFICER}"
    )
    certificate_id = f"{region.environment_id}/managedCertificates/{names.certificate}"
    vault_secrets = _vault_secrets(org, d, names)

    relative = org.host.removesuffix(f".{d.zone_name}")
    app_fqdn = f"{names.app}.{region.environment_domain}"
    records = (
        DnsRecord(
            f"asuid.{relative}",
            "TXT",
            dns.RecordSet(ttl=3600, txt_records=[dns.TxtRecord(value=[d.domain_verification_id])]),
        ),
        DnsRecord(relative, "CNAME", dns.RecordSet(ttl=3600, cname_record=dns.CnameRecord(cname=app_fqdn))),
    )
    return AzurePlan(
        org=org,
        deployment=d,
        names=names,
        suspended=suspended,
        identity_id=identity_id,
        identity=msi.Identity(location=org.region, tags=tags),
        vault_id=vault_id,
        vault_url=vault_url,
        vault=kv.VaultCreateOrUpdateParameters(
            location=org.region,
            tags=tags,
            properties=kv.VaultProperties(
                tenant_id=d.tenant_id,
                sku=kv.Sku(family="A", name="standard"),
                enable_rbac_authorization=True,  # access is role assignments only, no access policies
                access_policies=[],
                enable_soft_delete=True,
                soft_delete_retention_in_days=SOFT_DELETE_DAYS,
                # Purge protection stays off: once on it cannot be turned off, and `destroy` must be
                # able to purge an organisation's secrets at day 30 rather than at retention's end.
                enabled_for_deployment=False,
                enabled_for_disk_encryption=False,
                enabled_for_template_deployment=False,
                public_network_access="Enabled",  # Container Apps without VNet reach it over the internet
            ),
        ),
        role_assignment_scope=vault_id,
        role_assignment_name=str(uuid.uuid5(_NAMESPACE, f"{vault_id}|{role_definition_id}|{identity_id}")),
        role_assignment=authz.RoleAssignmentCreateParameters(
            role_definition_id=role_definition_id,
            principal_id=PENDING_PRINCIPAL_ID,
            principal_type="ServicePrincipal",  # skips the directory lookup a brand-new identity may fail
            description=f"Agent Billy {org.slug}: the secrets of its own vault, nothing else",
        ),
        database_id=f"{region.postgres_server_id}/databases/{names.database}",
        database=pg.Database(properties=pg.DatabaseProperties(charset="UTF8", collation="en_US.utf8")),
        database_sql=role_sql(names.database, names.role),
        vault_secrets=vault_secrets,
        dns_records=records,
        certificate_id=certificate_id,
        certificate=aca.ManagedCertificate(
            location=org.region,
            tags=tags,
            properties=aca.ManagedCertificateProperties(subject_name=org.host, domain_control_validation="CNAME"),
        ),
        container_app_id=resource_id(
            subscription=sub, resource_group=rg, namespace="Microsoft.App", type="containerApps", name=names.app
        ),
        container_app=_container_app(
            org,
            d,
            names,
            identity_id=identity_id,
            vault_url=vault_url,
            certificate_id=certificate_id,
            vault_secrets=vault_secrets,
            min_replicas=min_replicas,
            suspended=suspended,
            tags=tags,
        ),
        job_id=resource_id(subscription=sub, resource_group=rg, namespace="Microsoft.App", type="jobs", name=names.job),
        job=_container_job(
            org, d, names, identity_id=identity_id, vault_url=vault_url, vault_secrets=vault_secrets, tags=tags
        ),
    )


# ---- apply: the plan, sent to Azure ----------------------------------------------------------


class SecretReader(Protocol):
    def get_secret(self, name: str) -> Any: ...
    def set_secret(self, name: str, value: str, **kwargs: Any) -> Any: ...
    def begin_delete_secret(self, name: str, **kwargs: Any) -> Any: ...
    def purge_deleted_secret(self, name: str, **kwargs: Any) -> Any: ...


@dataclass
class AzureClients:
    """The management clients `apply` uses, plus the two data-plane doors (vault secrets, PostgreSQL).

    Built from a credential by `connect`; tests pass recorders instead."""

    identities: Any
    vaults: Any
    authorization: Any
    postgres: Any
    dns: Any
    apps: Any
    secret_client: Callable[[str], SecretReader]
    connect_postgres: Callable[..., Any]
    propagation_wait: float = 10.0  # seconds between tries while a new role assignment propagates
    propagation_limit: float = 600.0
    execution_poll: float = 2.0  # seconds between looks at a job execution's answer and status
    # The longest wait for an answer: the job's own timeout, plus a minute for its replica to be scheduled.
    execution_limit: float = JOB_REPLICA_TIMEOUT + 60.0

    @classmethod
    def connect(cls, credential: TokenCredential, subscription_id: str) -> AzureClients:
        import psycopg2
        from azure.keyvault.secrets import SecretClient
        from azure.mgmt.appcontainers import ContainerAppsAPIClient
        from azure.mgmt.authorization import AuthorizationManagementClient
        from azure.mgmt.dns import DnsManagementClient
        from azure.mgmt.keyvault import KeyVaultManagementClient
        from azure.mgmt.msi import ManagedServiceIdentityClient
        from azure.mgmt.postgresqlflexibleservers import PostgreSQLManagementClient

        return cls(
            identities=ManagedServiceIdentityClient(credential, subscription_id),
            vaults=KeyVaultManagementClient(credential, subscription_id),
            authorization=AuthorizationManagementClient(credential, subscription_id, api_version="2022-04-01"),
            postgres=PostgreSQLManagementClient(credential, subscription_id),
            dns=DnsManagementClient(credential, subscription_id),
            apps=ContainerAppsAPIClient(credential, subscription_id),
            secret_client=lambda url: SecretClient(url, credential),
            connect_postgres=psycopg2.connect,
        )


def _still_propagating(exc: BaseException) -> bool:
    """A role assignment or identity Azure has not spread to every replica yet: 403 from the vault,
    PrincipalNotFound from ARM. Waiting is the documented remedy."""
    if not isinstance(exc, HttpResponseError):
        return False
    code = getattr(exc.error, "code", "") or ""
    return exc.status_code == 403 or code == "PrincipalNotFound"


def _patiently(clients: AzureClients, action: Callable[[], Any]) -> Any:
    retrying = Retrying(
        stop=stop_after_delay(clients.propagation_limit),
        wait=wait_fixed(clients.propagation_wait),
        retry=retry_if_exception(_still_propagating),
        reraise=True,
    )
    return retrying(action)


def _replaced(value: Any, swaps: Mapping[str, str]) -> Any:
    if isinstance(value, str):
        return swaps.get(value, value)
    if isinstance(value, list):
        return [_replaced(item, swaps) for item in value]
    if isinstance(value, dict):
        return {key: _replaced(item, swaps) for key, item in value.items()}
    return value


def app_for(plan: AzurePlan, client_id: str, *, certificate: bool = True) -> aca.ContainerApp:
    """The plan's Container App with the identity's client id in place; without `certificate`, its
    host added unbound (Azure issues a managed certificate only for a host an app already has)."""
    body = _replaced(json.loads(json.dumps(plan.container_app.as_dict())), {PENDING_CLIENT_ID: client_id})
    if not certificate:
        for domain in body["properties"]["configuration"]["ingress"]["customDomains"]:
            domain["bindingType"] = "Disabled"
            domain.pop("certificateId", None)
    return aca.ContainerApp(body)


SPEC_TAG = "billy-spec"  # a hash of the job as planned: unchanged, a writer call need not send it again


def job_for(plan: AzurePlan, client_id: str) -> aca.Job:
    """The plan's job with the identity's client id in place, tagged with a hash of itself."""
    body = _replaced(json.loads(json.dumps(plan.job.as_dict())), {PENDING_CLIENT_ID: client_id})
    spec = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    body["tags"] = {**body.get("tags", {}), SPEC_TAG: spec}
    return aca.Job(body)


def database_url(plan: AzurePlan, password: str) -> str:
    server = parse_resource_id(plan.region.postgres_server_id)["name"]
    host = f"{server}.{plan.deployment.postgres_domain}"
    role, db = plan.names.role, plan.names.database
    return f"postgresql+psycopg2://{role}:{quote(password, safe='')}@{host}:5432/{db}?sslmode=require"


def _run_admin_sql(clients: AzureClients, plan: AzurePlan, script: str, params: Mapping[str, str]) -> None:
    d = plan.deployment
    admin_password = clients.secret_client(d.operator_vault_url).get_secret(d.postgres_admin_secret).value
    server = parse_resource_id(plan.region.postgres_server_id)["name"]
    conn = clients.connect_postgres(
        host=f"{server}.{d.postgres_domain}",
        user=d.postgres_admin_user,
        password=admin_password,
        dbname="postgres",
        sslmode="require",
    )
    try:
        with conn, conn.cursor() as cursor:  # one transaction: all of the script or none
            cursor.execute(script, dict(params) or None)
    finally:
        conn.close()


def _vault_holds(clients: AzureClients, vault: Any, name: str) -> bool:
    """Whether the organisation's vault already holds `name` (asked again while access propagates)."""
    try:
        _patiently(clients, partial(vault.get_secret, name))
        return True
    except ResourceNotFoundError:
        return False


def _fill_vault(clients: AzureClients, plan: AzurePlan) -> None:
    """The organisation's secrets: its database login and its signing keys (each made once; kept on
    a re-run) and copies of the operator's shared ones."""
    vault = clients.secret_client(plan.vault_url)
    for secret in plan.vault_secrets:
        if secret.app_secret == DATABASE_URL_SECRET:
            if _vault_holds(clients, vault, secret.name):
                continue  # the role exists and the URL holds its password
            password = secrets.token_urlsafe(32)
            _run_admin_sql(clients, plan, plan.database_sql, {"password": password})
            _patiently(clients, partial(vault.set_secret, secret.name, database_url(plan, password)))
        elif secret.instance_key:
            if not _vault_holds(clients, vault, secret.name):  # kept: tokens already handed out stay valid
                _patiently(clients, partial(vault.set_secret, secret.name, secrets.token_urlsafe(48)))
        elif secret.operator_secret:
            operator = clients.secret_client(plan.deployment.operator_vault_url)
            value = operator.get_secret(secret.operator_secret).value
            _patiently(clients, partial(vault.set_secret, secret.name, value))
        elif not _vault_holds(clients, vault, secret.name):  # operator-provided (Redis): needed before the app
            raise ProvisioningError(
                f"{plan.org.slug} needs the secret {secret.name} ({secret.source}) in {plan.vault_url} "
                "before it can run more than one replica."
            )


def _env_of(plan: AzurePlan) -> tuple[str, str]:
    environment = parse_resource_id(plan.region.environment_id)
    return str(environment["resource_group"]), str(environment["name"])


def _apply_app(clients: AzureClients, plan: AzurePlan, client_id: str) -> None:
    """The Container App, its certificate, and its running state."""
    rg, name = plan.deployment.resource_group, plan.names.app
    apps = clients.apps
    env_rg, env_name = _env_of(plan)
    try:
        apps.managed_certificates.get(env_rg, env_name, plan.names.certificate)
    except ResourceNotFoundError:
        apps.container_apps.begin_create_or_update(rg, name, app_for(plan, client_id, certificate=False)).result()
        apps.managed_certificates.begin_create_or_update(
            env_rg, env_name, plan.names.certificate, plan.certificate
        ).result()
    result = apps.container_apps.begin_create_or_update(rg, name, app_for(plan, client_id)).result()
    if plan.suspended:
        apps.container_apps.begin_stop(rg, name).result()
    elif getattr(getattr(result, "properties", None), "running_status", None) == "Stopped":
        apps.container_apps.begin_start(rg, name).result()


def _apply_job(clients: AzureClients, plan: AzurePlan, client_id: str, *, unless_current: bool = False) -> None:
    """The organisation's job, created or brought up to date. `unless_current`: left alone when its
    spec tag says it is the planned one (each hand-over would otherwise wait for an ARM update)."""
    rg, name = plan.deployment.resource_group, plan.names.job
    job = job_for(plan, client_id)
    if unless_current:
        try:
            found = clients.apps.jobs.get(rg, name)
        except ResourceNotFoundError:
            found = None
        tags = getattr(found, "tags", None) or {}
        if found is not None and job.tags and tags.get(SPEC_TAG) == job.tags[SPEC_TAG]:
            return
    clients.apps.jobs.begin_create_or_update(rg, name, job).result()


def apply(
    plan: AzurePlan, credential: TokenCredential | None, subscription_id: str, *, clients: AzureClients | None = None
) -> InstanceInfo:
    """Create or update everything in `plan`, in dependency order; safe to run again after a failure.

    Needs only a credential, whose roles deploy/README.md lists (step 6). The tests run it against
    recording stand-ins for the clients, never against Azure."""
    d, n = plan.deployment, plan.names
    if subscription_id != d.subscription_id:
        raise ProvisioningError(f"The plan is for subscription {d.subscription_id}, not {subscription_id}.")
    if clients is None:
        if credential is None:
            raise ProvisioningError("apply needs an Azure credential.")
        clients = AzureClients.connect(credential, subscription_id)

    identity = clients.identities.user_assigned_identities.create_or_update(d.resource_group, n.identity, plan.identity)
    clients.vaults.vaults.begin_create_or_update(d.resource_group, n.vault, plan.vault).result()
    _assign_vault_role(clients, plan, identity.principal_id)

    server = parse_resource_id(plan.region.postgres_server_id)
    clients.postgres.databases.begin_create(
        server["resource_group"], server["name"], n.database, plan.database
    ).result()
    _fill_vault(clients, plan)

    zone = parse_resource_id(d.dns_zone_id)
    for record in plan.dns_records:
        clients.dns.record_sets.create_or_update(
            zone["resource_group"], zone["name"], record.name, record.type, record.record_set
        )
    _apply_app(clients, plan, identity.client_id)
    _apply_job(clients, plan, identity.client_id)
    return plan.info()


def _assign_vault_role(clients: AzureClients, plan: AzurePlan, principal_id: str) -> None:
    parameters = authz.RoleAssignmentCreateParameters.deserialize(plan.role_assignment.serialize())
    parameters.principal_id = principal_id
    try:
        _patiently(
            clients,
            lambda: clients.authorization.role_assignments.create(
                plan.role_assignment_scope, plan.role_assignment_name, parameters
            ),
        )
    except ResourceExistsError as exc:  # the same grant under another name: already in place
        if getattr(exc.error, "code", "") != "RoleAssignmentExists":
            raise


def _gone(action: Callable[[], Any]) -> None:
    """Run a delete; a resource already gone is what we wanted."""
    try:
        result = action()
        if hasattr(result, "result"):
            result.result()
    except ResourceNotFoundError:
        pass


def teardown(plan: AzurePlan, clients: AzureClients) -> Iterator[str]:
    """Delete the organisation's resources, the app first (it stops using the rest), yielding each
    resource as it goes. Its vault is purged, not only soft-deleted.

    Backups: the Flexible Server's automatic backups are server-wide; a dropped database stays
    restorable from them until the server's retention (7 days by default) has passed."""
    d, n = plan.deployment, plan.names
    apps = clients.apps
    env_rg, env_name = _env_of(plan)
    _gone(lambda: apps.container_apps.begin_delete(d.resource_group, n.app))
    yield plan.container_app_id
    _gone(lambda: apps.jobs.begin_delete(d.resource_group, n.job))
    yield plan.job_id
    _gone(lambda: apps.managed_certificates.delete(env_rg, env_name, n.certificate))
    yield plan.certificate_id
    zone = parse_resource_id(d.dns_zone_id)
    for record in plan.dns_records:
        _gone(partial(clients.dns.record_sets.delete, zone["resource_group"], zone["name"], record.name, record.type))
        yield f"{d.dns_zone_id}/{record.type}/{record.name}"
    server = parse_resource_id(plan.region.postgres_server_id)
    _gone(lambda: clients.postgres.databases.begin_delete(server["resource_group"], server["name"], n.database))
    _run_admin_sql(clients, plan, drop_role_sql(n.role), {})
    yield plan.database_id
    _gone(lambda: clients.authorization.role_assignments.delete(plan.role_assignment_scope, plan.role_assignment_name))
    _gone(lambda: clients.vaults.vaults.delete(d.resource_group, n.vault))
    _gone(lambda: clients.vaults.vaults.begin_purge_deleted(n.vault, plan.org.region))
    yield plan.vault_id
    _gone(lambda: clients.identities.user_assigned_identities.delete(d.resource_group, n.identity))
    yield plan.identity_id


@dataclass
class AzureProvisioner:
    """The `Provisioner` on Azure Container Apps. `plan` needs nothing; the rest needs a credential."""

    deployment: AzureDeployment
    credential: TokenCredential | None = None
    clients: AzureClients | None = field(default=None, repr=False)

    def plan(self, org: OrgSpec, *, suspended: bool = False, min_replicas: int = 1) -> AzurePlan:
        return build_plan(org, self.deployment, suspended=suspended, min_replicas=min_replicas)

    def _clients(self) -> AzureClients:
        if self.clients is None:
            if self.credential is None:
                raise ProvisioningError("This provisioner has no Azure credential: it can plan, not apply.")
            self.clients = AzureClients.connect(self.credential, self.deployment.subscription_id)
        return self.clients

    def _client_id(self, plan: AzurePlan) -> str:
        found = self._clients().identities.user_assigned_identities.get(
            self.deployment.resource_group, plan.names.identity
        )
        return str(found.client_id)

    def provision(self, org: OrgSpec) -> InstanceInfo:
        return apply(self.plan(org), self.credential, self.deployment.subscription_id, clients=self._clients())

    def scale(self, org: OrgSpec, replicas: int) -> InstanceInfo:
        plan = self.plan(org, min_replicas=replicas)
        _apply_app(self._clients(), plan, self._client_id(plan))
        return plan.info()

    def suspend(self, org: OrgSpec) -> InstanceInfo:
        plan = self.plan(org, suspended=True)
        _apply_app(self._clients(), plan, self._client_id(plan))
        return plan.info()

    def resume(self, org: OrgSpec) -> InstanceInfo:
        plan = self.plan(org)
        _apply_app(self._clients(), plan, self._client_id(plan))
        return plan.info()

    def destroy(self, org: OrgSpec) -> None:
        for _ in teardown(self.plan(org), self._clients()):
            pass

    # --- InstanceWriter: the instance's own commands, run as its job (controlplane/azure_seeding.py) ---

    def seed(self, org: OrgSpec, owner: OwnerSeed) -> str:
        """Organisation, Owner and trial written by the instance's `provision-org`; the password travels
        only inside the request secret in the organisation's own vault."""
        request = {
            "command": "provision-org",
            "org_name": owner.org_name,
            "plan": org.plan,
            "owner_email": owner.owner_email,
            "owner_name": owner.owner_name,
            "password": owner.password,
            "trial_ends_at": _iso(owner.trial_ends_at),
        }
        return self._handover_url(org, self._ask(org, request))

    def set_plan(self, org: OrgSpec, plan: str, *, trial_ends_at: datetime | None, plan_chosen: bool) -> None:
        if plan not in PLANS:
            raise ProvisioningError(f"Plan {plan!r} is not one of Billy's plans ({', '.join(PLANS)}).")
        request: dict[str, Any] = {"command": "set-plan", "plan": plan, "plan_chosen": plan_chosen}
        if trial_ends_at is not None:
            request["trial_ends_at"] = _iso(trial_ends_at)
        self._ask(org, request)

    def handover(self, org: OrgSpec) -> str:
        return self._handover_url(org, self._ask(org, {"command": "handover"}))

    def _ask(self, org: OrgSpec, request: dict[str, Any]) -> dict[str, Any]:
        from controlplane.azure_seeding import ask_instance  # it builds on this module

        plan = self.plan(org)
        clients = self._clients()
        client_id = self._client_id(plan)
        _apply_job(clients, plan, client_id, unless_current=True)
        return ask_instance(clients, plan, client_id, request)

    @staticmethod
    def _handover_url(org: OrgSpec, answer: Mapping[str, Any]) -> str:
        token = answer.get("handover_token")
        if not isinstance(token, str) or not token:
            raise ProvisioningError(f"{org.slug}'s instance gave no hand-over token.")
        return f"{org.public_url}/api/auth/handover?token={quote(token, safe='')}"


def _iso(at: datetime) -> str:
    if at.tzinfo is None:
        raise ProvisioningError("Times written into an instance are timezone-aware (UTC).")
    return at.astimezone(UTC).isoformat()
