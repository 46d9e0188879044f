"""Writing into an instance on Azure (controlplane/azure_seeding.py, `billy control-request`), issue 18.

The organisation's job is asserted as the plan's SDK models, with no Azure account. The instance's
side runs for real: `billy control-request` on a SQLite instance, with its local secret store and
with Key Vault (the fake vault, through the real SDK) standing in for the organisation's vault. The
control plane's side (`AzureProvisioner.seed`, `set_plan`, `handover`) runs against that same fake
vault, with recording stand-ins for the Container Apps client whose job start runs the execution's
command line in the instance; no password or token may reach ARM, a log or stdout.
"""

from __future__ import annotations

import io
import json
import logging
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.mgmt.appcontainers import models as aca
from sqlmodel import select

from controlplane.azure import (
    INSTANCE_COMMAND,
    PENDING_CLIENT_ID,
    SPEC_TAG,
    AzurePlan,
    AzureProvisioner,
    OrgNames,
    apply,
    job_for,
    teardown,
)
from controlplane.azure_seeding import COMMAND, Exchange, execution_template
from controlplane.provisioning import InstanceWriter, OwnerSeed, ProvisioningError
from devtools.fake_keyvault import FakeKeyVault
from services import handover, identity
from services.cli import main
from services.config import get_settings
from services.db import session_scope
from services.models import Member, Organization
from services.permissions import OWNER
from services.secrets import get_secret_store
from tests.conftest import Instance
from tests.log_capture import root_log
from tests.test_azure_plan import (
    CREDENTIALS_IN_URL,
    SUB,
    check_against_real_clients,
    deployment,
    main_container,
    org,
    plan_for,
    recorded_clients,
    steps,
)

PASSWORD = "quartz-lantern-harbour-1917"
TRIAL_END = datetime(2031, 3, 14, 12, 0, tzinfo=UTC)
CLIENT_ID = "22222222-aaaa-4bbb-8ccc-000000000002"  # what recorded_clients' identity answers
OWNER_SEED = OwnerSeed(
    org_name="Acme Ltd",
    owner_name="Wile E. Coyote",
    owner_email="Owner@Acme.example.com",
    password=PASSWORD,
    trial_ends_at=TRIAL_END,
)


def job(plan: AzurePlan) -> dict[str, Any]:
    return plan.job.as_dict()


# ---- the job, as planned ---------------------------------------------------------------------


def test_the_job_is_started_by_hand_only_once_at_a_time_and_bounded() -> None:
    config = job(plan_for())["properties"]["configuration"]
    assert config["triggerType"] == "Manual"
    assert config["manualTriggerConfig"] == {"replicaCompletionCount": 1, "parallelism": 1}
    assert "scheduleTriggerConfig" not in config and "eventTriggerConfig" not in config
    # No platform retry (the request is gone once read); a hung replica is stopped within minutes.
    assert config["replicaRetryLimit"] == 0
    assert 60 <= config["replicaTimeout"] <= 1800


def test_the_job_runs_the_apps_image_settings_identity_and_key_vault_references() -> None:
    plan = plan_for()
    body, app = job(plan), plan.container_app.as_dict()
    config, app_config = body["properties"]["configuration"], app["properties"]["configuration"]
    assert body["properties"]["environmentId"] == plan.region.environment_id
    assert body["location"] == "westeurope" and body["tags"]["billy-org"] == "acme"
    # The organisation's identity is its own; the shared pull identity pulls images and nothing else.
    assert body["identity"] == app["identity"]
    assert set(body["identity"]["userAssignedIdentities"]) == {plan.identity_id, plan.deployment.registry_identity_id}
    assert config["identitySettings"] == app_config["identitySettings"]
    assert {(s["identity"], s["lifecycle"]) for s in config["identitySettings"]} == {
        (plan.identity_id, "All"),
        (plan.deployment.registry_identity_id, "None"),
    }
    assert config["registries"] == app_config["registries"]
    # Secrets: Key Vault references into its own vault with its own identity, the app's very ones.
    assert config["secrets"] == app_config["secrets"] and config["secrets"]
    for secret in config["secrets"]:
        assert set(secret) == {"name", "keyVaultUrl", "identity"}, secret  # never a "value"
        assert secret["identity"] == plan.identity_id
        assert secret["keyVaultUrl"].startswith(f"{plan.vault_url}/secrets/{plan.names.secret_prefix}")
    (container,) = body["properties"]["template"]["containers"]
    assert container["image"] == main_container(plan)["image"] == plan.deployment.image
    assert container["env"] == main_container(plan)["env"]  # the instance's settings, the same store
    assert container["resources"] == main_container(plan)["resources"]
    assert {e["secretRef"] for e in container["env"] if "secretRef" in e} <= {s["name"] for s in config["secrets"]}
    # Run by hand it migrates; the control plane gives each execution its own command line.
    assert container["command"] == [*INSTANCE_COMMAND, "migrate"] == ["python", "-m", "services.cli", "migrate"]
    assert "args" not in container
    assert plan.to_arm()[plan.job_id] == body and plan.info().resources["job"] == plan.job_id
    assert (
        plan.job_id == f"/subscriptions/{SUB}/resourceGroups/billy-orgs/providers/Microsoft.App/jobs/{plan.names.job}"
    )


