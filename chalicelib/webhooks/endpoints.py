"""An organiser's webhook endpoints: register, list, delete, re-enable.

Every operation acts on the caller's own endpoints only, read from their own
partition: another organiser's endpoint id reads as unknown (404), so no answer
tells whether it exists. An endpoint for one event requires the caller to own
that event (404 unknown event, 403 someone else's), as the event's lists do.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from chalicelib.clock import now_iso
from chalicelib.errors import WebhookNotFound, WebhookUrlRefused
from chalicelib.identity.access import Caller
from chalicelib.models import WebhookEndpoint
from chalicelib.organiser_lists import owned_event
from chalicelib.storage import TicketStore
from chalicelib.storage import webhooks as stored
from chalicelib.webhooks import addresses, signing

#: An endpoint's id: ``wh_`` and 32 hex digits (random: ids say nothing about order or owner).
ID_PREFIX = "wh_"


@dataclass(frozen=True)
class Registered:
    """A new endpoint and its secret, which this answer is the only one to show."""

    endpoint: WebhookEndpoint

    def to_json(self) -> dict[str, object]:
        return {**self.endpoint.to_json(), "secret": self.endpoint.secret}


def register(store: TicketStore, caller: Caller, url: str, event_id: int | None) -> Registered:
    """Register ``url`` for the caller's event ``event_id``, or for all their events (None)."""
    try:
        addresses.check_url(url)
    except addresses.AddressRefused as refused:
        raise WebhookUrlRefused(str(refused)) from None
    if event_id is not None:
        owned_event(store, caller, event_id, "register webhooks for it")
    endpoint = WebhookEndpoint(
        owner_id=caller.subject,
        webhook_id=ID_PREFIX + uuid.uuid4().hex,
        url=url,
        event_id=event_id,
        secret=signing.new_secret(),
        created_at=now_iso(),
    )
    stored.add_endpoint(store, endpoint)
    return Registered(endpoint)


def list_endpoints(store: TicketStore, caller: Caller) -> list[WebhookEndpoint]:
    return stored.endpoints(store, caller.subject)


def delete(store: TicketStore, caller: Caller, webhook_id: str) -> None:
    """Delete one of the caller's endpoints: queued deliveries to it are dropped."""
    if not stored.delete_endpoint(store, caller.subject, webhook_id):
        raise WebhookNotFound(webhook_id)


def enable(store: TicketStore, caller: Caller, webhook_id: str) -> WebhookEndpoint:
    """Enable one of the caller's endpoints again, with its failure record cleared."""
    endpoint = stored.enable_endpoint(store, caller.subject, webhook_id)
    if endpoint is None:
        raise WebhookNotFound(webhook_id)
    return endpoint
