"""Organiser controls: the attendee list, the waiting list and "my events", on both backends.

Who may read them (the event's own organiser only), their order (booking order,
promotions included; arrival order with exact positions), pagination that walks
each list exactly once, CSV that says what JSON says (and no spreadsheet
formulas), cursors as hostile input, and pages read while promotions and leaves
race them.
"""

from __future__ import annotations

import base64
import csv
import io
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from chalicelib import booking, csv_answers
from chalicelib.audit import audit_event
from chalicelib.contract import schemas
from chalicelib.storage import TicketStore, ticket_store
from devtools.harness import RequestMeter
from tests.conftest import ORGANISER, Api

RIVAL = "rival-organiser@example.com"
LISTS = ("attendees", "waiting-list")


def sold_out_event(api: Api, tickets: int, holders: list[str], waiting: list[str]) -> int:
    """An event of ``tickets`` booked by ``holders`` (in that order), then ``waiting`` in line."""
    event_id = api.create_event(tickets)
    for email in holders:
        assert api.book(event_id, email).status == 201, email
    for email in waiting:
        assert api.book(event_id, email).status == 202, email
    return event_id


def walk(api: Api, path: str, limit: int, **get: Any) -> tuple[list[dict[str, Any]], int]:
    """Every entry of a list, following nextCursor page by page; and the number of pages."""
    key = "attendees" if path.endswith("attendees") else "waitingList"
    entries: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        url = f"{path}?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        reply = api.get(url, **get)
        assert reply.status == 200, reply
        assert len(reply.body[key]) <= limit
        assert reply.headers.get(schemas.NEXT_CURSOR_HEADER) == reply.body["nextCursor"]
        entries += reply.body[key]
        pages += 1
        cursor = reply.body["nextCursor"]
        if cursor is None:
            return entries, pages


def emails(entries: list[dict[str, Any]]) -> list[str]:
    return [entry["userEmail"] for entry in entries]


def waiting_rows(api: Api, event_id: int) -> list[tuple[int, str]]:
    entries, _ = walk(api, f"/events/{event_id}/waiting-list", 100)
    return [(entry["position"], entry["userEmail"]) for entry in entries]


# -- who may read them --------------------------------------------------------------------


@pytest.mark.parametrize("which", LISTS)
def test_an_event_list_is_for_its_own_organiser_only(api: Api, which: str) -> None:
    event_id = sold_out_event(api, 1, ["a@example.com"], ["b@example.com"])
    path = f"/events/{event_id}/{which}"

    anonymous = api.get(path, token=None)
    assert (anonymous.status, anonymous.body["Code"]) == (401, "UnauthorizedError")
    assert anonymous.headers["WWW-Authenticate"].startswith("Bearer")
    person = api.get(path, token=api.token("a@example.com"))
    assert person.status == 403
    assert person.body == {"Code": "ForbiddenError", "Message": "only organisers may do this"}
    rival = api.get(path, token=api.token(RIVAL, organiser=True))
    assert rival.status == 403
    assert rival.body["Message"] == (
        f"only the organiser of event {event_id} may see its "
        + ("attendees" if which == "attendees" else "waiting list")
    )
    owner = api.get(path)
    assert owner.status == 200
    assert emails(owner.body["attendees" if which == "attendees" else "waitingList"]) == [
        "a@example.com" if which == "attendees" else "b@example.com"
    ]


@pytest.mark.parametrize("which", LISTS)
def test_an_unknown_event_is_404_for_an_organiser(api: Api, which: str) -> None:
    reply = api.get(f"/events/999/{which}")
    assert reply.status == 404
    assert reply.body == {"Code": "NotFoundError", "Message": "event 999 does not exist"}
    # A non-organiser is refused before the event is looked up at all.
    assert api.get(f"/events/999/{which}", token=api.token("a@example.com")).status == 403


