"""Identity and ownership, rule by rule, on moto and on DynamoDB Local.

* Anonymous callers read public event information only; everything else is 401
  with ``WWW-Authenticate: Bearer``, whatever is wrong with the token.
* A signed-in person acts for their own verified email only (403 otherwise).
* Organisers create events and own them; they act as box office for their own
  events only (403 on another organiser's).
* No answer tells an attendee whether another email holds a place.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from chalicelib.contract.operations import OPERATIONS
from chalicelib.identity.access import Access
from chalicelib.storage import TicketStore
from devtools.issuer import LocalIssuer
from tests.conftest import ORGANISER, Api
from tests.test_validation import table_snapshot

RIVAL = "rival-organiser@example.com"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unsigned(claims: dict[str, Any], header: dict[str, Any]) -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}."


def _hs256_with_public_key(claims: dict[str, Any], issuer: LocalIssuer) -> str:
    """The key-confusion forgery: HMAC keyed with the issuer's public key, as published."""
    private = serialization.load_pem_private_key(issuer.key_path.read_bytes(), password=None)
    public_pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    header = {"alg": "HS256", "typ": "JWT", "kid": issuer.kid}
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}"
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


def bad_tokens(issuer: LocalIssuer) -> dict[str, str | None]:
    """Every kind of credential that must get a 401."""
    email = "ann@example.com"
    valid = jwt.decode(issuer.token(email), options={"verify_signature": False})
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return {
        "no token": None,
        "malformed": "not.a.jwt",
        "garbage": "x" * 50,
        "signed by another key": jwt.encode(
            valid, other_key, algorithm="RS256", headers={"kid": issuer.kid}
        ),
        "expired": issuer.token(email, expires_in=-120),
        "not valid yet": issuer.token(email, claims={"nbf": int(valid["iat"]) + 3600}),
        "issued in the future": issuer.token(email, claims={"iat": int(valid["iat"]) + 3600}),
        "alg none": _unsigned(valid, {"alg": "none", "typ": "JWT", "kid": issuer.kid}),
        "HS256 keyed with the public key": _hs256_with_public_key(valid, issuer),
        "unverified email": issuer.token(email, claims={"email_verified": False}),
        "email_verified as the number 1": issuer.token(email, claims={"email_verified": 1}),
        "access token": issuer.token(email, claims={"token_use": "access"}),
        "another audience": issuer.token(email, claims={"aud": "someone-else"}),
        "another issuer": issuer.token(email, claims={"iss": "https://evil.example.com"}),
        "unknown key id": jwt.encode(
            valid, issuer.key_path.read_bytes(), algorithm="RS256", headers={"kid": "nope"}
        ),
        "no email": issuer.token(email, claims={"email": None}),
        "no expiry": issuer.token(email, claims={"exp": None}),
        "not an email": issuer.token("not an email"),
    }


PROTECTED = [op for op in OPERATIONS if op.access != Access.PUBLIC]


def send(api: Api, method: str, path: str, token: str | None, body: Any = None) -> Any:
    path = path.replace("{eventId}", "1").replace("{webhookId}", "wh_" + "0" * 32)
    if method == "delete":
        return api.send("delete", path, None, token=token)
    if method == "post":
        return api.post(path, body if body is not None else {"eventId": 1}, token=token)
    if method == "patch":
        return api.patch(path, body if body is not None else {"name": "Renamed"}, token=token)
    return api.get(path, token=token)


BAD_CREDENTIALS = [
    "no token",
    "malformed",
    "garbage",
    "signed by another key",
    "expired",
    "not valid yet",
    "issued in the future",
    "alg none",
    "HS256 keyed with the public key",
    "unverified email",
    "email_verified as the number 1",
    "access token",
    "another audience",
    "another issuer",
    "unknown key id",
    "no email",
    "no expiry",
    "not an email",
]


