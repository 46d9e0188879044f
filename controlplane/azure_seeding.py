"""Writing into an organisation's instance on Azure: its own command, run as its job, with the
request and the answer passing through its own Key Vault (`InstanceWriter` for `AzureProvisioner`).

One exchange, for `seed`, `set_plan` or `handover`:

    control plane                          organisation's vault            the job's execution
    ─────────────                          ────────────────────            ───────────────────
    set {prefix}control-request-<nonce>  →  JSON, expires in 10 min
    start the job, its command line:                                    →  billy control-request
      --request control-request-<nonce>                                      --request … --answer …
      --answer control-answer-<nonce>       read, then deleted at once  ←  (its own identity)
                                            {prefix}control-answer-<nonce> ← seeds, writes the answer
    read the answer (polling), then delete and purge both secrets

Why this shape:

- **Nothing secret leaves the vault.** The Owner's password and the hand-over token exist only in
  the request and answer secrets of the organisation's own vault (which only its identity and the
  control plane can read), in this process's memory, and in the instance. The job's definition,
  the execution's command line and every log line carry secret *names*; the control plane's
  database never sees either value. Both secrets are purged after each exchange, not only deleted:
  a soft-deleted secret stays recoverable for the vault's retention (7 days).
- **The instance reads the request itself, through its secret store** (services/secrets.py), not
  as a Key Vault reference in the job's env. Container Apps resolves a reference when the job is
  created or updated and refreshes it only about every 30 minutes, so a request written a moment
  before an execution would not reliably reach it, and a pinned version would mean updating the
  job (an ARM round trip) for every exchange. Reading by name also lets every exchange use its own
  names (a nonce), so two at once (two tabs opening the instance) never read each other's answer.
- **The request is deleted as it is read**, and the job has no platform retry: a request runs at
  most once, and a stale one can never be replayed. It also says when it stops being valid
  (`expires_at`, checked by the instance: Key Vault keeps serving a secret past its `expires_on`,
  which is set too, for operators and policies).
- **The hand-over token comes back through the vault rather than being made here.** It is signed
  with the instance's own key (`services.signing.instance_key`), which lives in the instance's
  secret store; the control plane could only make one by reading that key, which would let it mint
  any of the instance's links and tokens forever, or by the instance trusting an unsigned token
  (a second kind of link for one purpose). The answer secret costs one read and one purge.
- **The password, not a hash, goes in.** The instance checks it against its password policy and
  hashes it with its own parameters, as at any other signup; the control plane holding the hashing
  code would tie two deployables to one format. It sits in the vault for the seconds the job takes.

The answer is the JSON line the stdin form prints (services/cli.py), or `{"error": ...}` when the
instance refused the request (a weak password, a plan the team does not fit), which becomes a
`ProvisioningError` in the instance's words.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError, HttpResponseError, ResourceNotFoundError
from azure.mgmt.appcontainers import models as aca
from tenacity import (
    Retrying,
    retry_if_exception,
    retry_if_exception_type,
    stop_after_attempt,
    stop_after_delay,
    wait_fixed,
)

from controlplane.azure import (
    CONTAINER_NAME,
    INSTANCE_COMMAND,
    AzureClients,
    AzurePlan,
    SecretReader,
    _patiently,
    job_for,
)
from controlplane.provisioning import ProvisioningError

log = logging.getLogger("billy.controlplane.azure")

COMMAND = "control-request"  # services/cli.py
REQUEST_SECRET = "control-request"
ANSWER_SECRET = "control-answer"
REQUEST_LIFETIME = timedelta(minutes=10)  # longer than the control plane waits (AzureClients.execution_limit)
ENDED_BADLY = frozenset({"Failed", "Stopped", "Degraded"})  # JobExecutionRunningState values with no answer to come


@dataclass(frozen=True)
class Exchange:
    """The two secret names of one exchange, as the instance's secret store names them (without the
    organisation's prefix, which its store adds)."""

    request: str
    answer: str

    @classmethod
    def new(cls) -> Exchange:
        nonce = secrets.token_hex(8)
        return cls(f"{REQUEST_SECRET}-{nonce}", f"{ANSWER_SECRET}-{nonce}")


def execution_template(plan: AzurePlan, client_id: str, exchange: Exchange) -> aca.JobExecutionTemplate:
    """One execution of the organisation's job: its container as planned, running `billy control-request`
    with the exchange's secret names (names only: the values stay in the vault)."""
    job = job_for(plan, client_id)
    assert job.properties and job.properties.template and job.properties.template.containers  # built so by the plan
    (container,) = [c for c in job.properties.template.containers if c.name == CONTAINER_NAME]
    return aca.JobExecutionTemplate(
        containers=[
            aca.JobExecutionContainer(
                name=container.name,
                image=container.image,
                command=[*INSTANCE_COMMAND, COMMAND],
                args=["--request", exchange.request, "--answer", exchange.answer],
                env=container.env,
                resources=container.resources,
            )
        ]
    )


