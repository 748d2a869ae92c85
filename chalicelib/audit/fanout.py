"""The audit in AWS: the hourly function queues one message per event; a worker audits each.

* ``queue_every_event`` (the scheduled function) lists event ids from
  ``EventsByNewest`` (keys only, paged) and sends one message per event, ten
  per ``SendMessageBatch``. It reads no partition, so its time grows only with
  the number of events (1,000 events: one index page and 100 batches).
* ``audit_message`` (the queue's worker, one message per invocation) runs
  ``audit_step`` on the cursor the message carries, within the invocation's
  remaining time. Finished: it reports the verdict. Not finished: it sends
  the new cursor as a continuation message to the same queue. A message that
  keeps failing is retried by SQS and then moved to the dead-letter queue
  (``maxReceiveCount`` in ``deploy/resources.json``), where an alarm sees it.

An event whose audit needs more than ``MAX_STEPS`` invocations is given up
(``AuditEventsUnfinished``, alarmed) rather than chained for ever.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, Protocol, cast

from chalicelib.audit.cursor import EventCursor
from chalicelib.audit.findings import EventVerdict
from chalicelib.audit.report import report_verdict
from chalicelib.audit.runner import Budget, audit_step
from chalicelib.observability import count, log_event
from chalicelib.storage import TicketStore

#: The queue's URL (set by the template); without it the scheduled function audits in-process.
AUDIT_QUEUE_URL_ENV = "AUDIT_QUEUE_URL"
#: The queue's name for ``chalice deploy``; the packaged template points the worker at its
#: own queue instead (``deploy/resources.json``).
AUDIT_QUEUE_NAME = "ticket-booking-audit"

#: SQS's limit on messages per ``SendMessageBatch``.
SEND_BATCH_SIZE = 10
SEND_ATTEMPTS = 3

#: The worker's budget per invocation: the function's timeout is 120 s
#: (``.chalice/config.json``); it stops reading with 30 s left.
WORKER_PAGE_SIZE = 1000
WORKER_MAX_PAGES = 200
WORKER_RESERVE_MS = 30_000
#: Invocations one event's audit may take before it is given up.
MAX_STEPS = 500


class Queue(Protocol):
    """The two SQS calls the audit makes (a boto3 SQS client has them)."""

    def send_message(self, *, QueueUrl: str, MessageBody: str) -> Any: ...  # noqa: N803

    def send_message_batch(self, *, QueueUrl: str, Entries: list[dict[str, str]]) -> Any: ...  # noqa: N803


_clients: dict[str | None, Queue] = {}


def queue_url() -> str | None:
    """The audit queue's URL, or None where there is no queue (tests, ``make dev``)."""
    return os.environ.get(AUDIT_QUEUE_URL_ENV) or None


def sqs_client() -> Queue:
    """An SQS client, created on first use and reused by later invocations."""
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    client = _clients.get(region)
    if client is None:
        import boto3

        created = cast(Queue, boto3.client("sqs", region_name=region))
        client = _clients.setdefault(region, created)
    return client


def forget_sqs_clients() -> None:
    """Drop cached clients (tests switch between mocked accounts)."""
    _clients.clear()


# -- the hourly fan-out -------------------------------------------------------------------


def queue_every_event(store: TicketStore, queue: Queue, url: str) -> int:
    """Send one audit message per event in the table; return how many were sent."""
    sent = 0
    for event_ids in _batches(store.event_ids(), SEND_BATCH_SIZE):
        bodies = [json.dumps(EventCursor.start(event_id).to_json()) for event_id in event_ids]
        _send_batch(queue, url, bodies)
        sent += len(bodies)
    log_event(logging.INFO, "audit queued", action="audit", eventsQueued=sent)
    count("AuditEventsQueued", sent)
    return sent


def _batches(ids: Iterable[int], size: int) -> Iterator[list[int]]:
    iterator = iter(ids)
    while batch := list(islice(iterator, size)):
        yield batch


def _send_batch(queue: Queue, url: str, bodies: list[str]) -> None:
    """``SendMessageBatch``, resending the entries SQS reports failed (it may accept part)."""
    pending = {str(i): body for i, body in enumerate(bodies)}
    for attempt in range(1, SEND_ATTEMPTS + 1):
        entries = [{"Id": key, "MessageBody": body} for key, body in pending.items()]
        response = queue.send_message_batch(QueueUrl=url, Entries=entries)
        failed = response.get("Failed") or []
        if not failed:
            return
        if any(f.get("SenderFault") for f in failed):
            raise RuntimeError(f"SendMessageBatch refused audit messages: {failed}")
        pending = {f["Id"]: pending[f["Id"]] for f in failed}
        time.sleep(0.1 * 2**attempt)
    raise RuntimeError(f"SendMessageBatch: {len(pending)} audit messages not accepted")


# -- the worker ---------------------------------------------------------------------------


def worker_budget(time_left_ms: Callable[[], int]) -> Budget:
    """One invocation's budget: the worker's page size and page cap, its time less a reserve."""
    return Budget(
        page_size=WORKER_PAGE_SIZE,
        max_pages=WORKER_MAX_PAGES,
        time_left_ms=time_left_ms,
        reserve_ms=WORKER_RESERVE_MS,
    )


def audit_message(
    store: TicketStore,
    queue: Queue,
    url: str,
    body: str,
    time_left_ms: Callable[[], int],
) -> EventVerdict | EventCursor | None:
    """Audit the event one message names, as far as this invocation's time allows.

    Returns the verdict (reported), the continuation's cursor (sent), or None
    when the event was given up. Raises on anything else, so SQS retries the
    message and, in the end, dead-letters it.
    """
    cursor = EventCursor.from_json(json.loads(body))
    if cursor.steps >= MAX_STEPS:
        _give_up(cursor)
        return None
    outcome = audit_step(store, cursor, worker_budget(time_left_ms))
    if isinstance(outcome, EventCursor):
        queue.send_message(QueueUrl=url, MessageBody=json.dumps(outcome.to_json()))
        log_event(
            logging.INFO,
            "audit continues",
            action="audit",
            eventId=outcome.event_id,
            attempt=outcome.attempt,
            pages=outcome.pages,
            steps=outcome.steps,
        )
        count("AuditContinuations", 1)
        return outcome
    report_verdict(outcome)
    return outcome


def _give_up(cursor: EventCursor) -> None:
    log_event(
        logging.ERROR,
        "audit unfinished",
        action="audit",
        eventId=cursor.event_id,
        pages=cursor.pages,
        steps=cursor.steps,
        detail=f"gave up after {cursor.steps} invocations",
    )
    count("AuditEventsUnfinished", 1)
