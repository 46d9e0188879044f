"""A Billy process that makes one Stripe write and stops dead right after Stripe answers.

`python -m tests.crash_helper '<json>'` makes the write of `tests.write_kinds` named by `kind`
with `key`, as member `member` (id, email, role), against the instance the environment names
(BILLY_DATABASE_URL, BILLY_DATA_DIR, BILLY_STRIPE_API_BASE, as the test set them). The hook: the
moment the gateway has Stripe's answer to the call `pause_after`, before Billy stores it or
writes the audit row, it prints ANSWERED and sleeps, for the test to `kill -9` it there.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from services import billing, customers, invoice_changes, subscription_changes
from services.permissions import Actor, Source
from services.stripe_gateway import StripeGateway

PAUSE_SECONDS = 120  # far longer than the test waits: the test kills it first


def _pause_after(call: str) -> None:
    original = StripeGateway._write

    def answered_then_pause(self: StripeGateway, made: str, fn: Any) -> dict[str, Any]:
        answer = original(self, made, fn)
        if made == call:
            print("ANSWERED", flush=True)
            time.sleep(PAUSE_SECONDS)
        return answer

    StripeGateway._write = answered_then_pause  # type: ignore[method-assign]


def main(spec: dict[str, Any]) -> None:
    _pause_after(spec["pause_after"])
    member_id, email, role = spec["member"]
    actor = Actor(member_id, email, role, Source.DASHBOARD, "127.0.0.1", "crash-helper")
    key, target, args = spec["key"], spec["target"], spec["args"]
    kind = spec["kind"]
    if kind == "refund":
        billing.issue_refund(actor, target, args["amount"], None, key)
    elif kind == "customer":
        customers.update_customer(actor, target, args["changes"], key)
    elif kind == "subscription":
        subscription_changes.change_subscription(
            actor, target, args["price"], args["quantity"], args["proration_date"], key
        )
    else:
        invoice_changes.send_invoice(actor, target, key)
    print("FINISHED", flush=True)  # never reached when the test kills it in time


if __name__ == "__main__":
    main(json.loads(sys.argv[1]))