def test_no_secret_value_in_the_job_or_in_an_execution() -> None:
    plan = plan_for()
    exchange = Exchange.new()
    execution = execution_template(plan, CLIENT_ID, exchange).as_dict()
    (container,) = execution["containers"]
    assert container["command"] == ["python", "-m", "services.cli", COMMAND]
    # Only the two secrets' names travel on the command line.
    assert container["args"] == ["--request", exchange.request, "--answer", exchange.answer]
    assert re.fullmatch(r"control-request-[0-9a-f]{16}", exchange.request)
    assert exchange.answer == exchange.request.replace("request", "answer")
    assert Exchange.new() != exchange  # every exchange its own names
    expected_env = [
        {**e, "value": CLIENT_ID} if e.get("value") == PENDING_CLIENT_ID else e for e in main_container(plan)["env"]
    ]
    assert container["env"] == expected_env and container["image"] == plan.deployment.image
    for body in (job(plan), execution, job_for(plan, CLIENT_ID).as_dict()):
        text = json.dumps(body)
        assert not CREDENTIALS_IN_URL.search(text)
        assert "password" not in text.lower() and "token" not in text.lower()
        for env in [e for c in re.findall(r'"env": (\[.*?\])', text) for e in json.loads(c)]:
            assert "value" in env or set(env) == {"name", "secretRef"}, env


def test_job_names_fit_azure_rules_and_never_collide() -> None:
    slugs = ("abc", "a-b", "x" * 30, "abcdefghijklmnopqrstu-one", "abcdefghijklmnopqrstu-two", "a1-" * 9 + "a1z")
    names = [OrgNames.of(slug, "seed").job for slug in slugs]
    for name in names:
        assert re.fullmatch(r"[a-z][a-z0-9-]{0,30}[a-z0-9]", name) and "--" not in name, name
    assert len(set(names)) == len(names)
    a, b = plan_for("acme"), plan_for("acme-labs")
    assert a.job_id != b.job_id and a.names.job != a.names.app
    assert OrgNames.of("acme", "prod").job != OrgNames.of("acme", "staging").job


def test_the_jobs_spec_tag_changes_with_the_job_and_only_then() -> None:
    plan = plan_for()
    first, again = job_for(plan, CLIENT_ID), job_for(plan, CLIENT_ID)
    assert first.tags and again.tags and first.tags[SPEC_TAG] == again.tags[SPEC_TAG]
    assert PENDING_CLIENT_ID not in json.dumps(first.as_dict())
    newer = AzureProvisioner(deployment(image="billyacr.azurecr.io/billy:1.5.0")).plan(org())
    other_identity = job_for(plan, "33333333-aaaa-4bbb-8ccc-000000000003")
    for changed in (job_for(newer, CLIENT_ID), other_identity):
        assert changed.tags and changed.tags[SPEC_TAG] != first.tags[SPEC_TAG]


