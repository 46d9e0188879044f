"""Spend alerts (issue 15): velocity rules, read off the audit log, raise alerts for the Owner.

Every rule has a default here (`DEFAULT_RULES`) and, once the Owner tunes it, a row of
`velocity_rule` (threshold, on or off):

- `refunds_per_hour`: one member or agent token made more than N refunds in an hour;
- `amount_per_hour`: ... refunded more than $X (minor units, USD) in an hour;
- `unusual_rate`: ... made more refunds in an hour than N × their hourly mean over the last 14
  days, and at least `UNUSUAL_FLOOR`;
- `same_customer`: one customer was refunded N times in 24 hours (by anyone);
- `outside_hours`: a refund made outside working hours (09:00–18:00, Monday to Friday, in the
  organisation's time zone);
- `failed_attempts`: one member was refused N times in an hour (cap or budget refusals, denied
  and forged events: every `denied` row).

The audit log is the one source: every refund and every refusal is there, whatever the door.
`evaluate_new` reads the rows after `alert_cursor`, raises what they call for and moves the
cursor, in one transaction; an alert's `dedupe_key` keeps a second look at the same rows from
raising it again. It runs right after each refund or refusal is recorded (`audit.after_record`)
and every half minute (`catch_up`), so a crash between a refund and its alert still alerts when
the instance is back. Each new alert is mailed to the Owner (at least once: `emailed_at` is set
after the send), shown on their open pages (a store-change notice) and recorded in the audit
log with the rows that triggered it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlmodel import Session, col, select

from services import audit, clock, notices, timezones
from services.audit import AuditDraft
from services.audit_viewer import IDS_MAX
from services.config import get_settings
from services.db import session_scope
from services.errors import ValidationFailed
from services.mailer import MailDeliveryFailed, OutgoingMail, get_mailer
from services.models import (
    AlertCursor,
    AuditEntry,
    Member,
    Organization,
    RefundSpend,
    SpendAlert,
    StripeCharge,
    VelocityRule,
)
from services.money import format_money
from services.permissions import OWNER, Actor, authorize, can

log = logging.getLogger(__name__)

# Defaults, for a small billing team: a Clerk's whole day ($500 budget, $100 cap) is five full
# refunds, so ten in one hour is far from normal; $2,000 an hour is eight Manager-sized refunds'
# worth of a Clerk's day; three refunds to one customer in a day is rare outside a mistake.
DEFAULT_RULES: dict[str, int] = {
    "refunds_per_hour": 10,
    "amount_per_hour": 2_000_00,
    "unusual_rate": 3,
    "same_customer": 3,
    "outside_hours": 1,
    "failed_attempts": 3,
}
RULE_WORDS = {
    "refunds_per_hour": "refunds by one person or agent in an hour, more than",
    "amount_per_hour": "refunded by one person or agent in an hour, more than (USD)",
    "unusual_rate": "refunds in an hour, more than this many times the person's usual hourly rate",
    "same_customer": "refunds to one customer in 24 hours, at least",
    "outside_hours": "refunds outside working hours (09:00–18:00 on weekdays) alert",
    "failed_attempts": "refused attempts by one person in an hour, at least",
}
UNUSUAL_FLOOR = 5
USUAL_OVER = timedelta(days=14)
HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
WORKING_HOURS = (9, 18)
REFUND = "charges.refund"
BATCH = 500
NOTICE_KIND = "spend_alert"
CATCH_UP_SECONDS = 30

_evaluating = threading.local()  # an alert's own audit row must not evaluate again, inside


@dataclass(frozen=True)
class Raised:
    """An alert to raise: `key` makes it once-only."""

    kind: str
    key: str
    summary: str
    row: AuditEntry
    audit_ids: list[int]
    customer_id: str | None = None


def rules(session: Session) -> dict[str, VelocityRule]:
    """Every rule: the Owner's row where there is one, else the default (on)."""
    tuned = {rule.kind: rule for rule in session.exec(select(VelocityRule))}
    return {kind: tuned.get(kind) or VelocityRule(kind=kind, threshold=value) for kind, value in DEFAULT_RULES.items()}


def set_rule(actor: Actor, kind: str, threshold: int, enabled: bool = True) -> VelocityRule:
    """The Owner tunes one rule: its threshold (a count, or minor units for an amount) and on/off."""
    with audit.audited(actor, "spend.manage", f"rule:{str(kind)[:30]}") as draft:
        authorize(actor, "spend.manage")
        if kind not in DEFAULT_RULES:
            raise ValidationFailed(f"There is no rule {str(kind)[:30]!r}.")
        if not isinstance(threshold, int) or isinstance(threshold, bool) or threshold < 1:
            raise ValidationFailed("A rule's threshold is a whole number of at least 1.")
        with session_scope() as session:
            row = session.get(VelocityRule, kind) or VelocityRule(kind=kind, threshold=DEFAULT_RULES[kind])
            draft.details.update(rule=kind, before=row.threshold, after=threshold, enabled=bool(enabled))
            row.threshold, row.enabled = threshold, bool(enabled)
            row.updated_by, row.updated_at = actor.user_id, clock.now()
            session.add(row)
        return row