def test_my_events_are_the_callers_own_newest_first(api: Api) -> None:
    mine = [api.create_event(1, name=f"mine {n}") for n in range(5)]
    theirs = api.create_event(1, name="theirs", organiser=RIVAL)
    api.create_event(1, name="theirs too", organiser=RIVAL)

    seen: list[int] = []
    cursor: str | None = None
    pages = 0
    while True:
        reply = api.get("/organisers/me/events?limit=2" + (f"&cursor={cursor}" if cursor else ""))
        assert reply.status == 200, reply
        seen += [event["eventId"] for event in reply.body["events"]]
        pages += 1
        cursor = reply.body["nextCursor"]
        if cursor is None:
            break
    assert (seen, pages) == (list(reversed(mine)), 3)
    rivals = api.get("/organisers/me/events", token=api.token(RIVAL, organiser=True))
    assert [e["eventId"] for e in rivals.body["events"]] == [theirs + 1, theirs]
    assert rivals.body["events"][0] == api.get(f"/events/{theirs + 1}").body

    assert api.get("/organisers/me/events", token=None).status == 401
    person = api.get("/organisers/me/events", token=api.token("a@example.com"))
    assert (person.status, person.body["Code"]) == (403, "ForbiddenError")
    fresh = api.get("/organisers/me/events", token=api.token("new@example.com", organiser=True))
    assert fresh.body == {"events": [], "nextCursor": None}


# -- order and positions ------------------------------------------------------------------


def test_attendees_are_in_booking_order_and_the_promoted_come_when_promoted(api: Api) -> None:
    event_id = sold_out_event(
        api,
        3,
        ["a@example.com", "b@example.com", "c@example.com"],
        ["w1@example.com", "w2@example.com"],
    )
    api.cancel(event_id, "b@example.com")  # w1 takes b's ticket, after c booked
    attendees = api.get(f"/events/{event_id}/attendees").body["attendees"]

    assert emails(attendees) == ["a@example.com", "c@example.com", "w1@example.com"]
    assert [a["promotedFromWaitingList"] for a in attendees] == [False, False, True]
    assert {a["status"] for a in attendees} == {"BOOKED"}
    times = [a["bookedAt"] for a in attendees]
    assert times == sorted(times)

    api.cancel(event_id, "a@example.com")  # w2 promoted: last in booking order
    api.cancel(event_id, "w1@example.com")  # back to the pool: nobody waits
    assert api.book(event_id, "late@example.com").status == 201
    assert emails(api.get(f"/events/{event_id}/attendees").body["attendees"]) == [
        "c@example.com",
        "w2@example.com",
        "late@example.com",
    ]
    assert audit_event(ticket_store(), event_id) == []


