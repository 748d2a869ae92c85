"""Notifications: domain events from DynamoDB Local's stream, emails once per event.

The stream is DynamoDB Local's own (the Streams API), read by the same poller
``make dev`` runs (``devtools.stream_poller``), so the records are the real ones
the service's writes make, transactions included.
"""

from __future__ import annotations

import email
import email.policy
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.ses.models import ses_backends

from chalicelib import booking, organiser
from chalicelib.identity.access import Caller
from chalicelib.models import EventChange
from chalicelib.notifications import domain_events as kinds
from chalicelib.notifications import mail
from chalicelib.notifications.dispatch import Dispatcher
from chalicelib.notifications.domain_events import DomainEvent
from chalicelib.notifications.settings import (
    MAIL_FROM_ENV,
    MAIL_OUTBOX_ENV,
    WEBHOOKS_ALLOW_LOOPBACK_ENV,
)
from chalicelib.storage import TicketStore
from chalicelib.storage.notices import CLAIM_LEASE_MS, Claim, NoticeLedger
from chalicelib.webhooks import endpoints
from devtools.stream_poller import StreamPoller
from tests.conftest import ORGANISER_ID
from tests.test_webhooks import Receiver, verify_as_a_receiver

THE_ORGANISER = Caller(subject=ORGANISER_ID, email="organiser@example.com", is_organiser=True)
SENDER = "tickets@example.com"


@dataclass
class NoWebhooks:
    """An organiser without endpoints."""

    def wanted(self, owner_id: str, domain_event: DomainEvent) -> bool:
        return False

    def enqueue(self, owner_id: str, domain_event: DomainEvent) -> int:
        raise AssertionError("nothing is wanted")


@dataclass
class Collected:
    """A handler that only derives domain events, as the records arrive."""

    events: list[DomainEvent] = field(default_factory=list)

    def __call__(self, lambda_event: dict[str, Any], context: Any) -> dict[str, Any]:
        for record in lambda_event["Records"]:
            self.events.extend(kinds.from_stream_record(record))
        return {"batchItemFailures": []}


def poller_for(store: TicketStore, handler: Any) -> StreamPoller:
    streams = boto3.client(
        "dynamodbstreams",
        endpoint_url=store.client.meta.endpoint_url,
        region_name="us-east-1",
    )
    return StreamPoller(store.client, streams, store.table_name, handler)


@dataclass
class CountingOutbox:
    """The outbox, counting every send (a file written twice would look like one)."""

    folder: Path
    sent: list[str] = field(default_factory=list)

    def send(self, message: mail.Email) -> None:
        self.sent.append(message.notice_id)
        mail.OutboxMailer(SENDER, self.folder).send(message)