def test_apply_creates_the_job_after_the_app_and_destroy_removes_it_first_of_the_rest() -> None:
    plan = plan_for()
    clients, log, _, _ = recorded_clients()
    apply(plan, None, SUB, clients=clients)
    order = steps(log)
    assert order.index("apps.jobs.begin_create_or_update") > order.index("apps.container_apps.begin_create_or_update")
    (sent,) = [c.args[2] for c in log.apps.jobs.begin_create_or_update.mock_calls if c.args]
    assert CLIENT_ID in json.dumps(sent.as_dict()) and PENDING_CLIENT_ID not in json.dumps(sent.as_dict())
    check_against_real_clients(log)

    clients, log, _, _ = recorded_clients()
    gone = list(teardown(plan, clients))
    assert gone[:2] == [plan.container_app_id, plan.job_id]  # before the vault and identity it uses
    assert log.apps.jobs.begin_delete.call_args.args == ("billy-orgs", plan.names.job)
    check_against_real_clients(log)


# ---- the instance's side: `billy control-request` --------------------------------------------


def _members() -> list[tuple[str, str, str]]:
    with session_scope() as s:
        return sorted((m.email, m.name, m.role) for m in s.exec(select(Member)))


def _request(command: str, *, expires_in: float = 600, **fields: Any) -> str:
    expires = datetime.now(UTC) + timedelta(seconds=expires_in)
    return json.dumps({"command": command, **fields, "expires_at": expires.isoformat()})


SEED_FIELDS = {
    "org_name": "Acme Ltd",
    "plan": "pro",
    "owner_email": "Owner@Acme.example.com",
    "owner_name": "Wile E. Coyote",
    "password": PASSWORD,
    "trial_ends_at": TRIAL_END.isoformat(),
}


def _ask(capsys: pytest.CaptureFixture[str], request: str) -> tuple[int, dict[str, Any], str, str]:
    """What the job's execution does: `billy control-request` on a request the control plane stored.
    Returns (exit code, the stored answer, stdout, stderr); checks the request is gone."""
    store = get_secret_store()
    names = Exchange.new()
    store.set(names.request, request)
    code = main([COMMAND, "--request", names.request, "--answer", names.answer])
    out, err = capsys.readouterr()
    assert store.get(names.request) is None  # deleted as it was read
    raw = store.get(names.answer)
    assert raw is not None
    store.delete(names.answer)  # the control plane's part
    return code, json.loads(raw), out, err


def _signs_in(token: str) -> str:
    return identity.verify_access(handover.redeem_handover(token).access).email


def test_control_request_seeds_hands_over_and_sets_the_plan_through_the_secret_store(
    instance: Instance, capsys: pytest.CaptureFixture[str]
) -> None:
    code, answer, out, err = _ask(capsys, _request("provision-org", **SEED_FIELDS))
    assert (code, out, err) == (0, "", "")  # stdout is the job's log on Azure: nothing there
    assert set(answer) == {"handover_token", "expires_at"}
    with session_scope() as s:
        row = s.get(Organization, 1)
        assert row is not None and (row.name, row.plan, row.trial_ends_at) == ("Acme Ltd", "pro", TRIAL_END)
    assert _members() == [("owner@acme.example.com", "Wile E. Coyote", OWNER)]
    assert _signs_in(answer["handover_token"]) == "owner@acme.example.com"
    identity.login("owner@acme.example.com", PASSWORD)  # the password in the request is the Owner's
    # Nowhere in the instance's folder in the clear: not the store, not the (encrypted) secrets.
    files = [f for f in instance.data_dir.rglob("*") if f.is_file()]
    assert files and not [f for f in files if PASSWORD.encode() in f.read_bytes()]

    # Again (the control plane retried): nothing doubles, a fresh token.
    code, again, _, _ = _ask(capsys, _request("provision-org", **SEED_FIELDS))
    assert code == 0 and again["handover_token"] != answer["handover_token"]
    assert _members() == [("owner@acme.example.com", "Wile E. Coyote", OWNER)]

    code, fresh, out, _ = _ask(capsys, _request("handover"))
    assert code == 0 and out == "" and _signs_in(fresh["handover_token"]) == "owner@acme.example.com"

    ended = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    code, plan_line, _, _ = _ask(
        capsys, _request("set-plan", plan="business", trial_ends_at=ended.isoformat(), plan_chosen=True)
    )
    assert code == 0 and plan_line == {"plan": "business", "trial_ends_at": ended.isoformat(), "plan_chosen": True}
    code, plan_line, _, _ = _ask(capsys, _request("set-plan", plan="starter"))
    assert code == 0 and plan_line["plan"] == "starter" and plan_line["plan_chosen"] is True  # unchanged