def test_the_waiting_list_is_in_arrival_order_with_exact_positions(api: Api) -> None:
    waiters = [f"w{n}@example.com" for n in range(7)]
    event_id = sold_out_event(api, 2, ["a@example.com", "b@example.com"], waiters)
    assert waiting_rows(api, event_id) == [(n + 1, w) for n, w in enumerate(waiters)]

    api.cancel(event_id, "w3@example.com")  # leaves from the middle
    api.cancel(event_id, "a@example.com")  # w0 promoted
    api.cancel(event_id, "w1@example.com")  # the head leaves
    api.book(event_id, "late@example.com")

    expected = ["w2@example.com", "w4@example.com", "w5@example.com", "w6@example.com"]
    expected.append("late@example.com")
    assert waiting_rows(api, event_id) == [(n + 1, w) for n, w in enumerate(expected)]
    for position, email in waiting_rows(api, event_id):
        assert api.standing(event_id, email).body["position"] == position
    entry = api.get(f"/events/{event_id}/waiting-list?limit=1").body["waitingList"][0]
    assert entry["status"] == "WAITLISTED"
    created = datetime.fromisoformat(api.get(f"/events/{event_id}").body["createdAt"])
    assert datetime.fromisoformat(entry["joinedAt"]) >= created


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_pages_walk_each_list_exactly_once(api: Api, limit: int) -> None:
    holders = [f"h{n}@example.com" for n in range(5)]
    waiters = [f"w{n}@example.com" for n in range(6)]
    event_id = sold_out_event(api, 5, holders, waiters)
    api.cancel(event_id, "h1@example.com")  # w0 promoted

    attendees, pages = walk(api, f"/events/{event_id}/attendees", limit)
    assert emails(attendees) == [h for h in holders if h != "h1@example.com"] + ["w0@example.com"]
    assert pages == -(-5 // limit)  # the last full page already knows it is the last
    waiting, _ = walk(api, f"/events/{event_id}/waiting-list", limit)
    assert [(w["position"], w["userEmail"]) for w in waiting] == [
        (n + 1, w) for n, w in enumerate(waiters[1:])
    ]


def test_an_empty_list_is_one_empty_page(api: Api) -> None:
    event_id = api.create_event(3)
    assert api.get(f"/events/{event_id}/attendees").body == {
        "eventId": event_id,
        "attendees": [],
        "nextCursor": None,
    }
    assert api.get(f"/events/{event_id}/waiting-list").body == {
        "eventId": event_id,
        "waitingList": [],
        "nextCursor": None,
    }


# -- CSV ----------------------------------------------------------------------------------


def get_csv(api: Api, path: str, accept: str = "text/csv") -> tuple[int, dict[str, str], str]:
    headers = {"Authorization": f"Bearer {api.token(ORGANISER, organiser=True)}", "Accept": accept}
    response = api.client.http.get(path, headers=headers)
    return response.status_code, dict(response.headers), response.body.decode()


@pytest.mark.parametrize(
    ("which", "key", "row"),
    [("attendees", "attendees", "Attendee"), ("waiting-list", "waitingList", "WaitingEntry")],
)
def test_csv_rows_are_the_json_rows(api: Api, which: str, key: str, row: str) -> None:
    waiting = ["c@example.com", "d@example.com", "e@example.com"]
    event_id = sold_out_event(api, 2, ["a@example.com", "b@example.com"], waiting)
    api.cancel(event_id, "a@example.com")  # c promoted
    path = f"/events/{event_id}/{which}?limit=1"
    status, headers, text = get_csv(api, path)

    assert status == 200
    assert headers["Content-Type"].split(";")[0] == "text/csv"
    assert headers["Vary"] == "Accept"
    assert text.endswith("\r\n") and "\n" not in text.replace("\r\n", "")
    lines = list(csv.reader(io.StringIO(text)))
    columns = list(schemas.COMPONENTS[row]["properties"])
    assert lines[0] == columns
    as_json = api.get(path)
    assert [dict(zip(columns, line, strict=True)) for line in lines[1:]] == [
        {k: csv_answers.safe_cell(v) for k, v in entry.items()} for entry in as_json.body[key]
    ]
    assert headers[schemas.NEXT_CURSOR_HEADER] == as_json.body["nextCursor"] is not None
    # The header's cursor walks the CSV pages like nextCursor walks the JSON ones.
    status, _, rest = get_csv(api, f"{path}&cursor={headers[schemas.NEXT_CURSOR_HEADER]}")
    assert status == 200 and len(list(csv.reader(io.StringIO(rest)))) == 2


def test_after_the_event_is_cancelled_the_lists_say_released_like_the_standings(
    api: Api,
) -> None:
    """The records stay (for refunds and notices), and read as every standing does."""
    holders, waiting = ["a@example.com", "b@example.com"], ["c@example.com", "d@example.com"]
    event_id = sold_out_event(api, 2, holders, waiting)
    organiser = {"Authorization": f"Bearer {api.token(ORGANISER, organiser=True)}"}
    reply = api.client.http.post(f"/events/{event_id}/cancel", headers=organiser)
    assert reply.status_code == 200

    attendees, _ = walk(api, f"/events/{event_id}/attendees", 10)
    queue, _ = walk(api, f"/events/{event_id}/waiting-list", 10)
    assert [(e["userEmail"], e["status"]) for e in attendees] == [
        (email, "RELEASED") for email in holders
    ]
    assert [(e["userEmail"], e["status"], e["position"]) for e in queue] == [
        (email, "RELEASED", None) for email in waiting
    ]
    for email in holders + waiting:
        assert api.standing(event_id, email).body["status"] == "RELEASED"
    _, _, text = get_csv(api, f"/events/{event_id}/waiting-list")
    assert list(csv.reader(io.StringIO(text)))[1][:3] == ["", "c@example.com", "RELEASED"]


def test_csv_cells_never_start_a_formula(api: Api) -> None:
    hostile = ["=cmd@example.com", "+sum@example.com", "-one@example.com", "plain@example.com"]
    event_id = sold_out_event(api, 2, hostile[:2], hostile[2:])
    for which in LISTS:
        _, _, text = get_csv(api, f"/events/{event_id}/{which}")
        cells = [cell for line in csv.reader(io.StringIO(text)) for cell in line]
        assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")], cells
    _, _, text = get_csv(api, f"/events/{event_id}/attendees")
    assert [line[0] for line in csv.reader(io.StringIO(text))][1:] == [
        "'=cmd@example.com",
        "'+sum@example.com",
    ]


def test_csv_quoting_and_formula_escaping_follow_rfc_4180_and_owasp() -> None:
    text = csv_answers.render(
        ["a", "b", "c"],
        [{"a": '=HYPERLINK("x")', "b": "@SUM(1)", "c": 3}, {"a": "a,b", "b": "\tx", "c": True}],
    )
    assert text == ('a,b,c\r\n"\'=HYPERLINK(""x"")",\'@SUM(1),3\r\n"a,b",\'\tx,true\r\n')


def test_csv_never_shows_two_different_values_alike() -> None:
    """The escape is escaped too: ``=x`` and ``'=x`` (both valid email local parts) differ."""
    values = ["=x@example.com", "'=x@example.com", "''=x@example.com", "x@example.com"]
    shown = [csv_answers.safe_cell(value) for value in values]
    assert len(set(shown)) == len(values), shown
    assert shown[:2] == ["'=x@example.com", "''=x@example.com"]


@pytest.mark.parametrize(
    ("accept", "csv_wanted"),
    [
        (None, False),
        ("application/json", False),
        ("*/*", False),
        ("text/csv", True),
        ("text/csv, application/json", False),
        ("text/csv;q=0.9, application/json;q=0.5", True),
        ("application/json;q=0.1, text/*", True),
        ("text/csv;q=0", False),
        ("text/csv;q=abc", False),
    ],
)
def test_content_negotiation(accept: str | None, csv_wanted: bool) -> None:
    assert csv_answers.wants_csv(accept) is csv_wanted


# -- cursors and limits are hostile input -------------------------------------------------


def _other_events_key(event_id: int) -> str:
    key = {"PK": {"S": f"EVENT#{event_id}"}, "SK": {"S": "PERSON#x@example.com"}}
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode()


@pytest.mark.parametrize("which", LISTS)
@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("cursor=garbage", "cursor: must be the nextCursor of a previous page"),
        ("cursor=" + _other_events_key(2), "cursor: must be the nextCursor of a previous page"),
        ("cursor=" + "9" * 39, "cursor: must be the nextCursor of a previous page"),
        ("cursor=" + "1" * 5000, "cursor: must be the nextCursor of a previous page"),
        ("cursor=0", "cursor: must be the nextCursor of a previous page"),
        ("cursor=-5", "cursor: must be the nextCursor of a previous page"),
        ("cursor=", "cursor: must be the nextCursor of a previous page"),
        ("limit=0", "limit: must be between 1 and 100"),
        ("limit=101", "limit: must be between 1 and 100"),
        ("limit=ten", "limit: must be an integer from 1 to 100"),
    ],
)
def test_a_hostile_cursor_or_limit_is_a_400_naming_it(
    api: Api, store: TicketStore, which: str, query: str, message: str
) -> None:
    event_id = sold_out_event(api, 1, ["a@example.com"], ["b@example.com"])
    reply = api.get(f"/events/{event_id}/{which}?{query}")
    assert reply.status == 400, reply
    assert reply.body["Code"] == "BadRequestError"
    assert reply.body["Message"].startswith(message), reply.body


