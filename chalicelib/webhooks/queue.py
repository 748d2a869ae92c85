"""Where webhook delivery attempts wait: an SQS queue in AWS, an in-memory heap locally.

Every attempt is its own message, so one endpoint's slow or failing attempts
never hold up another's: in AWS each message is its own worker invocation
(``batch_size=1``), and a retry is a new message sent with a delay.

SQS delays a message by at most ``SQS_MAX_DELAY_SECONDS`` (15 minutes), shorter
than most of the retry schedule. The message therefore carries its due time
(``notBefore``, Unix ms); a worker that receives it early sends it back with the
longest delay until it is due (``chalicelib.webhooks.delivery``).

Messages that exhaust their retries (or whose endpoint is disabled) go to the
dead-letter queue: ``WEBHOOK_DEAD_LETTER_QUEUE_URL`` in AWS, a list locally.
Without a dead-letter URL the SQS queue raises, so that SQS's own redrive policy
moves the message there after its receive count.
"""

from __future__ import annotations

import heapq
import itertools
import os
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from chalicelib.notifications.settings import WEBHOOK_DEAD_LETTER_URL_ENV, WEBHOOK_QUEUE_URL_ENV

SQS_MAX_DELAY_SECONDS = 900


class DeliveryQueue(Protocol):
    """Where the next attempt of a delivery waits."""

    def send(self, body: str, delay_seconds: int) -> None: ...

    def dead_letter(self, body: str) -> None: ...


def _wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


class SqsDeliveryQueue:
    """The webhook queue in AWS. The boto3 client is created on first use."""

    def __init__(self, url: str, dead_letter_url: str | None = None, client: Any = None) -> None:
        self.url = url
        self.dead_letter_url = dead_letter_url
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        """Created once (the stream handler's threads share it; boto3 creates clients
        thread-unsafely, but their calls are thread-safe)."""
        with self._lock:
            if self._client is None:
                import boto3

                region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
                self._client = boto3.client("sqs", region_name=region)
            return self._client

    def send(self, body: str, delay_seconds: int) -> None:
        """Send with SQS's delay, clamped to 0-900 s (the message carries its due time)."""
        delay = min(max(0, delay_seconds), SQS_MAX_DELAY_SECONDS)
        self.client.send_message(QueueUrl=self.url, MessageBody=body, DelaySeconds=delay)

    def dead_letter(self, body: str) -> None:
        if not self.dead_letter_url:
            raise RuntimeError(
                f"{WEBHOOK_DEAD_LETTER_URL_ENV} is not set: the message fails, and SQS's"
                " redrive policy dead-letters it"
            )
        self.client.send_message(QueueUrl=self.dead_letter_url, MessageBody=body)


class LocalDeliveryQueue:
    """An in-memory queue ordered by due time (thread-safe): ``make dev``'s poller and the
    tests take what is due with ``pop_due``. Dead letters are kept in ``dead_letters``."""

    def __init__(self, clock: Callable[[], int] = _wall_clock_ms) -> None:
        self.clock = clock
        self.dead_letters: list[str] = []
        self._heap: list[tuple[int, int, str]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()

    def send(self, body: str, delay_seconds: int) -> None:
        due = self.clock() + max(0, delay_seconds) * 1000
        with self._lock:
            heapq.heappush(self._heap, (due, next(self._order), body))

    def dead_letter(self, body: str) -> None:
        with self._lock:
            self.dead_letters.append(body)

    def due(self, now_ms: int) -> list[str]:
        """The messages due at ``now_ms``, in due order, left in the queue."""
        with self._lock:
            return [body for due, _, body in sorted(self._heap) if due <= now_ms]

    def pop_due(self, now_ms: int) -> list[str]:
        """The messages due at ``now_ms``, in due order, taken out of the queue."""
        taken: list[str] = []
        with self._lock:
            while self._heap and self._heap[0][0] <= now_ms:
                taken.append(heapq.heappop(self._heap)[2])
        return taken

    def next_due_ms(self) -> int | None:
        """When the next message is due (None: the queue is empty)."""
        with self._lock:
            return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._heap)


_local = LocalDeliveryQueue()
_sqs: dict[tuple[str, str | None], SqsDeliveryQueue] = {}


def delivery_queue() -> DeliveryQueue:
    """SQS when ``WEBHOOK_QUEUE_URL`` is set (AWS), else this process's local queue.

    Read on each call: Chalice's test client sets the environment per invocation.
    """
    url = os.environ.get(WEBHOOK_QUEUE_URL_ENV)
    if not url:
        return _local
    key = (url, os.environ.get(WEBHOOK_DEAD_LETTER_URL_ENV) or None)
    queue = _sqs.get(key)
    if queue is None:
        queue = _sqs.setdefault(key, SqsDeliveryQueue(*key))
    return queue


def local_queue() -> LocalDeliveryQueue:
    """The process-wide local queue (``make dev``'s poller drains it)."""
    return _local


def forget_queues() -> None:
    """Drop cached SQS queues and empty the local one (tests)."""
    global _local
    _sqs.clear()
    _local = LocalDeliveryQueue()
