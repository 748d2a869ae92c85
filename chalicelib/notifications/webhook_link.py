"""The dispatcher's side of organisers' webhooks: which organisers want an event's news,
and queueing it for them.

An organiser's endpoints are read once per batch (one ``Query`` of their
partition, capped at ``MAX_ENDPOINTS_PER_ORGANISER`` items), so a batch of a
thousand bookings of one event reads them once, and an organiser with no
endpoint costs no marker writes at all.
"""

from __future__ import annotations

import threading

from chalicelib.models import WebhookEndpoint
from chalicelib.notifications.domain_events import DomainEvent
from chalicelib.storage import TicketStore
from chalicelib.storage import webhooks as stored
from chalicelib.webhooks import delivery
from chalicelib.webhooks.queue import DeliveryQueue


class OrganiserWebhooks:
    """``dispatch.Webhooks`` over the stored endpoints and the delivery queue."""

    def __init__(self, store: TicketStore, queue: DeliveryQueue | None = None) -> None:
        self.store = store
        self.queue = queue or delivery.delivery_queue()
        self._endpoints: dict[str, list[WebhookEndpoint]] = {}
        self._lock = threading.Lock()

    def _of(self, owner_id: str) -> list[WebhookEndpoint]:
        """The organiser's endpoints, read once per batch (the dispatcher's threads share
        them: two may both read the first time; the first answer is kept)."""
        with self._lock:
            if owner_id in self._endpoints:
                return self._endpoints[owner_id]
        found = stored.endpoints(self.store, owner_id)
        with self._lock:
            return self._endpoints.setdefault(owner_id, found)

    def wanted(self, owner_id: str, event_id: int) -> bool:
        return any(endpoint.receives(event_id) for endpoint in self._of(owner_id))

    def enqueue(self, owner_id: str, domain_event: DomainEvent) -> int:
        return delivery.enqueue_to(self.queue, owner_id, self._of(owner_id), domain_event)