@pytest.mark.parametrize("which", LISTS)
def test_another_events_cursor_only_ever_reads_this_event(api: Api, which: str) -> None:
    """A cursor is a position in the list the path names, never a key: the cursor of a
    longer list, used on another event, cannot reach that list's people."""
    key = "attendees" if which == "attendees" else "waitingList"
    mine = sold_out_event(api, 2, ["a@example.com", "b@example.com"], ["c@example.com"])
    other = sold_out_event(
        api, 3, [f"o{n}@example.com" for n in range(3)], [f"p{n}@example.com" for n in range(3)]
    )
    first = api.get(f"/events/{other}/{which}?limit=1").body
    assert first["nextCursor"] is not None
    reply = api.get(f"/events/{mine}/{which}?cursor={first['nextCursor']}")
    assert reply.status == 200
    assert reply.body["eventId"] == mine
    assert set(emails(reply.body[key])) <= {"a@example.com", "b@example.com", "c@example.com"}
    far = api.get(f"/events/{mine}/{which}?cursor={'9' * 38}")
    assert far.body[key] == [] and far.body["nextCursor"] is None


def test_no_email_reaches_a_url_or_a_log_line(api: Api, capsys: pytest.CaptureFixture[str]) -> None:
    event_id = sold_out_event(api, 1, ["secret1@example.com"], ["secret2@example.com"])
    capsys.readouterr()
    for which in LISTS:
        reply = api.get(f"/events/{event_id}/{which}?limit=1")
        assert "example.com" not in str(reply.body["nextCursor"])
        get_csv(api, f"/events/{event_id}/{which}")
    captured = capsys.readouterr().out
    assert "secret" not in captured and "example.com" not in captured
    assert captured.count('"request outcome"') == 4


# -- pages read while the list changes ---------------------------------------------------


