#!/usr/bin/env python3
"""Walk through every endpoint against a running service and check each answer.

    BASE_URL=http://127.0.0.1:8000 python3 scripts/smoke_test.py
    BASE_URL=https://<api>.execute-api.<region>.amazonaws.com/api TOKEN=<organiser ID token> \
        python3 scripts/smoke_test.py

Standard library only, so it runs anywhere Python 3.11 does. It signs in as one
organiser (TOKEN; against make dev it asks make token for one), who creates one
new event with two tickets on every run and then, as that event's box office,
books it out for four people, fills the waiting list, cancels to promote,
looks everyone up and reads the event's attendee and waiting lists. It also
checks that an anonymous caller is refused. Exit status 0 when every step
answered as documented; each step is printed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
ORGANISER = "smoke-organiser@example.com"


class SmokeFailure(Exception):
    pass


class Service:
    def __init__(self, base_url: str, token: str) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token

    def call(
        self, method: str, path: str, body: Any = None, signed: bool = True
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if signed:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(
            self.base_url + path, data=data, method=method, headers=headers
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"null")


def expect(step: str, answer: tuple[int, Any], http_status: int, /, **fields: Any) -> Any:
    code, body = answer
    wrong = {k: body.get(k) for k, v in fields.items() if body.get(k) != v}
    ok = code == http_status and not wrong
    print(f"{'ok ' if ok else 'FAIL'} {step}: {code} {json.dumps(body)}")
    if not ok:
        raise SmokeFailure(f"{step}: expected {http_status} {fields}, got {code} {body}")
    return body


def walk_through(service: Service) -> None:
    name = f"Smoke test {time.strftime('%Y-%m-%d %H:%M:%S')}"
    created = expect(
        "create an event with 2 tickets",
        service.call("POST", "/initialize", {"name": name, "totalTickets": 2}),
        201,
        name=name,
        totalTickets=2,
        availableTickets=2,
    )
    event_id = created["eventId"]

    def book(email: str) -> tuple[int, Any]:
        return service.call("POST", "/book", {"eventId": event_id, "userEmail": email})

    def cancel(email: str) -> tuple[int, Any]:
        return service.call("POST", "/cancel", {"eventId": event_id, "userEmail": email})

    def standing(email: str) -> tuple[int, Any]:
        """The box office's lookup: the email travels in the body, never in the URL."""
        return service.call("POST", f"/events/{event_id}/lookup", {"userEmail": email})

    expect("ann books", book("ann@example.com"), 201, status="BOOKED")
    expect("bob books the last ticket", book("bob@example.com"), 201, status="BOOKED")
    expect("cat is waitlisted first", book("cat@example.com"), 202, status="WAITLISTED", position=1)
    expect("dan is waitlisted second", book("dan@example.com"), 202, position=2)
    expect("ANN again (any case) is refused", book(" ANN@example.com "), 409, Code="ConflictError")
    expect("cat's standing", standing("cat@example.com"), 200, status="WAITLISTED", position=1)
    expect(
        "ann cancels: her ticket goes to cat",
        cancel("ann@example.com"),
        200,
        previousStatus="BOOKED",
        ticketPassedToWaitingList=True,
    )
    expect("cat now holds a ticket", standing("cat@example.com"), 200, status="BOOKED")
    expect("dan moved up", standing("dan@example.com"), 200, status="WAITLISTED", position=1)
    expect("ann holds nothing", standing("ann@example.com"), 200, status="NONE")
    attendees = expect(
        "the attendee list, in booking order",
        service.call("GET", f"/events/{event_id}/attendees?limit=10"),
        200,
        eventId=event_id,
        nextCursor=None,
    )
    booked = [(a["userEmail"], a["promotedFromWaitingList"]) for a in attendees["attendees"]]
    if booked != [("bob@example.com", False), ("cat@example.com", True)]:
        raise SmokeFailure(f"attendees: expected bob, then cat (promoted), got {booked}")
    waiting = expect(
        "the waiting list, with positions",
        service.call("GET", f"/events/{event_id}/waiting-list"),
        200,
        nextCursor=None,
    )
    rows = [(w["position"], w["userEmail"]) for w in waiting["waitingList"]]
    if rows != [(1, "dan@example.com")]:
        raise SmokeFailure(f"waiting list: expected dan at 1, got {rows}")
    mine = expect("my events", service.call("GET", "/organisers/me/events?limit=1"), 200)
    if [e["eventId"] for e in mine["events"]] != [event_id]:
        raise SmokeFailure(f"my newest event is not {event_id}: {mine}")
    expect(
        "the lists are the organiser's only",
        service.call("GET", f"/events/{event_id}/attendees", signed=False),
        401,
    )
    expect(
        "status after the promotion",
        service.call("GET", f"/status/{event_id}"),
        200,
        eventId=event_id,
        totalTickets=2,
        availableTickets=0,
        bookedTickets=2,
        waitingListCount=1,
    )
    expect(
        "dan leaves the waiting list", cancel("dan@example.com"), 200, previousStatus="WAITLISTED"
    )
    expect("ann cannot cancel twice", cancel("ann@example.com"), 404, Code="NotFoundError")
    expect(
        "bob cancels: nobody waits, the ticket returns",
        cancel("bob@example.com"),
        200,
        ticketPassedToWaitingList=False,
    )
    expect(
        "GET /events/{id} agrees",
        service.call("GET", f"/events/{event_id}"),
        200,
        availableTickets=1,
        bookedTickets=1,
        waitingListCount=0,
    )
    listed = expect("GET /events lists it first", service.call("GET", "/events?limit=5"), 200)
    if not listed["events"] or listed["events"][0]["eventId"] != event_id:
        raise SmokeFailure(f"newest event is not {event_id}: {listed}")
    expect("an unknown event is 404", service.call("GET", "/status/999999999999"), 404)
    expect(
        "an anonymous booking is refused",
        service.call("POST", "/book", {"eventId": event_id}, signed=False),
        401,
        Code="UnauthorizedError",
    )
    expect(
        "anyone may read the event",
        service.call("GET", f"/events/{event_id}", signed=False),
        200,
    )
    expect(
        "bad input is 400",
        service.call("POST", "/initialize", {"name": "x", "totalTickets": "5"}),
        400,
        Code="BadRequestError",
    )
    organiser_controls(service, event_id, book, standing)


