"""The local stand-in for the webhook queue's Lambda trigger.

Locally (no ``WEBHOOK_QUEUE_URL``) deliveries wait in the process-wide in-memory
queue (``chalicelib.webhooks.queue.local_queue``) of the process that queued
them: ``make dev``'s stream poller. This hands each message that is due to the
same handler the deployed worker runs, ``app.deliver_webhooks``, as a one-record
SQS event (the worker's ``batch_size`` is 1). A handler that raises leaves the
message to come back later, as SQS would after its visibility timeout.

Pending deliveries live in memory: stopping ``make dev`` forgets the retries
still waiting (AWS keeps them in SQS).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from chalicelib.webhooks.queue import local_queue
from devtools.stream_poller import lambda_context

#: Seconds before a message whose handling crashed is handed over again.
VISIBILITY_TIMEOUT = 30
QUEUE_ARN = "arn:aws:sqs:local:000000000000:ticket-booking-webhooks"


def sqs_event(body: str) -> dict[str, Any]:
    """One message as the SQS trigger delivers it."""
    now = str(int(time.time() * 1000))
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": str(uuid.uuid4()),
                "body": body,
                "attributes": {
                    "ApproximateReceiveCount": "1",
                    "SentTimestamp": now,
                    "ApproximateFirstReceiveTimestamp": now,
                },
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "local",
            }
        ]
    }


def deliver_due(handler: Callable[[dict[str, Any], Any], Any]) -> int:
    """Hand every due message to ``handler``; how many were handed over."""
    queue = local_queue()
    bodies = queue.pop_due(int(time.time() * 1000))
    for body in bodies:
        try:
            handler(sqs_event(body), lambda_context("deliver_webhooks"))
        except Exception:
            queue.send(body, VISIBILITY_TIMEOUT)
    return len(bodies)