@pytest.mark.parametrize(
    ("request_text", "says"),
    [
        (_request("provision-org", **{**SEED_FIELDS, "password": "password123"}), "password"),
        (_request("provision-org", **{**SEED_FIELDS, "password": ""}), "no password"),
        (_request("provision-org", expires_in=-1, **SEED_FIELDS), "expired"),
        (_request("provision-org", **{**SEED_FIELDS, "admin": True}), "unexpected fields: admin"),
        (_request("provision-org", **{k: v for k, v in SEED_FIELDS.items() if k != "plan"}), "lacks"),
        (_request("provision-org", **{**SEED_FIELDS, "trial_ends_at": "2031-03-14T12:00:00"}), "time zone"),
        (_request("provision-org", **{**SEED_FIELDS, "plan": "gold"}), "plan"),
        (_request("drop-everything"), "does not run 'drop-everything'"),
        (json.dumps(["provision-org"]), "not a json object"),
        (_request("set-plan", plan="pro", plan_chosen="yes"), "true or false"),
    ],
    ids=[
        "weak password",
        "no password",
        "expired",
        "unknown field",
        "missing field",
        "time without zone",
        "unknown plan",
        "unknown command",
        "not an object",
        "plan_chosen not a boolean",
    ],
)
def test_control_request_refuses_and_says_why_in_the_answer(
    instance: Instance, capsys: pytest.CaptureFixture[str], request_text: str, says: str
) -> None:
    code, answer, out, err = _ask(capsys, request_text)
    assert code == 2 and out == "" and set(answer) == {"error"}
    assert says in answer["error"].lower(), answer
    assert answer["error"] in err  # the job's log says why too, in the same words
    assert PASSWORD not in answer["error"] + err
    assert _members() == []


def test_control_request_without_its_request_answers_so(instance: Instance, capsys: pytest.CaptureFixture[str]) -> None:
    names = Exchange.new()
    assert main([COMMAND, "--request", names.request, "--answer", names.answer]) == 2
    raw = get_secret_store().get(names.answer)
    assert raw is not None and "no request" in json.loads(raw)["error"].lower()
    assert capsys.readouterr().out == ""


# ---- the same, with the organisation's Key Vault as the instance's store ----------------------


@pytest.fixture
def vault_instance(
    instance: Instance, fake_vault: FakeKeyVault, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FakeKeyVault]:
    """The instance as its job runs on Azure: secrets in Key Vault (the fake, through the real SDK and
    the managed identity's token endpoint), under the organisation's prefix."""
    monkeypatch.setenv("BILLY_SECRET_STORE", "azure")
    monkeypatch.setenv("BILLY_KEY_VAULT_URL", fake_vault.url)
    monkeypatch.setenv("BILLY_KEY_VAULT_CA_FILE", fake_vault.ca_file)
    monkeypatch.setenv("BILLY_KEY_VAULT_SECRET_PREFIX", "acme-")
    get_settings.cache_clear()
    get_secret_store.cache_clear()
    yield fake_vault
    get_secret_store.cache_clear()
    get_settings.cache_clear()


def control_plane_vault(vault: FakeKeyVault) -> Any:
    """The control plane's own client for the organisation's vault (azure.AzureClients.secret_client)."""
    from azure.identity import ManagedIdentityCredential
    from azure.keyvault.secrets import SecretClient

    return SecretClient(vault.url, ManagedIdentityCredential(), connection_verify=vault.ca_file, retry_total=0)


def test_control_request_reads_and_answers_through_key_vault(
    vault_instance: FakeKeyVault, capsys: pytest.CaptureFixture[str]
) -> None:
    names = Exchange.new()
    vault = control_plane_vault(vault_instance)
    expires = datetime.now(UTC) + timedelta(minutes=10)
    vault.set_secret(f"acme-{names.request}", _request("provision-org", **SEED_FIELDS), expires_on=expires)
    assert main([COMMAND, "--request", names.request, "--answer", names.answer]) == 0
    assert capsys.readouterr().out == ""
    assert f"acme-{names.request}" not in vault_instance.names()
    assert f"acme-{names.request}" in vault_instance.deleted_names()  # the control plane purges it next
    answer = json.loads(vault.get_secret(f"acme-{names.answer}").value)
    assert _signs_in(answer["handover_token"]) == "owner@acme.example.com"
    identity.login("owner@acme.example.com", PASSWORD)
    vault.close()