def during_the_read(
    store: TicketStore, monkeypatch: pytest.MonkeyPatch, change: Callable[[], object]
) -> None:
    """Run ``change`` once, between a page's query and its closing snapshot (the moment the
    page describes), as a concurrent request would."""
    read_places = store.places

    def places_then_change(event_id: int, emails: list[str]) -> Any:
        found = read_places(event_id, emails)
        monkeypatch.setattr(store, "places", read_places)  # once
        change()
        return found

    monkeypatch.setattr(store, "places", places_then_change)


def test_a_page_that_straddles_promotions_drops_the_promoted_and_keeps_exact_positions(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiters = [f"w{n}@example.com" for n in range(5)]
    event_id = sold_out_event(api, 2, ["a@example.com", "b@example.com"], waiters)
    store = ticket_store()

    def two_promotions() -> None:
        booking.cancel_booking(store, event_id, "a@example.com")
        booking.cancel_booking(store, event_id, "b@example.com")

    during_the_read(store, monkeypatch, two_promotions)
    meter = RequestMeter().attach(store.client)
    page = api.get(f"/events/{event_id}/waiting-list?limit=3").body

    # The page was read as w0, w1, w2; at its moment w0 and w1 hold tickets.
    assert [(e["position"], e["userEmail"]) for e in page["waitingList"]] == [(1, "w2@example.com")]
    assert meter.snapshot()["TransactGetItems"] == 1  # no second read was needed
    rest, _ = walk(api, f"/events/{event_id}/waiting-list", 3)
    assert [(e["position"], e["userEmail"]) for e in rest] == [
        (1, "w2@example.com"),
        (2, "w3@example.com"),
        (3, "w4@example.com"),
    ]
    assert api.standing(event_id, "w2@example.com").body["position"] == 1


def test_a_page_read_while_someone_on_it_leaves_is_read_again(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    waiters = [f"w{n}@example.com" for n in range(5)]
    event_id = sold_out_event(api, 1, ["a@example.com"], waiters)
    store = ticket_store()
    first = api.get(f"/events/{event_id}/waiting-list?limit=2").body
    during_the_read(
        store, monkeypatch, lambda: booking.cancel_booking(store, event_id, "w3@example.com")
    )
    meter = RequestMeter().attach(store.client)

    page = api.get(f"/events/{event_id}/waiting-list?limit=2&cursor={first['nextCursor']}").body

    assert [(e["position"], e["userEmail"]) for e in page["waitingList"]] == [
        (3, "w2@example.com"),
        (4, "w4@example.com"),
    ]
    assert meter.snapshot()["TransactGetItems"] == 2  # the first read saw someone leave
    assert page["nextCursor"] is None


def test_people_who_join_while_a_walk_goes_on_are_at_its_end(api: Api) -> None:
    event_id = sold_out_event(api, 1, ["a@example.com"], ["w0@example.com", "w1@example.com"])
    first = api.get(f"/events/{event_id}/waiting-list?limit=1").body
    api.book(event_id, "late@example.com")
    rest, _ = walk(api, f"/events/{event_id}/waiting-list", 1)
    second = api.get(f"/events/{event_id}/waiting-list?limit=5&cursor={first['nextCursor']}")
    assert [(r["position"], r["userEmail"]) for r in second.body["waitingList"]] == [
        (2, "w1@example.com"),
        (3, "late@example.com"),
    ]
    assert emails(rest) == ["w0@example.com", "w1@example.com", "late@example.com"]


def read_costs(api: Api, event_id: int, path: str) -> dict[str, int]:
    meter = RequestMeter().attach(ticket_store().client)
    reply = api.get(path.format(event_id=event_id))
    assert reply.status == 200
    return meter.snapshot()


@pytest.mark.parametrize("size", [3, 12])
def test_a_page_costs_the_same_requests_whatever_the_lists_length(api: Api, size: int) -> None:
    holders = [f"h{n}@example.com" for n in range(size)]
    waiters = [f"w{n}@example.com" for n in range(size)]
    event_id = sold_out_event(api, size, holders, waiters)
    assert read_costs(api, event_id, "/events/{event_id}/attendees?limit=2") == {
        "GetItem": 1,
        "Query": 1,
        "BatchGetItem": 1,
    }
    assert read_costs(api, event_id, "/events/{event_id}/waiting-list?limit=2") == {
        "GetItem": 1,
        "Query": 1,
        "BatchGetItem": 1,
        "TransactGetItems": 1,
    }
    assert read_costs(api, event_id, "/organisers/me/events?limit=2") == {
        "Query": 1,
        "BatchGetItem": 1,
    }
