"""Transient DynamoDB failures: classification, bounded retry, 503, and idempotent replays."""

from __future__ import annotations

import random
import time

import pytest
from botocore.exceptions import ClientError, ConnectionClosedError, ReadTimeoutError

from chalicelib.errors import ServiceBusy
from chalicelib.retry import RetryPolicy, is_transient
from chalicelib.storage import TicketStore, ticket_store
from devtools.faults import APPLIED_THEN_LOST, DELAYS, REFUSALS, FaultInjector
from devtools.harness import RequestMeter
from tests.conftest import ORGANISER_ID, Api
from tests.test_validation import table_snapshot


def client_error(code: str, status: int = 400, reasons: list[str] | None = None) -> ClientError:
    response: dict = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    if reasons is not None:
        response["CancellationReasons"] = [{"Code": r} for r in reasons]
    return ClientError(response, "TransactWriteItems")


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (client_error("TransactionConflictException"), True),
        (client_error("ProvisionedThroughputExceededException"), True),
        (client_error("ThrottlingException"), True),
        (client_error("RequestLimitExceeded"), True),
        (client_error("InternalServerError", 500), True),
        (client_error("SomethingNew", 503), True),
        (client_error("TransactionInProgressException"), True),
        (
            client_error("TransactionCanceledException", reasons=["TransactionConflict", "None"]),
            True,
        ),
        (client_error("TransactionCanceledException", reasons=["None", "ThrottlingError"]), True),
        (
            client_error(
                "TransactionCanceledException", reasons=["ConditionalCheckFailed", "None"]
            ),
            False,
        ),
        (
            client_error(
                "TransactionCanceledException",
                reasons=["ConditionalCheckFailed", "TransactionConflict"],
            ),
            False,
        ),
        (client_error("ValidationException"), False),
        (client_error("ConditionalCheckFailedException"), False),
        (client_error("ResourceNotFoundException"), False),
        (ReadTimeoutError(endpoint_url="x"), True),
        (ConnectionClosedError(endpoint_url="x"), True),
        (ValueError("bug"), False),
    ],
)
def test_transient_errors_are_told_apart_from_answers(error: Exception, transient: bool) -> None:
    assert is_transient(error) is transient


def test_policy_retries_a_bounded_number_of_times_with_jittered_growing_delays() -> None:
    slept: list[float] = []
    policy = RetryPolicy(max_attempts=5, base_delay=0.01, max_delay=0.05, sleep=slept.append)
    calls = 0

    def always_throttled() -> None:
        nonlocal calls
        calls += 1
        raise client_error("ThrottlingException")

    with pytest.raises(ServiceBusy, match="ThrottlingException"):
        policy.run("PutItem", always_throttled)
    assert calls == 5
    assert len(slept) == 4
    assert all(0 <= s <= 0.05 for s in slept)


def test_jitter_spreads_delays_under_their_exponential_cap() -> None:
    policy = RetryPolicy(base_delay=0.01, max_delay=1.0, rng=random.Random(7))
    third = [policy.delay(3) for _ in range(200)]
    assert max(third) <= 0.04
    assert len({round(d, 6) for d in third}) > 150  # full jitter, not a fixed delay


def test_policy_does_not_retry_a_definite_answer() -> None:
    calls = 0

    def rejected() -> None:
        nonlocal calls
        calls += 1
        raise client_error("ValidationException")

    with pytest.raises(ClientError):
        RetryPolicy(sleep=lambda _: None).run("PutItem", rejected)
    assert calls == 1


@pytest.mark.parametrize("kind", sorted(REFUSALS))
def test_booking_survives_transient_refusals(api: Api, kind: str) -> None:
    event_id = api.create_event(2)
    meter = RequestMeter().attach(ticket_store().client)
    faults = FaultInjector.scripted("TransactWriteItems", [kind, kind]).attach(
        ticket_store().client
    )
    reply = api.book(event_id, "a@example.com")
    assert reply.status == 201
    assert faults.injected[kind] == 2
    assert meter.snapshot() == {"TransactWriteItems": 3}
    status = api.status_of(event_id)
    assert (status["availableTickets"], status["bookedTickets"]) == (1, 1)


def test_cancellation_with_promotion_survives_conflicts(api: Api) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    api.book(event_id, "next@example.com")
    faults = FaultInjector.scripted(
        "TransactWriteItems", ["transaction_conflict", "throttling", "internal"]
    ).attach(ticket_store().client)
    reply = api.cancel(event_id, "holder@example.com")
    assert reply.status == 200
    assert reply.body["ticketPassedToWaitingList"] is True
    assert faults.total() == 3
    assert api.standing(event_id, "next@example.com").body["status"] == "BOOKED"


@pytest.mark.parametrize("kind", ["throttling", "conflict", "internal"])
def test_exhausted_retries_answer_503_with_retry_after_and_write_nothing(
    api: Api, store: TicketStore, kind: str
) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "holder@example.com")
    before = table_snapshot(store)
    FaultInjector.always("TransactWriteItems", kind).attach(ticket_store().client)
    for reply in (
        api.book(event_id, "late@example.com"),
        api.cancel(event_id, "holder@example.com"),
    ):
        assert reply.status == 503
        assert reply.body["Code"] == "ServiceUnavailable"
        assert int(reply.headers["Retry-After"]) >= 1
    assert table_snapshot(store) == before


