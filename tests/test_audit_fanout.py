"""The audit in AWS: one queue message per event, a worker per message, continuations.

moto plays SQS and DynamoDB. The scheduled function runs through Chalice's test
client; the worker is called as Lambda calls it, with an SQS event and a Lambda
context whose remaining time the test decides.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from chalicelib.audit import fanout
from chalicelib.audit.cursor import EventCursor
from chalicelib.storage import TicketStore
from chalicelib.storage.schema import event_key
from devtools.synthetic import write_event
from tests.conftest import ROOT, Api, drain, log_and_metric_lines, moto_only

pytestmark = moto_only


@dataclass
class FakeLambdaContext:
    """What the worker uses of Lambda's context: the time it has left."""

    remaining_ms: int
    aws_request_id: str = "test-request"
    function_name: str = "audit_worker"

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


def run_scheduled(api: Api) -> dict[str, Any]:
    event = api.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    return api.client.lambda_.invoke("audit_invariants", event).payload


@pytest.fixture(autouse=True)
def test_stage_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """What Chalice's test client sets around its invocations (the worker is called directly)."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for name, value in {
        **config["environment_variables"],
        **config["stages"]["test"]["environment_variables"],
    }.items():
        monkeypatch.setenv(name, value)


def run_worker(api: Api, body: str, remaining_ms: int = 100_000) -> None:
    """Invoke ``audit_worker`` with one message, as the SQS event source mapping does."""
    from app import app

    event = api.client.events.generate_sqs_event(message_bodies=[body])
    app.handler_map["audit_worker"](event, FakeLambdaContext(remaining_ms))


def run_queue_dry(api: Api, queue: str, remaining_ms: int = 100_000) -> int:
    """Feed every message (continuations included) to the worker until none is left."""
    handled = 0
    while bodies := drain(queue):
        for body in bodies:
            run_worker(api, body, remaining_ms)
            handled += 1
    return handled


def test_the_hourly_function_queues_one_message_per_event_ten_per_call(
    api: Api, audit_queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    events = [api.create_event(1) for _ in range(23)]
    batches: list[int] = []
    fanout.sqs_client().meta.events.register(  # type: ignore[attr-defined]
        "provide-client-params.sqs.SendMessageBatch",
        lambda params, **_: batches.append(len(params["Entries"])),
    )
    capsys.readouterr()

    assert run_scheduled(api) == {"eventsQueued": 23}

    assert batches == [10, 10, 3]
    cursors = [EventCursor.from_json(json.loads(body)) for body in drain(audit_queue)]
    assert sorted(c.event_id for c in cursors) == sorted(events)
    assert all(c == EventCursor.start(c.event_id) for c in cursors)
    lines, metrics = log_and_metric_lines(capsys.readouterr().out)
    assert metrics == {"AuditEventsQueued": 23}
    assert [line["message"] for line in lines] == ["audit queued"]


def test_an_empty_table_queues_nothing_and_says_so(
    api: Api, audit_queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_scheduled(api) == {"eventsQueued": 0}
    assert drain(audit_queue) == []
    _, metrics = log_and_metric_lines(capsys.readouterr().out)
    assert metrics == {"AuditEventsQueued": 0}  # zero, not missing: the fan-out ran


def test_the_worker_continues_an_event_it_cannot_finish_in_time(
    api: Api,
    store: TicketStore,
    audit_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    written = len(write_event(store.client, store.table_name, 1, 45).items)  # pages of 10
    monkeypatch.setattr(fanout, "WORKER_PAGE_SIZE", 10)
    start = json.dumps(EventCursor.start(1).to_json())

    # Less time left than the worker keeps in reserve: one page, then a continuation.
    run_worker(api, start, remaining_ms=fanout.WORKER_RESERVE_MS - 1)

    [body] = drain(audit_queue)
    continuation = EventCursor.from_json(json.loads(body))
    assert continuation.event_id == 1 and continuation.pages == 1 and continuation.steps == 1
    assert continuation.start_key is not None
    assert continuation.groups["event"]["event"]["event_id"] == 1  # read on the first page
    lines, metrics = log_and_metric_lines(capsys.readouterr().out)
    assert metrics == {"AuditContinuations": 1}
    assert [line["message"] for line in lines] == ["audit continues"]

    # Each later invocation is as short of time: one page each, until the verdict.
    run_worker(api, body, remaining_ms=fanout.WORKER_RESERVE_MS - 1)
    steps = 2 + run_queue_dry(api, audit_queue, remaining_ms=fanout.WORKER_RESERVE_MS - 1)

    lines, metrics = log_and_metric_lines(capsys.readouterr().out)
    [audited] = [line for line in lines if line["message"] == "event audited"]
    # The partition's pages + 2 of the waiting list (15 entries), one page per invocation.
    pages = -(-written // 10) + 2
    assert (audited["steps"], audited["pages"], audited["outcome"]) == (pages, pages, "clean")
    assert steps == pages
    assert metrics == {"AuditContinuations": pages - 2, "EventsAudited": 1, "AuditViolations": 0}


def test_with_time_to_spare_the_worker_finishes_in_one_invocation(
    api: Api, store: TicketStore, audit_queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    written = len(write_event(store.client, store.table_name, 1, 45).items)
    run_worker(api, json.dumps(EventCursor.start(1).to_json()))
    assert drain(audit_queue) == []
    lines, metrics = log_and_metric_lines(capsys.readouterr().out)
    [audited] = lines
    assert (audited["message"], audited["steps"], audited["items"]) == (
        "event audited",
        1,
        written + 15,
    )
    assert metrics == {"EventsAudited": 1, "AuditViolations": 0}


def test_fan_out_then_workers_audit_every_event_and_name_the_broken_one(
    api: Api,
    store: TicketStore,
    audit_queue: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    clean, broken = api.create_event(2), api.create_event(2)
    for event_id in (clean, broken):
        for person in ("a@example.com", "b@example.com", "c@example.com"):
            api.book(event_id, person)
    store.client.update_item(
        TableName=store.table_name,
        Key=event_key(broken),
        UpdateExpression="SET waitingCount = :n",
        ExpressionAttributeValues={":n": {"N": "7"}},
    )
    monkeypatch.setattr(fanout, "WORKER_PAGE_SIZE", 2)  # several invocations per event
    capsys.readouterr()

    run_scheduled(api)
    invocations = run_queue_dry(api, audit_queue, remaining_ms=1_000)

    lines, metrics = log_and_metric_lines(capsys.readouterr().out)
    violations = [line for line in lines if line["message"] == "invariant violation"]
    assert [(v["level"], v["eventId"], v["rule"]) for v in violations] == [
        ("ERROR", broken, "waiting-count")
    ]
    audited = {line["eventId"]: line for line in lines if line["message"] == "event audited"}
    assert set(audited) == {clean, broken}
    assert audited[clean]["level"] == "INFO" and audited[broken]["level"] == "ERROR"
    assert audited[broken]["attempts"] == 3  # confirmed by two re-reads
    assert metrics["EventsAudited"] == 2 and metrics["AuditViolations"] == 1
    assert metrics["AuditEventsQueued"] == 2
    assert invocations == 2 + metrics["AuditContinuations"]


def test_an_event_that_needs_too_many_invocations_is_given_up_loudly(
    api: Api, audit_queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = api.create_event(1)
    stuck = EventCursor.start(event_id)
    stuck.steps = fanout.MAX_STEPS
    capsys.readouterr()

    run_worker(api, json.dumps(stuck.to_json()))

    assert drain(audit_queue) == []
    lines, metrics = log_and_metric_lines(capsys.readouterr().out)
    assert metrics == {"AuditEventsUnfinished": 1}
    [line] = lines
    assert (line["level"], line["message"], line["eventId"]) == (
        "ERROR",
        "audit unfinished",
        event_id,
    )


def test_a_message_the_worker_cannot_handle_fails_so_sqs_retries_it(
    api: Api, audit_queue: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ValueError, match="audit cursor"):
        run_worker(api, json.dumps({"eventId": 1}))
    _, metrics = log_and_metric_lines(capsys.readouterr().out)
    assert metrics == {"AuditErrors": 1}


def test_the_worker_refuses_to_run_without_its_queue(api: Api, store: TicketStore) -> None:
    with pytest.raises(RuntimeError, match=fanout.AUDIT_QUEUE_URL_ENV):
        run_worker(api, json.dumps(EventCursor.start(1).to_json()))