@pytest.mark.parametrize("kind", BAD_CREDENTIALS)
def test_every_protected_operation_refuses_bad_credentials_with_401(
    api: Api, store: TicketStore, issuer: LocalIssuer, kind: str
) -> None:
    api.create_event(2)
    token = bad_tokens(issuer)[kind]
    before = table_snapshot(store)
    for operation in PROTECTED:
        body = {"userEmail": "ann@example.com"} if operation.operation_id == "lookup" else None
        if operation.operation_id == "initialize":
            body = {"name": "x", "totalTickets": 1}
        reply = send(api, operation.method, operation.path, token, body)
        assert reply.status == 401, (kind, operation.operation_id, reply)
        assert reply.body["Code"] == "UnauthorizedError"
        challenge = reply.headers["WWW-Authenticate"]
        assert challenge.startswith('Bearer realm="ticket-booking"')
        assert ('error="invalid_token"' in challenge) == (token is not None), challenge
    assert table_snapshot(store) == before


def test_the_bad_tokens_cover_each_kind(issuer: LocalIssuer) -> None:
    tokens = bad_tokens(issuer)
    assert list(tokens) == BAD_CREDENTIALS
    assert len(set(tokens.values())) == len(tokens)  # each one really differs


def test_public_operations_need_no_token_and_ignore_a_bad_one(api: Api) -> None:
    event_id = api.create_event(2)
    for path in (f"/status/{event_id}", f"/events/{event_id}", "/events", "/openapi.json"):
        assert api.get(path, token=None).status == 200, path
        assert api.get(path, token="garbage").status == 200, path


def test_attendees_act_for_their_own_email_only(api: Api, store: TicketStore) -> None:
    event_id = api.create_event(2)
    ann = api.token("ann@example.com")
    # The email may be left out, or given in any case and spacing: the token decides.
    reply = api.post("/book", {"eventId": event_id}, token=ann)
    assert (reply.status, reply.body["userEmail"]) == (201, "ann@example.com")
    assert (
        api.post(
            "/cancel", {"eventId": event_id, "userEmail": " ANN@example.com "}, token=ann
        ).status
        == 200
    )
    before = table_snapshot(store)
    for path in ("/book", "/cancel"):
        reply = api.post(path, {"eventId": event_id, "userEmail": "bob@example.com"}, token=ann)
        assert reply.status == 403, reply
        assert reply.body == {
            "Code": "ForbiddenError",
            "Message": "you may act for your own email only (the one your token carries)",
        }
    assert table_snapshot(store) == before


def test_only_organisers_create_events_and_they_own_them(api: Api, store: TicketStore) -> None:
    body = {"name": "Gig", "totalTickets": 1}
    reply = api.post("/initialize", body, token=api.token("ann@example.com"))
    assert (reply.status, reply.body["Code"]) == (403, "ForbiddenError")
    event_id = api.create_event(1, organiser=RIVAL)
    event = store.get_event(event_id)
    assert event is not None
    assert (
        event.owner_id
        == jwt.decode(api.token(RIVAL, True), options={"verify_signature": False})["sub"]
    )


def test_an_organiser_is_box_office_for_their_own_events_only(api: Api, store: TicketStore) -> None:
    mine = api.create_event(1)  # ORGANISER's
    theirs = api.create_event(1, organiser=RIVAL)
    box_office = api.token(ORGANISER, organiser=True)
    for event_id in (mine, theirs):
        api.book(event_id, "holder@example.com")
    # Box office on their own event: book, look up, cancel for anyone.
    reply = api.post(
        "/book", {"eventId": mine, "userEmail": "walk-in@example.com"}, token=box_office
    )
    assert (reply.status, reply.body["position"]) == (202, 1)
    lookup = api.post(
        f"/events/{mine}/lookup", {"userEmail": "holder@example.com"}, token=box_office
    )
    assert lookup.body == {
        "eventId": mine,
        "userEmail": "holder@example.com",
        "status": "BOOKED",
        "position": None,
    }
    assert (
        api.post(
            "/cancel", {"eventId": mine, "userEmail": "holder@example.com"}, token=box_office
        ).status
        == 200
    )
    assert api.standing(mine, "walk-in@example.com").body["status"] == "BOOKED"  # promoted
    # Not on another organiser's event: 403, and nothing changes.
    before = table_snapshot(store)
    for path, body in (
        ("/book", {"eventId": theirs, "userEmail": "walk-in@example.com"}),
        ("/cancel", {"eventId": theirs, "userEmail": "holder@example.com"}),
        (f"/events/{theirs}/lookup", {"userEmail": "holder@example.com"}),
    ):
        reply = api.post(path, body, token=box_office)
        assert (reply.status, reply.body["Code"]) == (403, "ForbiddenError"), (path, reply)
        assert (
            reply.body["Message"]
            == f"only the organiser of event {theirs} may act for another email"
        )
    assert table_snapshot(store) == before
    # An organiser is also a person: booking for themselves anywhere is fine.
    assert api.post("/book", {"eventId": theirs}, token=box_office).status == 202