# ---- the control plane's side: AzureProvisioner as an InstanceWriter ---------------------------


class RecordingVault:
    """The control plane's vault client, recording what it writes (names, options, values)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.written: list[tuple[str, str, dict[str, Any]]] = []

    def set_secret(self, name: str, value: str, **kwargs: Any) -> Any:
        self.written.append((name, value, kwargs))
        return self.client.set_secret(name, value, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


@pytest.fixture
def azure(vault_instance: FakeKeyVault) -> Iterator[Any]:
    """An AzureProvisioner whose vault is the fake and whose Container Apps client records; starting
    the job runs the execution's command line in the instance, as the platform would."""
    clients, log, _, _ = recorded_clients(certificate_exists=True)
    vault = RecordingVault(control_plane_vault(vault_instance))
    plan = plan_for()
    clients.secret_client = lambda url: vault if url == plan.vault_url else pytest.fail(f"another vault: {url}")
    clients.execution_poll = 0.01
    statuses: list[str] = []
    behaviour: dict[str, Any] = {"run": True, "status": None}

    def start(resource_group: str, job_name: str, template: Any = None) -> Any:
        assert (resource_group, job_name) == ("billy-orgs", plan.names.job)
        (container,) = template.containers
        assert container.command == [*INSTANCE_COMMAND, COMMAND]
        if behaviour["run"]:
            argv = [*container.command[len(INSTANCE_COMMAND) :], *container.args]  # command, then args
            statuses.append("Succeeded" if main(argv) == 0 else "Failed")
        name = f"{plan.names.job}-{uuid.uuid4().hex[:7]}"
        return SimpleNamespace(result=lambda: SimpleNamespace(name=name, id=f"{plan.job_id}/executions/{name}"))

    def execution(resource_group: str, job_name: str, name: str) -> Any:
        status = behaviour["status"] or (statuses[-1] if statuses else "Running")
        return aca.JobExecution({"name": name, "properties": {"status": status}})  # as the SDK returns it

    log.apps.jobs.begin_start.side_effect = start
    log.apps.job_execution.side_effect = execution
    yield SimpleNamespace(
        provisioner=AzureProvisioner(deployment(), clients=clients),
        clients=clients,
        log=log,
        vault=vault,
        fake=vault_instance,
        plan=plan,
        behaviour=behaviour,
    )
    vault.client.close()


