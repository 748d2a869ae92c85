"""Webhook deliveries: one message per endpoint and domain event, one attempt per message.

``enqueue_to`` queues one message per endpoint that takes the domain event (the
stream handler passes the organiser's endpoints, read once per batch:
``chalicelib.notifications.webhook_link``); ``enqueue_deliveries`` reads them
first, with one ``Query`` of the organiser's partition.
The message fixes the body once, so every retry signs and sends the same bytes
under the same ``webhook-id`` (the domain event's id: receivers drop duplicates
by it); each attempt gets a fresh ``webhook-timestamp`` and signature.

``deliver`` makes one attempt: it reads the endpoint (a deleted or disabled one
gets nothing), signs, POSTs through the SSRF guard (``addresses.post``) and
records the outcome. A 2xx is a success; anything else (a 3xx included: redirects
are not followed, an error status, a timeout, a refused address) is a failure.

**Retry schedule** (Standard Webhooks'): after the first attempt fails, retries
follow ``RETRY_SCHEDULE_SECONDS`` = 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h:
``MAX_ATTEMPTS`` = 8 attempts over about 27.6 hours. A message whose attempts
are exhausted goes to the dead-letter queue (and counts ``WebhookDeadLettered``).

**Disable threshold**: an endpoint is disabled when it has failed at least
``DISABLE_AFTER_FAILURES`` (8) attempts in a row *and* its failing streak (from
the first of those failures) has lasted at least ``DISABLE_AFTER_MS`` (24 hours).
One delivery that exhausts its schedule meets both; a short outage never does,
however many deliveries fail in it, and any success resets the streak. A disabled
endpoint gets nothing until its organiser enables it again
(``POST /webhooks/{id}/enable``); the attempt that disabled it is dead-lettered.

**One organiser's failing endpoint never delays another's**: every attempt is its
own message (in AWS its own worker invocation, ``batch_size=1``), an attempt's
connection and reads time out within seconds (``addresses``), and a retry waits in the queue, not
in a worker. No delivery waits for another.

Nothing here logs a URL (it may carry a token), a body (it may carry an email)
or a secret.
"""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, replace
from enum import StrEnum

from chalicelib.clock import iso_from_ms
from chalicelib.models import EndpointStatus, WebhookEndpoint
from chalicelib.notifications.domain_events import DomainEvent
from chalicelib.observability import count, log_event
from chalicelib.storage import TicketStore
from chalicelib.storage import webhooks as stored
from chalicelib.webhooks import addresses, signing
from chalicelib.webhooks.queue import DeliveryQueue, LocalDeliveryQueue, delivery_queue

#: Seconds to wait after failed attempt n (1-based) before attempt n + 1.
RETRY_SCHEDULE_SECONDS = (5, 5 * 60, 30 * 60, 2 * 3600, 5 * 3600, 10 * 3600, 10 * 3600)
MAX_ATTEMPTS = len(RETRY_SCHEDULE_SECONDS) + 1
#: Disabled after this many consecutive failures spanning at least this long.
DISABLE_AFTER_FAILURES = 8
DISABLE_AFTER_MS = 24 * 3600 * 1000

#: How a delivery attempt's POST is made: (url, headers, body) -> HTTP status.
Post = Callable[[str, Mapping[str, str], bytes], int]

USER_AGENT = "ticket-booking-webhooks/1"

__all__ = ["deliver", "deliver_due", "delivery_queue", "enqueue_deliveries", "enqueue_to"]


class Outcome(StrEnum):
    DELIVERED = "DELIVERED"
    RETRY_SCHEDULED = "RETRY_SCHEDULED"
    DEAD_LETTERED = "DEAD_LETTERED"
    #: The attempt failed and the endpoint was disabled (the message is dead-lettered).
    DISABLED = "DISABLED"
    #: The endpoint is gone or disabled: nothing sent.
    SKIPPED = "SKIPPED"
    #: Received before its due time (SQS delays at most 15 minutes): sent back to wait.
    DEFERRED = "DEFERRED"


@dataclass(frozen=True)
class DeliveryMessage:
    """One attempt's message; ``body`` is the exact JSON text every attempt sends."""

    ownerId: str  # noqa: N815 (the message's JSON names)
    webhookId: str  # noqa: N815
    msgId: str  # noqa: N815
    body: str
    attempt: int = 1
    notBefore: int = 0  # noqa: N815 (Unix ms)

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> DeliveryMessage:
        data = json.loads(text)
        return cls(
            ownerId=str(data["ownerId"]),
            webhookId=str(data["webhookId"]),
            msgId=str(data["msgId"]),
            body=str(data["body"]),
            attempt=int(data["attempt"]),
            notBefore=int(data["notBefore"]),
        )


def enqueue_deliveries(
    store: TicketStore, queue: DeliveryQueue, owner_id: str, domain_event: DomainEvent
) -> int:
    """Queue ``domain_event`` for each of ``owner_id``'s enabled endpoints that take its
    event; how many were queued."""
    return enqueue_to(queue, owner_id, stored.endpoints(store, owner_id), domain_event)


