"""The stream handler's work: each record's domain events, each effect once.

For every domain event of a record (``domain_events.from_stream_record``) there
are up to two effects, each behind its own notice marker (``storage.notices``):

* ``email``: the email to the person concerned (``mail.compose``), sent by the
  stage's mailer;
* ``webhooks``: one queued delivery per endpoint of the event's organiser that
  wants it (``chalicelib.webhooks``); the deliveries themselves, with their
  retries, run elsewhere, so a slow endpoint never holds up the stream.

Records are handled in stream order. The first record that fails stops the
batch and is reported (``batchItemFailures``): Lambda retries from it, and the
markers make everything before it that already happened happen only once.

Cost, per domain event that has an effect: two small writes per effect (claim,
done), one read of the event per batch, and for a waiting-list confirmation one
``TransactGetItems`` for the position (and, if a cancelled event had promotions
by count pending, one keys-only ``Query`` per batch to tell its released places
that held tickets); none of it on the booking path.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Protocol, TypeVar

from botocore.exceptions import ClientError

from chalicelib.booking import holds_ticket_by_count, settle_promotions
from chalicelib.clock import now_ms
from chalicelib.models import Event, Status
from chalicelib.notifications import domain_events as kinds
from chalicelib.notifications import mail
from chalicelib.notifications.domain_events import DomainEvent
from chalicelib.observability import count, email_fingerprint, log_event
from chalicelib.storage import TicketStore, schema
from chalicelib.storage.notices import Claim, NoticeLedger

_T = TypeVar("_T")

EMAIL = "email"
WEBHOOKS = "webhooks"
#: Items whose records are handled at once (each its own SES call and writes).
WORKERS = 16


class NoticeBusy(Exception):
    """Another handler holds a live claim on this effect: the record is retried later."""


class Webhooks(Protocol):
    """What the dispatcher needs of the organisers' webhooks."""

    def wanted(self, owner_id: str, domain_event: DomainEvent) -> bool:
        """Whether any enabled endpoint of ``owner_id`` takes ``domain_event``."""
        ...

    def enqueue(self, owner_id: str, domain_event: DomainEvent) -> int:
        """Queue one delivery per such endpoint; how many were queued."""
        ...