def organiser_controls(
    service: Service,
    event_id: int,
    book: Callable[[str], tuple[int, Any]],
    standing: Callable[[str], tuple[int, Any]],
) -> None:
    """The organiser's controls on the walk-through's event (1 ticket free, cat booked)."""
    path = f"/events/{event_id}"
    expect("eve books the free ticket", book("eve@example.com"), 201)
    expect("fay waits", book("fay@example.com"), 202, position=1)
    expect(
        "raising capacity by 2 promotes fay and frees 1",
        service.call("PATCH", path, {"totalTickets": 4}),
        200,
        totalTickets=4,
        bookedTickets=3,
        availableTickets=1,
        waitingListCount=0,
    )
    expect("fay holds a ticket", standing("fay@example.com"), 200, status="BOOKED")
    expect(
        "lowering below the tickets booked is refused",
        service.call("PATCH", path, {"totalTickets": 2}),
        409,
        Code="ConflictError",
    )
    expect(
        "a window that opens later",
        service.call("PATCH", path, {"salesOpenAt": "2099-01-01T00:00:00Z"}),
        200,
        state="NOT_ON_SALE_YET",
    )
    expect("not on sale yet", book("gus@example.com"), 409, Code="ConflictError")
    expect(
        "the window removed",
        service.call("PATCH", path, {"salesOpenAt": None}),
        200,
        state="ON_SALE",
    )
    expect("close sales", service.call("POST", f"{path}/close"), 200, state="SALES_CLOSED")
    expect("sales closed", book("gus@example.com"), 409, Code="ConflictError")
    expect("reopen sales", service.call("POST", f"{path}/reopen"), 200, state="ON_SALE")
    cancelled = expect(
        "cancel the event", service.call("POST", f"{path}/cancel"), 200, state="CANCELLED"
    )
    if not cancelled["release"]["complete"]:
        raise SmokeFailure(f"the release did not finish: {cancelled}")
    expect("cat's place is released", standing("cat@example.com"), 200, status="RELEASED")
    expect("a cancelled event takes no booking", book("gus@example.com"), 409)


def organiser_token() -> str:
    """TOKEN if set (a deployed stack: a Cognito ID token); else ask make dev's issuer."""
    token = os.environ.get("TOKEN")
    if token:
        return token
    outer_make = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")
    made = subprocess.run(
        ["make", "-s", "token", f"EMAIL={ORGANISER}", "ROLE=organiser"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
        env={k: v for k, v in os.environ.items() if k not in outer_make},
    )
    if made.returncode != 0 or not made.stdout.strip():
        raise SmokeFailure(f"no TOKEN given and make token failed: {made.stderr.strip()}")
    return made.stdout.strip().splitlines()[-1]


def main() -> int:
    base_url = os.environ.get("BASE_URL", "http://127.0.0.1:8000")
    print(f"smoke test against {base_url}")
    try:
        walk_through(Service(base_url, organiser_token()))
    except SmokeFailure as failure:
        print(f"smoke test FAILED: {failure}", file=sys.stderr)
        return 1
    except (urllib.error.URLError, OSError) as error:
        print(f"smoke test could not reach {base_url}: {error}", file=sys.stderr)
        return 2
    print("smoke test passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