def enqueue_to(
    queue: DeliveryQueue,
    owner_id: str,
    endpoints: list[WebhookEndpoint],
    domain_event: DomainEvent,
) -> int:
    """Queue ``domain_event`` for those of ``endpoints`` (``owner_id``'s, already read)
    that take its event; how many were queued."""
    body = json.dumps(domain_event.payload(), separators=(",", ":"))
    queued = 0
    for endpoint in endpoints:
        if endpoint.receives(domain_event.event_id):
            message = DeliveryMessage(owner_id, endpoint.webhook_id, domain_event.id, body)
            queue.send(message.to_json(), 0)
            queued += 1
    if queued:
        count("WebhooksQueued", queued)
    return queued


def headers_for(endpoint: WebhookEndpoint, message: DeliveryMessage, now_ms: int) -> dict[str, str]:
    """One attempt's headers: Standard Webhooks' three, signed now."""
    timestamp = now_ms // 1000
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message.msgId,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signing.sign(endpoint.secret, message.msgId, timestamp, message.body),
    }


def deliver(
    store: TicketStore,
    queue: DeliveryQueue,
    message_body: str,
    now_ms: int,
    post: Post = addresses.post,
) -> Outcome:
    """One attempt of one message (see the module's docstring for what follows it)."""
    try:
        message = DeliveryMessage.from_json(message_body)
    except (ValueError, KeyError, TypeError):
        queue.dead_letter(message_body)
        count("WebhookDeadLettered")
        log_event(logging.ERROR, "webhook message malformed", outcome=Outcome.DEAD_LETTERED)
        return Outcome.DEAD_LETTERED
    if message.notBefore > now_ms:
        queue.send(message_body, -(-(message.notBefore - now_ms) // 1000))
        return Outcome.DEFERRED
    endpoint = stored.get_endpoint(store, message.ownerId, message.webhookId)
    if endpoint is None or endpoint.status != EndpointStatus.ENABLED:
        count("WebhookSkipped")
        return _logged(message, Outcome.SKIPPED)
    reason = _attempt(endpoint, message, now_ms, post)
    if reason is None:
        if endpoint.consecutive_failures:
            stored.record_success(store, message.ownerId, message.webhookId)
        count("WebhookDelivered")
        return _logged(message, Outcome.DELIVERED)
    return _after_failure(store, queue, message, now_ms, reason)


def _attempt(
    endpoint: WebhookEndpoint, message: DeliveryMessage, now_ms: int, post: Post
) -> str | None:
    """POST once; None on a 2xx, else why it failed (a status or an error's kind)."""
    try:
        status = post(endpoint.url, headers_for(endpoint, message, now_ms), message.body.encode())
    except addresses.AddressRefused:
        return "address refused"
    except (OSError, http.client.HTTPException) as error:
        return type(error).__name__
    return None if 200 <= status < 300 else f"HTTP {status}"


def _after_failure(
    store: TicketStore, queue: DeliveryQueue, message: DeliveryMessage, now_ms: int, reason: str
) -> Outcome:
    count("WebhookFailures")
    endpoint = stored.record_failure(store, message.ownerId, message.webhookId, now_ms)
    if endpoint is None:  # deleted meanwhile
        return _logged(message, Outcome.SKIPPED, reason)
    if should_disable(endpoint, now_ms) and stored.disable_endpoint(
        store,
        message.ownerId,
        message.webhookId,
        endpoint.consecutive_failures,
        iso_from_ms(now_ms),
    ):
        count("WebhookEndpointsDisabled")
        queue.dead_letter(message.to_json())
        count("WebhookDeadLettered")
        return _logged(message, Outcome.DISABLED, reason, logging.WARNING)
    if message.attempt >= MAX_ATTEMPTS:
        queue.dead_letter(message.to_json())
        count("WebhookDeadLettered")
        return _logged(message, Outcome.DEAD_LETTERED, reason, logging.WARNING)
    delay = RETRY_SCHEDULE_SECONDS[message.attempt - 1]
    retry = replace(message, attempt=message.attempt + 1, notBefore=now_ms + delay * 1000)
    queue.send(retry.to_json(), delay)
    count("WebhookRetries")
    return _logged(message, Outcome.RETRY_SCHEDULED, reason)


def should_disable(endpoint: WebhookEndpoint, now_ms: int) -> bool:
    """The documented threshold: enough failures in a row, over a long enough time."""
    started = endpoint.failing_since_ms
    return (
        endpoint.consecutive_failures >= DISABLE_AFTER_FAILURES
        and started is not None
        and now_ms - started >= DISABLE_AFTER_MS
    )


def _logged(
    message: DeliveryMessage, outcome: Outcome, reason: str | None = None, level: int = logging.INFO
) -> Outcome:
    log_event(
        level,
        "webhook attempt",
        webhookId=message.webhookId,
        webhookMessageId=message.msgId,
        attempt=message.attempt,
        outcome=outcome.value,
        reason=reason,
    )
    return outcome


def deliver_due(
    store: TicketStore,
    queue: LocalDeliveryQueue,
    now_ms: int,
    post: Post = addresses.post,
) -> list[Outcome]:
    """Every message of the local queue that is due at ``now_ms``, one attempt each
    (``make dev``'s poller and the tests; in AWS the SQS worker does this)."""
    return [deliver(store, queue, body, now_ms, post) for body in queue.pop_due(now_ms)]