def ask_instance(
    clients: AzureClients,
    plan: AzurePlan,
    client_id: str,
    request: Mapping[str, Any],
    *,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Run `request` (`{"command": ..., ...}`) in the instance through its job; its answer.

    The job must exist (`azure._apply_job`). Raises `ProvisioningError` when the instance refuses the
    request, the execution ends without an answer, or no answer comes within `clients.execution_limit`."""
    exchange = Exchange.new()
    prefix, slug, command = plan.names.secret_prefix, plan.org.slug, str(request.get("command", ""))
    vault = clients.secret_client(plan.vault_url)
    expires = (now or datetime.now(UTC)) + REQUEST_LIFETIME
    body = json.dumps({**request, "expires_at": expires.isoformat()})
    try:
        _patiently(
            clients,
            lambda: vault.set_secret(
                prefix + exchange.request, body, expires_on=expires, content_type="application/json"
            ),
        )
        started = clients.apps.jobs.begin_start(
            plan.deployment.resource_group, plan.names.job, template=execution_template(plan, client_id, exchange)
        ).result()
        execution = str(started.name)
        log.info("%s: running %s as job execution %s", slug, command, execution)
        answer = _await_answer(clients, plan, vault, prefix + exchange.answer, execution, command)
    finally:
        for name in (exchange.request, exchange.answer):
            _erase(clients, vault, prefix + name)
    error = answer.get("error")
    if error:
        raise ProvisioningError(f"{slug}'s instance refused `{command}`: {error}")
    return answer


class _NoAnswerYet(Exception):
    """The execution is still going and has written no answer."""


def _await_answer(
    clients: AzureClients, plan: AzurePlan, vault: SecretReader, answer: str, execution: str, command: str
) -> dict[str, Any]:
    """The answer as soon as it is in the vault (a hand-over token lives 60 seconds, so this does not
    wait for the execution's status to catch up); an execution that ended without one is a failure."""
    slug, rg, job = plan.org.slug, plan.deployment.resource_group, plan.names.job

    def look() -> dict[str, Any]:
        found = _read(vault, answer)
        if found is not None:
            return found
        state = getattr(clients.apps.job_execution(rg, job, execution).properties, "status", None)
        status = str(getattr(state, "value", state) or "")  # str() of the SDK's enum is its class-qualified name
        if status in ENDED_BADLY or status == "Succeeded":
            found = _read(vault, answer)  # written just before it ended, between the two looks
            if found is not None:
                return found
            raise ProvisioningError(
                f"{slug}'s `{command}` ended ({status}) without an answer: see job execution {execution} "
                f"of {job} in the Azure portal."
            )
        raise _NoAnswerYet(status)

    retrying = Retrying(
        stop=stop_after_delay(clients.execution_limit),
        wait=wait_fixed(clients.execution_poll),
        retry=retry_if_exception_type(_NoAnswerYet),
        reraise=True,
    )
    try:
        result: dict[str, Any] = retrying(look)
    except _NoAnswerYet:
        try:
            clients.apps.jobs.begin_stop_execution(rg, job, execution)  # its request is purged below anyway
        except AzureError as exc:
            log.warning("%s: could not stop job execution %s (%s)", slug, execution, type(exc).__name__)
        raise ProvisioningError(
            f"{slug}'s `{command}` gave no answer within {clients.execution_limit:.0f} seconds "
            f"(job execution {execution} of {job})."
        ) from None
    return result


def _read(vault: SecretReader, name: str) -> dict[str, Any] | None:
    try:
        raw = vault.get_secret(name).value
    except ResourceNotFoundError:
        return None
    try:
        answer = json.loads(raw)
    except (TypeError, ValueError):
        answer = None
    if not isinstance(answer, dict):
        raise ProvisioningError(f"The instance's answer in {name} is not a JSON object.")
    return answer


def _being_deleted(exc: BaseException) -> bool:
    return isinstance(exc, HttpResponseError) and exc.status_code == 409


def _erase(clients: AzureClients, vault: SecretReader, name: str) -> None:
    """Delete and purge `name`, whether or not it (still) exists; a failure is logged, never raised, so
    it cannot hide the exchange's own outcome. Purging needs the secrets purge permission, which Key
    Vault Secrets Officer (the control plane's role on the organisations' vaults) includes."""
    try:
        with contextlib.suppress(ResourceNotFoundError):  # never written, or the instance deleted it already
            # Polled faster than the SDK's 2 s: this runs before a 60-second hand-over token is returned.
            vault.begin_delete_secret(name, _polling_interval=0.25).wait()

        def purge() -> None:
            with contextlib.suppress(ResourceNotFoundError):  # never written, or purged already
                vault.purge_deleted_secret(name)

        Retrying(  # a deletion still under way answers 409 for a moment
            stop=stop_after_attempt(10),
            wait=wait_fixed(min(clients.execution_poll, 1.0)),
            retry=retry_if_exception(_being_deleted),
            reraise=True,
        )(purge)
    except AzureError as exc:
        log.warning("could not purge secret %s from its vault (%s): purge it by hand", name, type(exc).__name__)