def _token(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://acme.agentbilly.ai/api/auth/handover"
    (token,) = parse_qs(parts.query)["token"]
    return token


def _no_exchange_left(fake: FakeKeyVault) -> None:
    """Both secrets of every exchange are gone for good: not live, not in the soft-delete bin."""
    assert not [n for n in fake.names() + fake.deleted_names() if "control-" in n], (
        fake.names(),
        fake.deleted_names(),
    )


@pytest.fixture
def every_record() -> Iterator[io.StringIO]:
    with root_log(logging.DEBUG, handler_level=logging.DEBUG) as stream:
        yield stream


def test_seed_runs_the_instances_command_as_its_job_and_hands_over(
    azure: Any, every_record: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    provisioner: AzureProvisioner = azure.provisioner
    assert isinstance(provisioner, InstanceWriter)
    url = provisioner.seed(org(), OWNER_SEED)
    token = _token(url)
    # The instance has its organisation and Owner, and the address signs the Owner in, once.
    assert _members() == [("owner@acme.example.com", "Wile E. Coyote", OWNER)]
    assert _signs_in(token) == "owner@acme.example.com"
    identity.login("owner@acme.example.com", PASSWORD)

    # The job was brought up to date, then started once with the exchange's names.
    log = azure.log
    assert steps(log).index("apps.jobs.begin_create_or_update") < steps(log).index("apps.jobs.begin_start")
    (start,) = log.apps.jobs.begin_start.mock_calls
    (container,) = start.kwargs["template"].containers
    request_name, answer_name = container.args[1], container.args[3]
    # The request went into the organisation's vault under its prefix, with an expiry, as JSON.
    ((name, value, options),) = azure.vault.written
    assert name == f"acme-{request_name}" and PASSWORD in value
    assert json.loads(value)["command"] == "provision-org"
    assert timedelta(minutes=9) < options["expires_on"] - datetime.now(UTC) <= timedelta(minutes=10)
    assert options["content_type"] == "application/json"
    # Both secrets purged, not only deleted.
    _no_exchange_left(azure.fake)
    assert answer_name.startswith("control-answer-")

    # Neither the password nor the token reached ARM, a log record or the terminal.
    sent_to_arm = repr(log.mock_calls) + json.dumps(
        [c.kwargs["template"].as_dict() for c in log.apps.jobs.begin_start.mock_calls]
        + [c.args[2].as_dict() for c in log.apps.jobs.begin_create_or_update.mock_calls if c.args]
    )
    out, err = capsys.readouterr()
    for secret in (PASSWORD, token):
        assert secret not in sent_to_arm and secret not in every_record.getvalue() and secret not in out + err
    assert "acme: running provision-org as job execution" in every_record.getvalue()  # the log says what ran
    check_against_real_clients(log)


def test_handover_and_set_plan_skip_the_job_update_when_it_is_current(azure: Any) -> None:
    provisioner: AzureProvisioner = azure.provisioner
    first = _token(provisioner.seed(org(), OWNER_SEED))
    log = azure.log
    log.apps.jobs.get.return_value = SimpleNamespace(tags=dict(job_for(azure.plan, CLIENT_ID).tags or {}))
    updates = len(log.apps.jobs.begin_create_or_update.mock_calls)

    fresh = _token(provisioner.handover(org()))
    assert fresh != first and _signs_in(fresh) == "owner@acme.example.com"
    with pytest.raises(handover.LinkInvalid):  # the newest hand-over replaces the one before
        handover.redeem_handover(first)

    provisioner.set_plan(org(), "business", trial_ends_at=TRIAL_END + timedelta(days=3), plan_chosen=True)
    with session_scope() as s:
        row = s.get(Organization, 1)
        assert row is not None and row.plan == "business" and row.plan_chosen_at is not None
        assert row.trial_ends_at == TRIAL_END + timedelta(days=3)
    assert len(log.apps.jobs.begin_create_or_update.mock_calls) == updates  # no ARM update: it was current
    assert len(log.apps.jobs.begin_start.mock_calls) == 3
    _no_exchange_left(azure.fake)
    with pytest.raises(ProvisioningError, match="not one of Billy's plans"):
        provisioner.set_plan(org(), "gold", trial_ends_at=None, plan_chosen=True)
    assert len(log.apps.jobs.begin_start.mock_calls) == 3


def test_a_refusal_comes_back_in_the_instances_words(azure: Any) -> None:
    weak = OwnerSeed(**{**OWNER_SEED.__dict__, "password": "password123"})
    with pytest.raises(ProvisioningError, match=r"acme's instance refused `provision-org`: .*password") as refused:
        azure.provisioner.seed(org(), weak)
    assert "password123" not in refused.value.message
    assert _members() == []
    _no_exchange_left(azure.fake)


@pytest.mark.parametrize(
    ("status", "limit", "says"),
    [
        ("Failed", 5.0, r"ended \(Failed\) without an answer"),
        ("Running", 0.05, "gave no answer within 0 seconds"),
    ],
    ids=["failed", "timed out"],
)
def test_an_execution_without_an_answer_fails_and_leaves_nothing_in_the_vault(
    azure: Any, status: str, limit: float, says: str
) -> None:
    azure.behaviour.update(run=False, status=status)  # the instance never ran (image pull failed, say)
    azure.clients.execution_limit = limit
    with pytest.raises(ProvisioningError, match=says):
        azure.provisioner.seed(org(), OWNER_SEED)
    _no_exchange_left(azure.fake)  # the unread request (with the password) is purged all the same
    stopped = azure.log.apps.jobs.begin_stop_execution.mock_calls
    assert len(stopped) == (1 if status == "Running" else 0)
    check_against_real_clients(azure.log)


def test_an_azure_provisioner_without_credentials_cannot_write_into_an_instance() -> None:
    with pytest.raises(ProvisioningError, match="can plan, not apply"):
        AzureProvisioner(deployment()).handover(org())
