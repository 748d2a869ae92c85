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

#: ``YYYY-MM-DDTHH:MM`` of an ISO 8601 time (every time the service writes is UTC).
MINUTE = len("2026-01-01T00:00")


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

    def wanted(self, owner_id: str, domain_event: DomainEvent) -> bool:
        return bool(self._for(owner_id, domain_event))

    def enqueue(self, owner_id: str, domain_event: DomainEvent) -> int:
        return delivery.enqueue_to(
            self.queue, owner_id, self._for(owner_id, domain_event), domain_event
        )

    def _for(self, owner_id: str, domain_event: DomainEvent) -> list[WebhookEndpoint]:
        """The endpoints that take ``domain_event``: enabled, for its event, and registered
        no later than the minute it happened. A stream read again from its start (a
        mapping created anew, a lost checkpoint) must not send an endpoint the history
        from before it existed; the minute is the stream time's precision in DynamoDB
        Local (the second in AWS)."""
        happened = domain_event.occurred_at[:MINUTE]
        return [
            endpoint
            for endpoint in self._of(owner_id)
            if endpoint.receives(domain_event.event_id) and endpoint.created_at[:MINUTE] <= happened
        ]
