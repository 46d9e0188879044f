"""Noticing that Stripe stopped accepting the connected key (issue 17).

A restricted key can be revoked, rolled or expire in the Stripe Dashboard at any moment; Billy
learns it from the next call Stripe answers with 401 (`stripe_gateway` reports it here). That
call's own error tells whoever made it. This records it once, in `stripe_connection.rejected_at`:
every page's banner reads that one flag with the member (no query per render), and the Owner is
mailed once, by whichever caller set the flag, however many calls fail after it (a mail that
cannot be delivered is logged, not tried again: the banner stays). A successful
rotation, reconnection or re-check clears the flag (`services.stripe_keys`).
"""

from __future__ import annotations

import logging
import threading

from sqlmodel import col, select

from services import audit, mail_templates
from services.audit import AuditDraft
from services.config import get_settings
from services.db import session_scope
from services.mailer import MailDeliveryFailed, OutgoingMail, SmtpMailer, get_mailer
from services.models import Member, Organization, StripeConnection, table_of, utcnow
from services.permissions import OWNER, Actor

log = logging.getLogger(__name__)

SETTINGS_PATH = "/settings/stripe"
_table = table_of(StripeConnection)


def key_rejected(key_hint: str) -> None:
    """Stripe answered 401 to the connected key, ending `key_hint`. Never raises: the caller is
    already failing with Stripe's own error, which matters more than this note."""
    try:
        if _flag(key_hint):
            _tell_owner(key_hint)
    except Exception:
        log.exception("Could not record that Stripe rejected the connected key")


def _flag(key_hint: str) -> bool:
    """Set `rejected_at` unless it is set: one conditional UPDATE, so of any number of callers (threads,
    workers) exactly one sees True. Only for the key still connected (a rotation may have just
    replaced the key whose call failed)."""
    with session_scope() as session:
        flagged = session.exec(
            _table.update()
            .where(
                _table.c.rejected_at.is_(None),
                _table.c.key_hint == key_hint,
                _table.c.secret_name != "",
            )
            .values(rejected_at=utcnow())
        ).rowcount
    return flagged == 1


def _tell_owner(key_hint: str) -> None:
    """An audit row, and one email to each active Owner. The mails leave from a thread of their own
    (with the mailer of this instance, taken now), so a slow mail server never holds up the request
    that happened to meet the 401; one that cannot be delivered is logged, and the banner stays."""
    with session_scope() as session:
        owners = [m.email for m in session.exec(select(Member).where(Member.role == OWNER, col(Member.active)))]
        org = session.get(Organization, 1)
        org_name = org.name if org else "your organisation"
    link = get_settings().public_url.rstrip("/") + SETTINGS_PATH
    mails = [
        mail_templates.stripe_key_rejected_mail(to=owner, org_name=org_name, key_hint=key_hint, link=link)
        for owner in owners
    ]
    draft = AuditDraft(details={"key_hint": key_hint, "emailed": owners})
    reason = f"Stripe no longer accepts the key ending {key_hint} (it answered 401)."
    audit.record(Actor.system(), "stripe.key_rejected", "failed", draft, reason)
    mailer = get_mailer()
    threading.Thread(target=_send, args=(mailer, mails), name="billy-key-rejected", daemon=True).start()


def _send(mailer: SmtpMailer, mails: list[OutgoingMail]) -> None:
    for mail in mails:
        try:
            mailer.send(mail)
        except MailDeliveryFailed as exc:
            log.warning("The Owner could not be told that Stripe rejected the key: %s", exc.message)
        except Exception:
            log.exception("The Owner could not be told that Stripe rejected the key")