def test_lookup_is_for_organisers_only(api: Api) -> None:
    event_id = api.create_event(1)
    reply = api.post(
        f"/events/{event_id}/lookup",
        {"userEmail": "x@example.com"},
        token=api.token("ann@example.com"),
    )
    assert (reply.status, reply.body["Message"]) == (403, "only organisers may do this")


def test_no_answer_tells_an_attendee_whether_another_email_holds_a_place(api: Api) -> None:
    """Whether bob holds a place or not, what ann can ask about bob gets the same answer."""
    holds, empty = api.create_event(1), api.create_event(1)
    api.book(holds, "bob@example.com")
    ann = api.token("ann@example.com")
    answers = []
    for event_id in (holds, empty):
        answers.append(
            [
                (
                    reply.status,
                    reply.body.get("Code"),
                    reply.body.get("Message", "").replace(str(event_id), "N"),
                )
                for reply in (
                    api.post(
                        "/book", {"eventId": event_id, "userEmail": "bob@example.com"}, token=ann
                    ),
                    api.post(
                        "/cancel", {"eventId": event_id, "userEmail": "bob@example.com"}, token=ann
                    ),
                    api.post(
                        f"/events/{event_id}/lookup", {"userEmail": "bob@example.com"}, token=ann
                    ),
                    api.get(f"/events/{event_id}/standing?userEmail=bob%40example.com", token=ann),
                )
            ]
        )
    assert answers[0] == answers[1]
    assert all(status in (400, 403) for status, _, _ in answers[0])


def test_my_standing_takes_the_email_from_the_token(api: Api) -> None:
    event_id = api.create_event(1)
    api.book(event_id, "ann@example.com")
    api.book(event_id, "bob@example.com")
    assert api.standing(event_id, "bob@example.com").body == {
        "eventId": event_id,
        "userEmail": "bob@example.com",
        "status": "WAITLISTED",
        "position": 1,
    }
    reply = api.get(
        f"/events/{event_id}/standing?userEmail=ann%40example.com",
        token=api.token("bob@example.com"),
    )
    assert (reply.status, reply.body["Message"].split(";")[0]) == (
        400,
        "userEmail: is not taken from the URL",
    )


def test_a_full_waiting_list_answers_409(api: Api) -> None:
    reply = api.post("/initialize", {"name": "Tiny", "totalTickets": 1, "waitingListCap": 1})
    event_id = reply.body["eventId"]
    assert reply.body["waitingListCap"] == 1
    for email in ("a@example.com", "b@example.com"):
        assert api.book(event_id, email).status in (201, 202)
    reply = api.book(event_id, "c@example.com")
    assert reply.body == {
        "Code": "ConflictError",
        "Message": f"event {event_id} is sold out and its waiting list is full (1 people)",
    }


def test_the_daily_cap_on_events_answers_429(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENTS_PER_ORGANISER_PER_DAY", "2")
    for _ in range(2):
        api.create_event(1, organiser="busy@example.com")
    reply = api.post(
        "/initialize", {"name": "x", "totalTickets": 1}, token=api.token("busy@example.com", True)
    )
    assert reply.status == 429
    assert reply.body == {
        "Code": "TooManyRequestsError",
        "Message": "an organiser may create 2 events a day; try again tomorrow (UTC)",
    }
    assert 0 < int(reply.headers["Retry-After"]) <= 86_400
    assert api.create_event(1, organiser=RIVAL)  # another organiser's count is their own
