"""The invariant audit: it finds each kind of corruption, and stays quiet on a clean table.

Corruption is written straight into the table (as a bug or a hand edit would),
bypassing the service, and the audit must name the broken rule.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from chalicelib.audit import audit_events
from chalicelib.storage import TicketStore
from chalicelib.storage.schema import event_key, person_key
from devtools import audit as audit_cli
from tests.conftest import Api, local_only, log_and_metric_lines, moto_only


def seed(api: Api) -> int:
    """An event of 2 tickets: a and b booked, c and d waiting (c first)."""
    event_id = api.create_event(2)
    for email in ("a@example.com", "b@example.com", "c@example.com", "d@example.com"):
        assert api.book(event_id, email).status in (201, 202)
    return event_id


def set_event(store: TicketStore, event_id: int, expression: str, **values: int) -> None:
    store.client.update_item(
        TableName=store.table_name,
        Key=event_key(event_id),
        UpdateExpression=expression,
        ExpressionAttributeValues={f":{k}": {"N": str(v)} for k, v in values.items()},
    )


def set_place(
    store: TicketStore, event_id: int, email: str, expression: str, **values: Any
) -> None:
    names = {"#s": "status"} if "#s" in expression else {}
    store.client.update_item(
        TableName=store.table_name,
        Key=person_key(event_id, email),
        UpdateExpression=expression,
        ExpressionAttributeValues=values,
        **({"ExpressionAttributeNames": names} if names else {}),
    )


def put_place(store: TicketStore, event_id: int, email: str, **attributes: Any) -> None:
    store.client.put_item(
        TableName=store.table_name,
        Item={**person_key(event_id, email), **attributes},
    )


CORRUPTIONS: dict[str, Callable[[TicketStore, int], None]] = {
    "tickets-conserved": lambda s, e: set_event(s, e, "SET availableTickets = :n", n=1),
    "booked-count": lambda s, e: set_event(
        s, e, "SET bookedTickets = :b, availableTickets = :a", b=1, a=1
    ),
    "waiting-count": lambda s, e: set_event(s, e, "SET waitingCount = :n", n=5),
    "no-wait-while-available": lambda s, e: (
        s.client.delete_item(TableName=s.table_name, Key=person_key(e, "a@example.com")),
        set_event(s, e, "SET availableTickets = :a, bookedTickets = :b", a=1, b=1),
    ),
    "one-place-per-person": lambda s, e: (
        put_place(s, e, "A@Example.com", status={"S": "BOOKED"}),
        set_event(s, e, "SET bookedTickets = :b, totalTickets = :t", b=3, t=3),
    ),
    "status": lambda s, e: set_place(s, e, "b@example.com", "SET #s = :s", **{":s": {"S": "LOST"}}),
    "attendee-index": lambda s, e: s.client.update_item(
        TableName=s.table_name,
        Key=person_key(e, "a@example.com"),
        UpdateExpression="REMOVE GSI1PK, GSI1SK",
    ),
    "fifo-promotion": lambda s, e: set_place(
        s,
        e,
        "a@example.com",
        "SET promotedFromWaitKey = :k",
        **{":k": {"N": str(2**62)}},
    ),
}


def invoke_scheduled_audit(api: Api) -> dict[str, Any]:
    """Invoke the scheduled Lambda as EventBridge would, through Chalice's test client."""
    event = api.client.events.generate_cw_event(
        source="aws.events", detail_type="Scheduled Event", detail={}, resources=[]
    )
    return api.client.lambda_.invoke("audit_invariants", event).payload


@pytest.mark.parametrize("rule", sorted(CORRUPTIONS))
@moto_only
def test_audit_names_each_broken_rule(api: Api, store: TicketStore, rule: str) -> None:
    event_id = seed(api)
    assert audit_events(store).clean

    CORRUPTIONS[rule](store, event_id)

    report = audit_events(store)
    assert rule in {v.rule for v in report.violations}, report.to_json()
    assert not report.clean


@moto_only
def test_scheduled_audit_logs_one_error_line_per_violation(
    api: Api, store: TicketStore, capsys: pytest.CaptureFixture[str]
) -> None:
    clean_event, broken_event = seed(api), seed(api)
    capsys.readouterr()
    set_event(store, broken_event, "SET waitingCount = :n", n=7)

    result = invoke_scheduled_audit(api)

    assert result["eventsChecked"] == 2
    assert not result["clean"]
    lines, metrics = log_and_metric_lines(capsys.readouterr().out)
    assert metrics == {"AuditViolations": 1, "EventsAudited": 2}
    errors = [line for line in lines if line["message"] == "invariant violation"]
    assert [(e["level"], e["eventId"], e["rule"]) for e in errors] == [
        ("ERROR", broken_event, "waiting-count")
    ]
    assert clean_event not in {e["eventId"] for e in errors}
    [summary] = [line for line in lines if line["message"] == "audit finished"]
    assert summary["violationCount"] == 1


@moto_only
def test_scheduled_audit_of_a_clean_table_logs_no_error(
    api: Api, capsys: pytest.CaptureFixture[str]
) -> None:
    seed(api)
    capsys.readouterr()
    result = invoke_scheduled_audit(api)
    assert result == {"clean": True, "eventsChecked": 1, "violations": []}
    lines, metrics = log_and_metric_lines(capsys.readouterr().out)
    assert metrics == {"AuditViolations": 0, "EventsAudited": 1}
    assert [line["level"] for line in lines] == ["INFO"]


@pytest.mark.dynamodb_local
@local_only
def test_audit_command_reports_json_and_exit_status(
    api: Api, store: TicketStore, capsys: pytest.CaptureFixture[str]
) -> None:
    event_id = seed(api)
    capsys.readouterr()
    endpoint = store.client.meta.endpoint_url
    argv = ["--table", store.table_name, "--endpoint", endpoint]

    assert audit_cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["clean"] is True

    set_event(store, event_id, "SET availableTickets = :n", n=9)
    assert audit_cli.main([*argv, "--event", str(event_id)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["eventsChecked"] == 1
    assert "tickets-conserved" in {v["rule"] for v in report["violations"]}


@pytest.mark.parametrize(
    "corrupt",
    [
        # A waiting place listed as an attendee (a promotion's keys on a place still waiting).
        lambda s, e: set_place(
            s,
            e,
            "c@example.com",
            "SET GSI1PK = :p, GSI1SK = :k",
            **{":p": {"S": f"ATTENDEES#{e}"}, ":k": {"N": "1"}},
        ),
        # A ticket listed under another event's attendees.
        lambda s, e: set_place(
            s, e, "b@example.com", "SET GSI1PK = :p", **{":p": {"S": f"ATTENDEES#{e + 1}"}}
        ),
    ],
    ids=["waiting-place-listed", "listed-under-another-event"],
)
@moto_only
def test_audit_checks_the_attendee_list_keys(
    api: Api, store: TicketStore, corrupt: Callable[[TicketStore, int], None]
) -> None:
    event_id = seed(api)
    corrupt(store, event_id)
    report = audit_events(store)
    assert {v.rule for v in report.violations} == {"attendee-index"}, report.to_json()
