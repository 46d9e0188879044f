"""Stripe-shaped events, and webhook delivery signed as Stripe signs it.

localstripe's events lack `request`, `pending_webhooks` and
`data.previous_attributes`, carry an old `api_version`, and sign webhooks with
the event's creation time. Stripe signs with the time of delivery
(`Stripe-Signature: t=<now>,v1=HMAC-SHA256(secret, "t.payload")`, docs:
webhooks#verify-manually), which matters once events are backdated; by its own clock,
which may run off the machine's (`timeline.OFFSET`).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
from typing import Any

import aiohttp
from localstripe import webhooks
from localstripe.resources import Event

from sandbox import timeline
from sandbox.state import API_VERSION, current_request

log = logging.getLogger("sandbox.webhooks")

# Stripe delivers asynchronously, shortly after the API call that caused the event.
WEBHOOK_DELAY_SECONDS = 0.2

_original_event_init = Event.__init__


def _event_init(
    self: Event,
    type: str,
    data: Any,
    previous_attributes: dict[str, Any] | None = None,
    origin: str | None = None,
) -> None:
    """Stripe event fields localstripe leaves out (docs: api/events/object).

    `origin` names the object whose creation caused the event, so that
    backdating that object moves the event too.
    """
    _original_event_init(self, type, data)
    info = current_request.get()
    self.api_version = API_VERSION
    self.request = {
        "id": info.id if info else None,
        "idempotency_key": info.idempotency_key if info else None,
    }
    self.pending_webhooks = sum(1 for hook in webhooks._webhooks.values() if hook.events is None or type in hook.events)
    if previous_attributes is not None:
        self.data["previous_attributes"] = previous_attributes
    if origin is None and type == "customer.source.created":
        origin = getattr(data, "customer", None)  # a card saved with its new customer
    elif origin is None and type.endswith(".created"):
        origin = getattr(data, "id", None)
    self._origin = origin


def emit(
    type: str,
    obj: Any,
    previous_attributes: dict[str, Any] | None = None,
    origin: str | None = None,
) -> Event:
    """Record an event and schedule its webhook deliveries."""
    event = Event(type, obj, previous_attributes=previous_attributes, origin=origin)
    webhooks.schedule_webhook(event)
    return event


def signature_header(secret: str, payload: bytes, timestamp: int) -> str:
    signed = b"%d.%s" % (timestamp, payload)
    digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


async def _deliver(event: Event) -> None:
    payload = json.dumps(event._export(), indent=2, sort_keys=True).encode()
    await asyncio.sleep(WEBHOOK_DELAY_SECONDS)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        for hook in list(webhooks._webhooks.values()):
            if hook.events is not None and event.type not in hook.events:
                continue
            headers = {
                "Content-Type": "application/json; charset=utf-8",
                "Stripe-Signature": signature_header(hook.secret, payload, int(timeline.wall_now())),
            }
            try:
                async with session.post(hook.url, data=payload, headers=headers) as resp:
                    log.info("webhook %s -> %s: %d", event.type, hook.url, resp.status)
            except (TimeoutError, aiohttp.ClientError) as exc:
                log.info("webhook %s -> %s failed: %s", event.type, hook.url, exc)


class WebhookRegistry:
    """localstripe's registered webhooks as sandbox state (saved with --data-dir)."""

    def snapshot(self) -> dict[str, tuple[str, str, list[str] | None]]:
        return {hook_id: (hook.url, hook.secret, hook.events) for hook_id, hook in webhooks._webhooks.items()}

    def restore(self, data: dict[str, tuple[str, str, list[str] | None]]) -> None:
        webhooks._webhooks.clear()
        for hook_id, (url, secret, events) in data.items():
            webhooks.register_webhook(hook_id, url, secret, events)

    def reset(self) -> None:
        """Kept on reset, as localstripe does: tests register receivers once."""


def install() -> None:
    Event.__init__ = _event_init
    webhooks._send_webhook = _deliver