def time_zone(actor: Actor) -> str:
    """The organisation's zone: working hours (the `outside_hours` rule) are read in it."""
    authorize(actor, "spend.view")
    with session_scope() as session:
        return _zone(session).key


def set_time_zone(actor: Actor, zone: str) -> str:
    """The Owner sets the organisation's zone, so 09:00–18:00 means the team's own working day."""
    with audit.audited(actor, "spend.manage", "time_zone") as draft:
        authorize(actor, "spend.manage")
        chosen = timezones.known_zone(zone)
        if chosen is None:
            raise ValidationFailed("Choose a time zone from the list, such as Europe/London or America/New_York.")
        with session_scope() as session:
            org = session.get(Organization, 1)
            if org is None:
                raise ValidationFailed("Create the organisation first.")
            draft.details.update(setting="time_zone", before=org.time_zone, after=chosen)
            org.time_zone = chosen
            session.add(org)
        return chosen


def _zone(session: Session) -> ZoneInfo:
    org = session.get(Organization, 1)
    try:
        return ZoneInfo(org.time_zone if org else "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _who(row: AuditEntry) -> str:
    token = _token(row)
    return f"{row.actor_email}'s agent {token}" if token else row.actor_email


def _token(row: AuditEntry) -> str | None:
    return row.details.get("agent_token") if isinstance(row.details, dict) else None


def _actor_key(row: AuditEntry) -> str:
    token = _token(row)
    return f"token:{token}" if token else f"member:{row.actor_id}"


def _same_refunder(row: AuditEntry, since: datetime) -> list[sa.ColumnElement[bool]]:
    """The same person's successful refunds (through the same agent token, when the row came
    through one) from `since` up to and including `row`."""
    where = [
        col(AuditEntry.action) == REFUND,
        col(AuditEntry.outcome) == "ok",
        col(AuditEntry.actor_id) == row.actor_id,
        col(AuditEntry.at) > since,
        col(AuditEntry.id) <= (row.id or 0),
    ]
    token = _token(row)
    if token is not None:
        where.append(col(AuditEntry.details)["agent_token"].as_string() == token)
    return where


def _refunds_before(session: Session, row: AuditEntry, since: datetime) -> list[AuditEntry]:
    return list(session.exec(select(AuditEntry).where(*_same_refunder(row, since))))


def _count_refunds_before(session: Session, row: AuditEntry, since: datetime) -> int:
    """As `_refunds_before`, counted by the database: 14 days of rows are never loaded."""
    counted = select(sa.func.count()).select_from(AuditEntry).where(*_same_refunder(row, since))
    return int(session.exec(counted).one())


def _on_refund(session: Session, row: AuditEntry, active: dict[str, VelocityRule]) -> Iterator[Raised]:
    hour_rows = _refunds_before(session, row, row.at - HOUR)
    ids = [r.id or 0 for r in hour_rows]
    bucket = f"{_actor_key(row)}:{row.at:%Y%m%d%H}"
    if (rule := active.get("refunds_per_hour")) and len(hour_rows) > rule.threshold:
        yield Raised(
            "refunds_per_hour",
            f"refunds_per_hour:{bucket}",
            f"{_who(row)} made {len(hour_rows)} refunds within an hour (the rule allows {rule.threshold}).",
            row,
            ids,
        )
    if rule := active.get("amount_per_hour"):
        usd = sum(r.amount or 0 for r in hour_rows if (r.currency or "").lower() == "usd")
        if usd > rule.threshold:
            yield Raised(
                "amount_per_hour",
                f"amount_per_hour:{bucket}",
                f"{_who(row)} refunded {format_money(usd, 'usd')} within an hour "
                f"(the rule allows {format_money(rule.threshold, 'usd')}).",
                row,
                ids,
            )
    if rule := active.get("unusual_rate"):
        usual = _count_refunds_before(session, row, row.at - USUAL_OVER) / (USUAL_OVER / HOUR)
        bar = max(UNUSUAL_FLOOR, rule.threshold * usual)
        if len(hour_rows) > bar:
            yield Raised(
                "unusual_rate",
                f"unusual_rate:{bucket}",
                f"{_who(row)} made {len(hour_rows)} refunds within an hour, against a usual "
                f"{usual:.2f} an hour over the last 14 days.",
                row,
                ids,
            )
    if (rule := active.get("same_customer")) and row.target_ids:
        charge = session.get(StripeCharge, row.target_ids[0])
        if charge is not None and charge.customer_id:
            spends = session.exec(
                select(RefundSpend.charge_id)
                .join(StripeCharge, col(StripeCharge.id) == col(RefundSpend.charge_id))
                .where(StripeCharge.customer_id == charge.customer_id, col(RefundSpend.at) > row.at - DAY)
            ).all()
            if len(spends) >= rule.threshold:
                yield Raised(
                    "same_customer",
                    f"same_customer:{charge.customer_id}:{row.at:%Y%m%d}",
                    f"Customer {charge.customer_id} was refunded {len(spends)} times within 24 hours, "
                    f"the last by {_who(row)}.",
                    row,
                    [row.id or 0],
                    customer_id=charge.customer_id,
                )
    if active.get("outside_hours"):
        local = row.at.astimezone(_zone(session))
        start, end = WORKING_HOURS
        if local.weekday() >= 5 or not start <= local.hour < end:
            yield Raised(
                "outside_hours",
                f"outside_hours:{row.id}",
                f"{_who(row)} refunded {format_money(row.amount or 0, row.currency or 'usd')} at "
                f"{local:%A %H:%M} ({local.tzname()}), outside working hours.",
                row,
                [row.id or 0],
            )


def _on_refusal(session: Session, row: AuditEntry, active: dict[str, VelocityRule]) -> Iterator[Raised]:
    rule = active.get("failed_attempts")
    if rule is None or row.actor_id is None:
        return
    refused = session.exec(
        select(AuditEntry.id).where(
            AuditEntry.outcome == "denied",
            AuditEntry.actor_id == row.actor_id,
            col(AuditEntry.at) > row.at - HOUR,
            col(AuditEntry.id) <= (row.id or 0),
        )
    ).all()
    if len(refused) >= rule.threshold:
        yield Raised(
            "failed_attempts",
            f"failed_attempts:member:{row.actor_id}:{row.at:%Y%m%d%H}",
            f"{row.actor_email} was refused {len(refused)} time{'s' if len(refused) != 1 else ''} within an hour "
            f"(the last: {row.action}).",
            row,
            [int(i or 0) for i in refused],
        )


def evaluate_new() -> list[int]:
    """Evaluate the audit rows after the cursor; the ids of the alerts raised (new ones only)."""
    raised: list[int] = []
    with session_scope() as session:
        cursor = session.get(AlertCursor, 1, with_for_update=True) or AlertCursor(id=1, last_audit_id=0)
        rows = session.exec(
            select(AuditEntry)
            .where(col(AuditEntry.id) > cursor.last_audit_id)
            .order_by(col(AuditEntry.id))
            .limit(BATCH)
        ).all()
        if not rows:
            return raised
        active = {kind: rule for kind, rule in rules(session).items() if rule.enabled}
        for row in rows:
            if row.action == REFUND and row.outcome == "ok":
                found = list(_on_refund(session, row, active))
            elif row.outcome == "denied":
                found = list(_on_refusal(session, row, active))
            else:
                continue
            for alert in found:
                if session.exec(select(SpendAlert.id).where(SpendAlert.dedupe_key == alert.key)).first():
                    continue
                stored = SpendAlert(
                    kind=alert.kind,
                    at=clock.now(),
                    member_id=row.actor_id,
                    member_email=row.actor_email,
                    token_id=_token(row),
                    customer_id=alert.customer_id,
                    summary=alert.summary[:500],
                    audit_ids=alert.audit_ids,
                    dedupe_key=alert.key,
                )
                session.add(stored)
                session.flush()
                raised.append(stored.id or 0)
        cursor.last_audit_id = rows[-1].id or cursor.last_audit_id
        session.add(cursor)
    return raised


def deliver() -> int:
    """Mail every alert not yet mailed to the Owner, record it, and tell open pages; how many."""
    with session_scope() as session:
        waiting = list(session.exec(select(SpendAlert).where(col(SpendAlert.emailed_at).is_(None))))
        if not waiting:
            return 0
        owners = [m.email for m in session.exec(select(Member).where(Member.role == OWNER, col(Member.active)))]
    sent = 0
    for alert in waiting:
        for owner in owners:
            try:
                get_mailer().send(_mail(alert, owner))
            except MailDeliveryFailed as exc:
                log.warning("The spend alert %s could not be mailed (%s); it is tried again.", alert.id, exc.message)
                return sent
        with session_scope() as session:
            stored = session.get(SpendAlert, alert.id)
            if stored is None or stored.emailed_at is not None:
                continue
            stored.emailed_at = clock.now()
            session.add(stored)
        draft = AuditDraft(
            targets=[str(i) for i in alert.audit_ids][:20],
            details={"alert": alert.id, "rule": alert.kind, "member": alert.member_email, "summary": alert.summary},
        )
        audit.record(Actor.system(), "spend.alert", "ok", draft)
        sent += 1
    if sent:
        notices.publish(NOTICE_KIND, [str(a.id) for a in waiting])
    return sent


def alert_path(alert_id: int) -> str:
    """Settings → Spend controls with this alert picked out, its Freeze beside it."""
    return f"/settings/spend?alert={int(alert_id)}"


def audit_rows_path(audit_ids: list[int]) -> str:
    """The audit viewer showing only these rows."""
    return "/settings/audit?ids=" + ",".join(str(int(i)) for i in audit_ids[:IDS_MAX])


def _mail(alert: SpendAlert, owner: str) -> OutgoingMail:
    base = get_settings().public_url.rstrip("/")
    text = (
        f"{alert.summary}\n\n"
        f"Rule: {RULE_WORDS.get(alert.kind, alert.kind)}.\n"
        f"The audit rows behind it: {base}{audit_rows_path(alert.audit_ids)}\n\n"
        f"To freeze {alert.member_email or 'them'} (they keep reading; every change is refused), open "
        f"{base}{alert_path(alert.id or 0)} and sign in if asked.\n"
    )
    return OutgoingMail(to=owner, subject=f"Billy spend alert: {alert.summary[:80]}", text=text)


def check_now() -> None:
    """Evaluate and deliver, now: called right after a refund or a refusal is recorded. Never
    raises into the action that was recorded (the periodic catch-up tries again)."""
    if getattr(_evaluating, "active", False):
        return
    _evaluating.active = True
    try:
        evaluate_new()
        deliver()  # the new alerts, and any an earlier mail outage left
    except Exception:
        log.exception("Spend alerts could not be evaluated now; the periodic catch-up will.")
    finally:
        _evaluating.active = False


def catch_up() -> None:
    """The periodic job (and the first run after a start): every row not yet evaluated."""
    check_now()


_watching: list[Callable[[], None]] = []


def start_watching() -> None:
    """Look at each refund and refusal as the audit log records it (once per process)."""
    if not _watching:
        _watching.append(audit.on_record(after_record))


def after_record(action: str, outcome: str) -> None:
    """`audit`'s hook: a refund or a refusal may call for an alert."""
    if (action == REFUND and outcome == "ok") or outcome == "denied":
        check_now()


# --- what the Owner sees ---------------------------------------------------------------------------


@dataclass(frozen=True)
class AlertView:
    id: int
    kind: str
    at: datetime
    summary: str
    member_id: int | None
    member_email: str
    member_frozen: bool
    audit_ids: list[int]


@dataclass(frozen=True)
class RuleView:
    kind: str
    words: str
    threshold: int
    enabled: bool
    is_default: bool


RECENT = timedelta(hours=24)


def recent_alerts(actor: Actor, limit: int = 20) -> list[AlertView]:
    """The newest alerts, with whether each one's member is frozen now."""
    authorize(actor, "spend.view")
    with session_scope() as session:
        alerts = session.exec(select(SpendAlert).order_by(col(SpendAlert.id).desc()).limit(limit)).all()
        frozen = {m.id for m in session.exec(select(Member).where(col(Member.frozen_at).is_not(None)))}
        return [
            AlertView(
                id=a.id or 0,
                kind=a.kind,
                at=a.at,
                summary=a.summary,
                member_id=a.member_id,
                member_email=a.member_email,
                member_frozen=a.member_id in frozen,
                audit_ids=list(a.audit_ids),
            )
            for a in alerts
        ]


def alerts_today(actor: Actor) -> int:
    """How many alerts the last 24 hours raised: the Owner's badge (0 for anyone else)."""
    if not can(actor, "spend.view"):
        return 0
    with session_scope() as session:
        since = clock.now() - RECENT
        counted = select(sa.func.count()).select_from(SpendAlert).where(col(SpendAlert.at) > since)
        return int(session.exec(counted).one())


def list_rules(actor: Actor) -> list[RuleView]:
    authorize(actor, "spend.view")
    with session_scope() as session:
        tuned = {rule.kind for rule in session.exec(select(VelocityRule))}
        return [
            RuleView(kind, RULE_WORDS[kind], rule.threshold, rule.enabled, kind not in tuned)
            for kind, rule in rules(session).items()
        ]