@pytest.mark.parametrize(
    ("kind", "message"),
    [("throttling", "nothing was changed"), (APPLIED_THEN_LOST, "may have been applied")],
)
def test_503_says_whether_the_request_may_have_been_applied(
    api: Api, kind: str, message: str
) -> None:
    event_id = api.create_event(1)
    FaultInjector.always("TransactWriteItems", kind).attach(ticket_store().client)

    reply = api.book(event_id, "late@example.com", **{"Idempotency-Key": "k-1"})

    assert reply.status == 503
    assert message in reply.body["Message"]


def test_a_booking_applied_behind_a_503_is_replayed_by_the_clients_retry(api: Api) -> None:
    event_id = api.create_event(1)
    faults = FaultInjector.always("TransactWriteItems", APPLIED_THEN_LOST)
    faults.attach(ticket_store().client)
    assert api.book(event_id, "late@example.com", **{"Idempotency-Key": "k-1"}).status == 503
    faults.choose = lambda operation, params: None  # DynamoDB recovers

    reply = api.book(event_id, "late@example.com", **{"Idempotency-Key": "k-1"})

    assert (reply.status, reply.body["status"], reply.body["idempotentReplay"]) == (
        201,
        "BOOKED",
        True,
    )
    status = api.status_of(event_id)
    assert (status["bookedTickets"], status["availableTickets"]) == (1, 0)


def test_reads_are_retried_too(api: Api) -> None:
    event_id = api.create_event(1)
    faults = FaultInjector.scripted("GetItem", ["throughput", "internal"]).attach(
        ticket_store().client
    )
    assert api.get(f"/status/{event_id}").status == 200
    assert faults.total() == 2


@pytest.mark.parametrize("kind", DELAYS)
def test_a_delayed_call_is_slow_but_succeeds_once(api: Api, kind: str) -> None:
    """Delays widen race windows (tests/test_history.py); they never fail or repeat a call."""
    event_id = api.create_event(2)
    meter = RequestMeter().attach(ticket_store().client)
    faults = FaultInjector.scripted("TransactWriteItems", [kind])
    faults.delay = 0.2
    faults.attach(ticket_store().client)
    started = time.perf_counter()
    assert api.book(event_id, "a@example.com").status == 201
    assert time.perf_counter() - started >= 0.2
    assert faults.injected[kind] == 1
    assert meter.snapshot() == {"TransactWriteItems": 1}
    assert api.status_of(event_id)["bookedTickets"] == 1


def test_applied_but_lost_booking_is_not_applied_twice(local_store: TicketStore) -> None:
    """DynamoDB Local honours ClientRequestToken (moto ignores it), so this runs there."""
    from chalicelib import booking

    event = booking.create_event(local_store, "Gig", 3, owner_id=ORGANISER_ID)
    meter = RequestMeter().attach(local_store.client)
    faults = FaultInjector.scripted("TransactWriteItems", [APPLIED_THEN_LOST] * 2).attach(
        local_store.client
    )
    outcome = booking.book_ticket(local_store, event.event_id, "a@example.com")
    assert outcome.status == "BOOKED"
    assert faults.injected[APPLIED_THEN_LOST] == 2
    # Three sends of the same transaction, one effect.
    assert meter.snapshot() == {"TransactWriteItems": 3}
    after = local_store.get_event(event.event_id)
    assert after is not None
    assert (after.available_tickets, after.booked_tickets) == (2, 1)


def test_applied_but_lost_promotion_happens_once(local_store: TicketStore) -> None:
    from chalicelib import booking

    event = booking.create_event(local_store, "Gig", 1, owner_id=ORGANISER_ID)
    for email in ("holder@example.com", "first@example.com", "second@example.com"):
        booking.book_ticket(local_store, event.event_id, email)
    FaultInjector.scripted("TransactWriteItems", [APPLIED_THEN_LOST]).attach(local_store.client)
    outcome = booking.cancel_booking(local_store, event.event_id, "holder@example.com")
    assert outcome.promoted_waiting_person is True
    assert booking.get_standing(local_store, event.event_id, "first@example.com").status == (
        "BOOKED"
    )
    second = booking.get_standing(local_store, event.event_id, "second@example.com")
    assert (second.status, second.position) == ("WAITLISTED", 1)


def test_client_retry_with_idempotency_key_replays_instead_of_409(api: Api) -> None:
    event_id = api.create_event(1)
    first = api.book(event_id, "a@example.com", **{"Idempotency-Key": "req-123"})
    again = api.book(event_id, "A@example.com", **{"Idempotency-Key": "req-123"})
    assert (first.status, again.status) == (201, 201)
    assert again.body["idempotentReplay"] is True
    assert api.book(event_id, "a@example.com").status == 409
    assert api.book(event_id, "a@example.com", **{"Idempotency-Key": "other"}).status == 409
    waiting = api.book(event_id, "w@example.com", **{"Idempotency-Key": "req-w"})
    replay = api.book(event_id, "w@example.com", **{"Idempotency-Key": "req-w"})
    assert (waiting.status, replay.status) == (202, 202)
    assert replay.body["position"] == 1
    assert api.status_of(event_id)["waitingListCount"] == 1