@dataclass
class Dispatcher:
    """Handles stream records for one invocation (its caches last one batch)."""

    store: TicketStore
    mailer: mail.Mailer
    webhooks: Webhooks
    clock: Callable[[], int] = now_ms
    _events: dict[int, Event | None] = field(default_factory=dict)
    _last_promoted: dict[int, int | None] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _counts: Counter[str] = field(default_factory=Counter)

    def handle(self, records: Iterable[dict[str, Any]]) -> list[str]:
        """Handle ``records``; the sequence numbers of those that failed (Lambda retries from
        the lowest, and the markers skip what already happened after it).

        Each item's records are handled in stream order, and an item stops at its first
        failure; different items' records run side by side (``WORKERS`` threads), since
        one event's places share a partition key and so a stream shard: in a flash sale
        every record of the event comes down one shard, and one email at a time (an SES
        call and two writes, some 50 ms) would leave a promoted person's email behind a
        queue of thousands of waiting-list confirmations.
        """
        records = list(records)
        by_item: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            keys = record.get("dynamodb", {}).get("Keys") or {}
            by_item.setdefault(json.dumps(keys, sort_keys=True), []).append(record)
        groups = list(by_item.values())
        if len(groups) <= 1:
            failed = [self._handle_in_order(group) for group in groups]
        else:
            with ThreadPoolExecutor(max_workers=min(WORKERS, len(groups))) as pool:
                failed = list(pool.map(self._handle_in_order, groups))
        failed += self._settle(records)
        # Metrics are added here, on the invocation's own thread (Powertools' metric set is
        # not made for several threads at once).
        for name, value in sorted(self._counts.items()):
            count(name, value)
        self._counts.clear()
        return sorted((s for s in failed if s is not None), key=int)

    def _settle(self, records: list[dict[str, Any]]) -> list[str]:
        """Write as tickets the people promoted by count (``booking.settle_promotions``)
        in every event whose latest image here has some pending; the sequence numbers
        of the event records whose settlement failed (the stream brings them back).

        A promotion by count changes only the event item, so its record is what
        starts the settlement; the settled places' own records (status BOOKED) then
        come down the stream and send "You have a ticket", as any promotion's do.
        """
        latest: dict[int, dict[str, Any]] = {}
        for record in records:
            image = record.get("dynamodb", {}).get("NewImage") or {}
            if image.get("SK", {}).get("S") != schema.EVENT_SK:
                continue
            event_id = int(image.get("eventId", {}).get("N", 0))
            if int(image.get("pendingPromotions", {}).get("N", 0)) > 0:
                latest[event_id] = record
            else:
                latest.pop(event_id, None)  # settled since
        failed = []
        for event_id, record in latest.items():
            try:
                settled = settle_promotions(self.store, event_id)
            except Exception as error:
                sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
                self._count("SettlementFailures")
                log_event(
                    logging.ERROR,
                    "settling promotions failed; the stream retries from this record",
                    sequenceNumber=sequence,
                    error=type(error).__name__,
                    errorCode=_error_code(error),
                )
                failed.append(sequence)
            else:
                self._count("PromotionsSettled", settled)
        return failed

    def _count(self, name: str, value: int = 1) -> None:
        with self._lock:
            self._counts[name] += value

    def _handle_in_order(self, records: list[dict[str, Any]]) -> str | None:
        """One item's records in order; the sequence number of the first that failed."""
        ledger = NoticeLedger(self.store)
        for record in records:
            try:
                for domain_event in kinds.from_stream_record(record):
                    self._act(ledger, domain_event)
            except Exception as error:
                sequence = str(record.get("dynamodb", {}).get("SequenceNumber", ""))
                self._count("NotificationFailures")
                # The error's type and code only: its message may hold an address (SES names
                # the recipients it refused), and no log line holds an email in clear.
                log_event(
                    logging.WARNING if isinstance(error, NoticeBusy) else logging.ERROR,
                    "notification failed; the stream retries from this record",
                    sequenceNumber=sequence,
                    error=type(error).__name__,
                    errorCode=_error_code(error),
                )
                return sequence
        return None

    def _event(self, event_id: int) -> Event | None:
        return self._once_per_batch(self._events, event_id, self.store.get_event)

    def _once_per_batch(self, cache: dict[int, _T], event_id: int, read: Callable[[int], _T]) -> _T:
        """``read(event_id)``, once per event in this batch (shared by its threads; two
        threads may both read at first, and then agree on the first answer kept)."""
        with self._lock:
            if event_id in cache:
                return cache[event_id]
        value = read(event_id)
        with self._lock:
            return cache.setdefault(event_id, value)

    def _act(self, ledger: NoticeLedger, domain_event: DomainEvent) -> None:
        event = self._event(domain_event.event_id)
        if event is None:  # no code path deletes an event; nothing to tell
            return
        if domain_event.type == kinds.PLACE_WAITLISTED:
            domain_event = self._with_position(domain_event)
        if domain_event.type == kinds.PLACE_RELEASED:
            domain_event = self._with_what_was_held(domain_event, event)
        wants_email = domain_event.email is not None and domain_event.type in mail.EMAILED
        if wants_email:
            self._once(ledger, domain_event, EMAIL, lambda: self._email(domain_event, event))
        owner = event.owner_id
        if owner is not None and self.webhooks.wanted(owner, domain_event):
            self._once(
                ledger, domain_event, WEBHOOKS, lambda: self.webhooks.enqueue(owner, domain_event)
            )

    def _with_position(self, domain_event: DomainEvent) -> DomainEvent:
        """The waiting-list event with the person's position now (None if they no longer
        wait with the key this record gave them, or hold a ticket by count)."""
        assert domain_event.email is not None
        wait_key = domain_event.data.get("waitKey")
        position: int | None = None
        if isinstance(wait_key, int):
            snapshot = self.store.snapshot(domain_event.event_id, domain_event.email, wait_key)
            place = snapshot.place
            if (
                place is not None
                and place.status == Status.WAITLISTED
                and place.wait_key == wait_key
                and snapshot.event is not None
                and not snapshot.event.cancelled
            ):
                position = snapshot.position()
                if holds_ticket_by_count(position):  # its own email will say so
                    position = None
        data = {k: v for k, v in domain_event.data.items() if k != "waitKey"}
        return replace(domain_event, data={**data, "position": position})

    def _with_what_was_held(self, domain_event: DomainEvent, event: Event) -> DomainEvent:
        """The released place's ``previousStatus``: BOOKED for a place stored as waiting
        that held a ticket by count when its event was cancelled (settling stops then).

        The event read in this batch is already cancelled (this record comes after the
        cancellation, which nothing undoes), so its list no longer changes: the first
        ``pendingPromotions`` places stored as waiting are the ones promoted by count.
        The key of the last of them is read once per event per batch (a keys-only
        query, only while some are pending), not once per place.
        """
        data = dict(domain_event.data)
        wait_key = data.pop("waitKey", None)
        if (
            data.get("previousStatus") == Status.WAITLISTED
            and event.pending_promotions > 0
            and isinstance(wait_key, int)
        ):
            last_promoted = self._once_per_batch(
                self._last_promoted,
                event.event_id,
                lambda event_id: self.store.waiting_key_at(event_id, event.pending_promotions),
            )
            if last_promoted is not None and wait_key <= last_promoted:
                data["previousStatus"] = Status.BOOKED.value
        return replace(domain_event, data=data)

    def _email(self, domain_event: DomainEvent, event: Event) -> int:
        """Send the email, if this domain event sends one: how many were sent (0 or 1)."""
        position = domain_event.data.get("position")
        message = mail.compose(
            domain_event, event.name, position if isinstance(position, int) else None
        )
        if message is None:
            return 0
        try:
            self.mailer.send(message)
        except mail.Undeliverable as error:
            self._count("EmailsUndeliverable")
            log_event(
                logging.ERROR,
                "email undeliverable; given up",
                notice=domain_event.id,
                error=str(error),
            )
            return 0
        self._count("EmailsSent")
        return 1

    def _once(
        self, ledger: NoticeLedger, domain_event: DomainEvent, effect: str, act: Callable[[], int]
    ) -> None:
        """Run ``act`` unless this effect of ``domain_event`` already happened; ``act`` says
        how many messages it sent (emails, or webhook deliveries queued)."""
        claim, until = ledger.claim(domain_event.id, effect, self.clock())
        if claim == Claim.DONE:
            log_event(logging.INFO, "notice already sent", notice=domain_event.id, effect=effect)
            return
        if claim == Claim.BUSY:
            raise NoticeBusy(domain_event.id)
        try:
            sent = act()
        except Exception:
            ledger.release(domain_event.id, effect, until)
            raise
        ledger.done(domain_event.id, effect, until)
        log_event(
            logging.INFO,
            "notice sent" if sent else "notice done, nothing to send",
            sent=sent,
            notice=domain_event.id,
            effect=effect,
            type=domain_event.type,
            eventId=domain_event.event_id,
            person=email_fingerprint(domain_event.email) if domain_event.email else None,
        )


def _error_code(error: Exception) -> str | None:
    """An AWS error's code (``MessageRejected``, ``Throttling``...), if it is one."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code", "")) or None
    return None


def dispatcher(store: TicketStore) -> Dispatcher:
    """The stage's dispatcher: its mailer, and the organisers' webhooks."""
    from chalicelib.notifications.webhook_link import OrganiserWebhooks

    return Dispatcher(store, mail.mailer(), OrganiserWebhooks(store))