def outbox_handler(store: TicketStore, mailer: mail.Mailer) -> Any:
    def handle(lambda_event: dict[str, Any], context: Any) -> dict[str, Any]:
        dispatcher = Dispatcher(store, mailer, NoWebhooks())
        failed = dispatcher.handle(lambda_event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    return handle


def read_outbox(outbox: Path) -> list[email.message.EmailMessage]:
    messages = []
    for path in sorted(outbox.glob("*.eml")):
        parsed = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        assert isinstance(parsed, email.message.EmailMessage)
        messages.append(parsed)
    return messages


def subjects_by_person(outbox: Path) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for message in read_outbox(outbox):
        found.setdefault(str(message["To"]), []).append(str(message["Subject"]))
    return {person: sorted(subjects) for person, subjects in found.items()}


@pytest.mark.dynamodb_local
def test_every_change_becomes_its_domain_event(streamed_store: TicketStore) -> None:
    store = streamed_store
    event = booking.create_event(store, "Gig", 1, owner_id=ORGANISER_ID)
    event_id = event.event_id
    booking.book_ticket(store, event_id, "ann@example.com", None)
    ann = store.get_place(event_id, "ann@example.com")
    assert ann is not None and ann.booked_at is not None
    ann_booked_at = ann.booked_at
    booking.book_ticket(store, event_id, "bob@example.com", None)
    booking.book_ticket(store, event_id, "cat@example.com", None)
    booking.book_ticket(store, event_id, "dan@example.com", None)
    booking.cancel_booking(store, event_id, "ann@example.com")  # bob is promoted
    booking.cancel_booking(store, event_id, "dan@example.com")  # dan leaves the list
    organiser.change_event(store, THE_ORGANISER, event_id, EventChange(total_tickets=3))
    organiser.close_sales(store, THE_ORGANISER, event_id)
    organiser.cancel_event(store, THE_ORGANISER, event_id)

    collected = Collected()
    poller_for(store, collected).drain()

    seen = [(e.type, e.email) for e in collected.events]
    # The position index and the organiser's items change too; they give no domain events.
    # One transaction's records are neither atomic nor ordered together, so the whole is
    # compared as a multiset; each item's own changes arrive in order (per person below).
    assert sorted(seen, key=str) == sorted(
        [
            (kinds.PLACE_BOOKED, "ann@example.com"),
            (kinds.PLACE_WAITLISTED, "bob@example.com"),
            (kinds.PLACE_WAITLISTED, "cat@example.com"),
            (kinds.PLACE_WAITLISTED, "dan@example.com"),
            (kinds.PLACE_CANCELLED, "ann@example.com"),
            (kinds.PLACE_PROMOTED, "bob@example.com"),
            (kinds.PLACE_LEFT, "dan@example.com"),
            (kinds.PLACE_PROMOTED, "cat@example.com"),
            (kinds.EVENT_CAPACITY_CHANGED, None),
            (kinds.EVENT_SALES_CLOSED, None),
            (kinds.EVENT_CANCELLED, None),
            (kinds.PLACE_RELEASED, "bob@example.com"),
            (kinds.PLACE_RELEASED, "cat@example.com"),
        ],
        key=str,
    )
    per_person = {
        who: [kind for kind, person in seen if person == who]
        for who in ("ann@example.com", "bob@example.com", "cat@example.com")
    }
    assert per_person == {
        "ann@example.com": [kinds.PLACE_BOOKED, kinds.PLACE_CANCELLED],
        "bob@example.com": [kinds.PLACE_WAITLISTED, kinds.PLACE_PROMOTED, kinds.PLACE_RELEASED],
        "cat@example.com": [kinds.PLACE_WAITLISTED, kinds.PLACE_PROMOTED, kinds.PLACE_RELEASED],
    }
    capacity = next(e for e in collected.events if e.type == kinds.EVENT_CAPACITY_CHANGED)
    assert capacity.payload()["data"] == {
        "eventId": event_id,
        "previousTotalTickets": 1,
        "totalTickets": 3,
        "sequence": capacity.sequence,
    }
    # Within the event, sequence numbers order the changes: each person's in order.
    bob = [e for e in collected.events if e.email == "bob@example.com"]
    assert sorted(bob, key=lambda e: int(e.sequence)) == bob
    # A place's own times (to the millisecond) date its changes where it has them.
    booked = next(e for e in collected.events if e.type == kinds.PLACE_BOOKED)
    assert booked.occurred_at == ann_booked_at
    ids = [e.id for e in collected.events]
    assert len(set(ids)) == len(ids)

    # The same records read again (a redelivery) give the same ids.
    again = Collected()
    poller_for(store, again).drain()
    assert [e.id for e in again.events] == ids


@dataclass
class AllWebhooks:
    """An organiser whose endpoint wants everything: what would be queued for it."""

    queued: list[DomainEvent] = field(default_factory=list)

    def wanted(self, owner_id: str, domain_event: DomainEvent) -> bool:
        return True

    def enqueue(self, owner_id: str, domain_event: DomainEvent) -> int:
        self.queued.append(domain_event)
        return 1


@pytest.mark.dynamodb_local
def test_a_place_holding_a_ticket_by_count_is_released_as_booked(
    streamed_store: TicketStore, tmp_path: Path
) -> None:
    """Settling stops when the event is cancelled, so a person promoted by count may
    still be stored as waiting: the release tells organisers they held a ticket."""
    store = streamed_store
    event_id = booking.create_event(store, "Gig", 2, owner_id=ORGANISER_ID).event_id
    for person in ("ann", "bob", "cat", "dan", "eve", "fay"):
        booking.book_ticket(store, event_id, f"{person}@example.com", None)
    store.cancel_and_pass(event_id, "ann@example.com")  # cat holds a ticket by count...
    assert booking.settle_promotions(store, event_id) == 1  # ...and is written as a ticket
    store.cancel_and_pass(event_id, "bob@example.com")  # dan holds a ticket by count
    organiser.cancel_event(store, THE_ORGANISER, event_id)
    event = store.get_event(event_id)
    assert event is not None and event.pending_promotions == 1

    webhooks = AllWebhooks()

    def handle(lambda_event: dict[str, Any], context: Any) -> dict[str, Any]:
        dispatcher = Dispatcher(store, CountingOutbox(tmp_path / "outbox"), webhooks)
        failed = dispatcher.handle(lambda_event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    poller_for(store, handle).drain()
    released = {
        e.email: e.payload()["data"] for e in webhooks.queued if e.type == kinds.PLACE_RELEASED
    }
    assert {who: data["previousStatus"] for who, data in released.items()} == {
        "cat@example.com": "BOOKED",  # settled
        "dan@example.com": "BOOKED",  # promoted by count, not settled
        "eve@example.com": "WAITLISTED",
        "fay@example.com": "WAITLISTED",
    }
    assert not any("waitKey" in data for data in released.values())


@pytest.mark.dynamodb_local
def test_each_person_gets_each_email_once(streamed_store: TicketStore, tmp_path: Path) -> None:
    store = streamed_store
    outbox = tmp_path / "outbox"
    event_id = booking.create_event(store, "Gig <b>&</b>", 1, owner_id=ORGANISER_ID).event_id
    booking.book_ticket(store, event_id, "ann@example.com", None)
    booking.book_ticket(store, event_id, "bob@example.com", None)
    booking.book_ticket(store, event_id, "cat@example.com", None)
    booking.cancel_booking(store, event_id, "ann@example.com")

    mailer = CountingOutbox(outbox)
    handler = outbox_handler(store, mailer)
    poller_for(store, handler).drain()
    name = "Gig <b>&</b>"
    assert subjects_by_person(outbox) == {
        "ann@example.com": [f"Your booking for {name} is cancelled", f"Your ticket for {name}"],
        # bob joined, but the whole stream is read after his promotion: by the time his
        # waiting-list notice is made he no longer waits, so only the promotion is sent.
        "bob@example.com": [f"You have a ticket for {name}"],
        "cat@example.com": [f"You are on the waiting list for {name}"],
    }
    cat = next(m for m in read_outbox(outbox) if m["To"] == "cat@example.com")
    assert "number 1 in line" in cat.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = cat.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert "Gig &lt;b&gt;&amp;&lt;/b&gt;" in html and "<b>" not in html
    assert len(mailer.sent) == 4 and len(set(mailer.sent)) == 4

    # The whole stream delivered again, from the start: nothing is sent twice.
    poller_for(store, handler).drain()
    assert len(mailer.sent) == 4


@pytest.mark.dynamodb_local
def test_a_failed_send_is_retried_from_that_record_and_nothing_before_it_repeats(
    streamed_store: TicketStore, tmp_path: Path
) -> None:
    store = streamed_store
    outbox = tmp_path / "outbox"
    event_id = booking.create_event(store, "Gig", 5, owner_id=ORGANISER_ID).event_id
    for person in ("ann", "bob", "cat"):
        booking.book_ticket(store, event_id, f"{person}@example.com", None)

    sent: list[str] = []

    class Flaky:
        """Fails on bob's email the first time."""

        failed_once = False

        def send(self, message: mail.Email) -> None:
            if message.to == "bob@example.com" and not Flaky.failed_once:
                Flaky.failed_once = True
                raise ConnectionError("SES unreachable")
            sent.append(message.to)
            mail.OutboxMailer(SENDER, outbox).send(message)

    answers: list[list[str]] = []

    def handle(lambda_event: dict[str, Any], context: Any) -> dict[str, Any]:
        dispatcher = Dispatcher(store, Flaky(), NoWebhooks())
        failed = dispatcher.handle(lambda_event["Records"])
        answers.append(failed)
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    poller_for(store, handle).drain()
    # Bob's record was reported failed; the retry (at once, from that record) sent his
    # email, and nobody's (ann's, cat's: other people, handled beside his) was sent twice.
    assert [len(failed) for failed in answers if failed] == [1]
    assert sorted(sent) == ["ann@example.com", "bob@example.com", "cat@example.com"]
    assert sent[-1] == "bob@example.com"
    assert sorted(p.name for p in outbox.iterdir()) == sorted(
        f"{notice}.eml" for notice, effect in read_ids(store) if effect == "email"
    )


def read_ids(store: TicketStore) -> list[tuple[str, str]]:
    items = store.client.scan(TableName=store.table_name)["Items"]
    return [
        (i["PK"]["S"].removeprefix("NOTICE#"), i["SK"]["S"].removeprefix("NOTICE#"))
        for i in items
        if i["PK"]["S"].startswith("NOTICE#")
    ]


def test_a_claim_is_taken_once_until_it_lapses_and_done_is_final(moto_store: TicketStore) -> None:
    ledger = NoticeLedger(moto_store)
    first, until = ledger.claim("evt_1", "email", now_ms=1_000)
    assert first == Claim.TAKEN
    assert ledger.claim("evt_1", "email", now_ms=1_001)[0] == Claim.BUSY
    assert ledger.claim("evt_1", "webhooks", now_ms=1_001)[0] == Claim.TAKEN  # its own marker
    # After the lease, a claim that was never completed is taken over...
    later = 1_000 + CLAIM_LEASE_MS + 1
    taken_over, new_until = ledger.claim("evt_1", "email", now_ms=later)
    assert taken_over == Claim.TAKEN
    # ...and the first holder's late "done" leaves the taker's claim alone.
    ledger.done("evt_1", "email", until)
    assert ledger.claim("evt_1", "email", now_ms=later + 1)[0] == Claim.BUSY
    ledger.done("evt_1", "email", new_until)
    assert ledger.claim("evt_1", "email", now_ms=later + 10 * CLAIM_LEASE_MS)[0] == Claim.DONE
    # A claim given back after a failed effect can be taken again at once.
    _, held = ledger.claim("evt_2", "email", now_ms=1_000)
    ledger.release("evt_2", "email", held)
    assert ledger.claim("evt_2", "email", now_ms=1_001)[0] == Claim.TAKEN


def test_ses_sends_the_promotion_email_with_text_and_html(
    moto_store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    ses = boto3.client("sesv2", region_name="us-east-1")
    ses.create_email_identity(EmailIdentity=SENDER)
    promoted = DomainEvent("evt_" + "0" * 32, kinds.PLACE_PROMOTED, 7, "t", "bob@example.com")
    message = mail.compose(promoted, "Gig")
    assert message is not None
    mail.SesMailer(SENDER, ses).send(message)
    [sent] = ses_backends["123456789012"]["us-east-1"].sent_messages
    assert sent.destinations["ToAddresses"] == ["bob@example.com"]
    assert sent.subject == "You have a ticket for Gig"
    assert "it is now yours" in sent.body and "<p>" in sent.body


def test_ses_refuses_an_unverified_sender() -> None:
    with mock_aws():
        ses = boto3.client("sesv2", region_name="us-east-1")
        promoted = DomainEvent("evt_x", kinds.PLACE_PROMOTED, 7, "t", "bob@example.com")
        message = mail.compose(promoted, "Gig")
        assert message is not None
        with pytest.raises(ses.exceptions.MessageRejected):
            mail.SesMailer(SENDER, ses).send(message)


@pytest.mark.parametrize(
    "hostile",
    [
        "Gig\r\nBcc: everyone@example.com",
        "Gig\nX-Injected: 1",
        "Gig\u2028Bcc: x@example.com",
        # RFC 2047 encoded words, which the mail library would decode into line breaks
        "=?utf-8?q?Gig=0D=0ABcc:_attacker@evil.com?=",
        "=?utf-8?b?R2lnDQpCY2M6IGF0dGFja2VyQGV2aWwuY29tDQpYLUluamVjdGVkOiB5ZXM=?=",
        "Gig =?utf-8?q?=0D=0AX-Injected:_1?= night",
    ],
)
def test_an_event_name_cannot_add_mail_headers(hostile: str, tmp_path: Path) -> None:
    cancelled = DomainEvent("evt_y", kinds.PLACE_RELEASED, 7, "t", "bob@example.com")
    message = mail.compose(cancelled, hostile)
    assert message is not None
    mail.OutboxMailer(SENDER, tmp_path).send(message)
    [parsed] = read_outbox(tmp_path)
    assert parsed["Bcc"] is None and parsed["X-Injected"] is None
    raw = next(tmp_path.glob("*.eml")).read_bytes()
    assert b"\nBcc" not in raw and b"\nX-Injected" not in raw
    assert "\n" not in str(parsed["Subject"]) and "\r" not in str(parsed["Subject"])
    assert list(parsed.keys()) == [
        "From",
        "To",
        "Subject",
        "Date",
        "Message-ID",
        "MIME-Version",
        "Content-Type",
    ]


@pytest.mark.dynamodb_local
def test_a_table_made_before_notifications_gets_its_stream(local_store: TicketStore) -> None:
    """``make dev`` keeps data across versions: its older table is given the stream."""
    from devtools.tables import create_table_if_missing

    client = local_store.client  # made without a stream, as before notifications
    assert not _stream_enabled(local_store)
    assert create_table_if_missing(client, local_store.table_name) is False
    assert _stream_enabled(local_store)
    event_id = booking.create_event(local_store, "Gig", 1, owner_id=ORGANISER_ID).event_id
    booking.book_ticket(local_store, event_id, "ann@example.com", None)
    collected = Collected()
    poller_for(local_store, collected).drain()
    assert [(e.type, e.email) for e in collected.events] == [
        (kinds.PLACE_BOOKED, "ann@example.com")
    ]


def _stream_enabled(store: TicketStore) -> bool:
    table = store.client.describe_table(TableName=store.table_name)["Table"]
    return bool(table.get("StreamSpecification", {}).get("StreamEnabled"))


@pytest.mark.dynamodb_local
def test_end_to_end_the_promoted_person_is_emailed_once_and_a_signed_webhook_is_delivered_once(
    streamed_store: TicketStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Book to sold out, join the waiting list, cancel: through the deployed handlers
    (``app.notify_changes`` fed by the stream poller, ``app.deliver_webhooks`` by the local
    queue), with the outbox as the mail transport and a receiver that checks signatures."""
    import app
    from devtools.local_deliveries import deliver_due

    store, outbox = streamed_store, tmp_path / "outbox"
    monkeypatch.setenv(MAIL_FROM_ENV, SENDER)
    monkeypatch.setenv(MAIL_OUTBOX_ENV, str(outbox))
    monkeypatch.setenv(WEBHOOKS_ALLOW_LOOPBACK_ENV, "1")
    event_id = booking.create_event(store, "Gig", 1, owner_id=ORGANISER_ID).event_id
    with Receiver([200]) as receiver:
        secret = endpoints.register(store, THE_ORGANISER, receiver.url, event_id).endpoint.secret
        booking.book_ticket(store, event_id, "ann@example.com", None)  # the last ticket
        booking.book_ticket(store, event_id, "bob@example.com", None)  # waiting list
        booking.cancel_booking(store, event_id, "ann@example.com")  # bob is promoted

        poller_for(store, app.notify_changes).drain()
        deliver_due(app.deliver_webhooks)
        emails = read_outbox(outbox)
        stamps = {p.name: p.stat().st_mtime_ns for p in outbox.iterdir()}
        deliveries = list(receiver.received)

        # The same stream delivered again from its start, and the queue run again.
        poller_for(store, app.notify_changes).drain()
        deliver_due(app.deliver_webhooks)
        assert {p.name: p.stat().st_mtime_ns for p in outbox.iterdir()} == stamps
        assert receiver.received == deliveries

    promotions = [m for m in emails if m["Subject"] == "You have a ticket for Gig"]
    assert [m["To"] for m in promotions] == ["bob@example.com"]
    assert sorted((str(m["To"]), str(m["Subject"])) for m in emails) == [
        ("ann@example.com", "Your booking for Gig is cancelled"),
        ("ann@example.com", "Your ticket for Gig"),
        ("bob@example.com", "You have a ticket for Gig"),
    ]
    now_s = int(time.time())
    bodies = []
    for _path, headers, body in deliveries:
        verify_as_a_receiver(secret, headers, body, now_s)
        bodies.append(json.loads(body))
    assert len({headers["webhook-id"] for _, headers, _ in deliveries}) == len(deliveries)
    promoted = [b for b in bodies if b["type"] == kinds.PLACE_PROMOTED]
    assert [(b["data"]["eventId"], b["data"]["userEmail"]) for b in promoted] == [
        (event_id, "bob@example.com")
    ]
    assert sorted(b["type"] for b in bodies) == sorted(
        [kinds.PLACE_BOOKED, kinds.PLACE_WAITLISTED, kinds.PLACE_CANCELLED, kinds.PLACE_PROMOTED]
    )
    waitlisted = next(b for b in bodies if b["type"] == kinds.PLACE_WAITLISTED)
    assert waitlisted["data"]["position"] is None  # promoted before the notice was made


def test_a_refused_email_is_reported_without_the_address(
    moto_store: TicketStore, capsys: pytest.CaptureFixture[str]
) -> None:
    """SES names the addresses it refuses in its message; the log line keeps the code only."""
    event_id = booking.create_event(moto_store, "Gig", 1, owner_id=ORGANISER_ID).event_id
    record = {
        "eventID": "1",
        "eventName": "INSERT",
        "dynamodb": {
            "SequenceNumber": "42",
            "ApproximateCreationDateTime": 1_800_000_000,
            "Keys": {"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": "PERSON#bob@example.com"}},
            "NewImage": {"status": {"S": "BOOKED"}},
        },
    }
    ses = boto3.client("sesv2", region_name="us-east-1")  # the sender is not verified
    dispatcher = Dispatcher(moto_store, mail.SesMailer("bob@example.com", ses), NoWebhooks())
    assert dispatcher.handle([record]) == ["42"]
    output = capsys.readouterr().out
    assert "MessageRejected" in output
    assert "@" not in output


@pytest.mark.dynamodb_local
def test_people_are_emailed_side_by_side_and_each_persons_emails_in_order(
    streamed_store: TicketStore,
) -> None:
    """One event's records all come down one shard: different people's are handled at once
    (else a flash sale's emails queue one SES call at a time), one person's in order."""
    store = streamed_store
    event_id = booking.create_event(store, "Gig", 20, owner_id=ORGANISER_ID).event_id
    people = [f"p{n}@example.com" for n in range(12)]
    for person in people:
        booking.book_ticket(store, event_id, person, None)
    for person in people[:6]:
        booking.cancel_booking(store, event_id, person)

    lock = threading.Lock()
    in_flight, peak, order = [0], [0], []

    class Slow:
        def send(self, message: mail.Email) -> None:
            with lock:
                in_flight[0] += 1
                peak[0] = max(peak[0], in_flight[0])
            time.sleep(0.2)
            with lock:
                in_flight[0] -= 1
                order.append((message.to, message.subject))

    def handle(lambda_event: dict[str, Any], context: Any) -> dict[str, Any]:
        failed = Dispatcher(store, Slow(), NoWebhooks()).handle(lambda_event["Records"])
        return {"batchItemFailures": [{"itemIdentifier": s} for s in failed]}

    poller_for(store, handle).drain()
    assert len(order) == 18
    assert peak[0] > 1
    for person in people[:6]:
        mine = [subject for to, subject in order if to == person]
        assert mine == ["Your ticket for Gig", "Your booking for Gig is cancelled"]


def test_an_email_that_can_never_be_sent_is_given_up_not_retried(
    moto_store: TicketStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A poison record must not hold up the stream: an address the mail library refuses is
    counted and logged (without the address) and its notice is done."""
    event_id = booking.create_event(moto_store, "Gig", 1, owner_id=ORGANISER_ID).event_id
    poison = "=?utf-8?q?x=0D=0A?=@example.com"
    record = {
        "eventID": "2",
        "eventName": "INSERT",
        "dynamodb": {
            "SequenceNumber": "43",
            "ApproximateCreationDateTime": 1_800_000_000,
            "Keys": {"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": f"PERSON#{poison}"}},
            "NewImage": {"status": {"S": "BOOKED"}},
        },
    }
    dispatcher = Dispatcher(moto_store, mail.OutboxMailer(SENDER, tmp_path), NoWebhooks())
    assert dispatcher.handle([record]) == []
    assert list(tmp_path.glob("*.eml")) == []
    output = capsys.readouterr().out
    assert "email undeliverable" in output and "x=0D=0A" not in output
    [(notice, effect)] = read_ids(moto_store)
    assert NoticeLedger(moto_store).claim(notice, effect, now_ms=10**13)[0] == Claim.DONE


def test_an_endpoint_gets_nothing_from_before_the_minute_it_was_registered(
    moto_store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stream read again from its start must not send a new endpoint old history."""
    from chalicelib.notifications.webhook_link import OrganiserWebhooks
    from chalicelib.webhooks.queue import LocalDeliveryQueue

    monkeypatch.setenv(WEBHOOKS_ALLOW_LOOPBACK_ENV, "1")
    event_id = booking.create_event(moto_store, "Gig", 1, owner_id=ORGANISER_ID).event_id
    endpoint = endpoints.register(
        moto_store, THE_ORGANISER, "http://127.0.0.1:9/in", event_id
    ).endpoint
    queue = LocalDeliveryQueue()
    webhooks = OrganiserWebhooks(moto_store, queue)

    def news(at: str) -> DomainEvent:
        return DomainEvent("evt_" + at, kinds.PLACE_BOOKED, event_id, at, "ann@example.com")

    old = news("2026-01-01T00:00:00.000+00:00")
    same_minute = news(endpoint.created_at[:16] + ":00.000+00:00")
    assert not webhooks.wanted(ORGANISER_ID, old)
    assert webhooks.enqueue(ORGANISER_ID, old) == 0
    assert webhooks.wanted(ORGANISER_ID, same_minute)
    assert webhooks.enqueue(ORGANISER_ID, same_minute) == 1
