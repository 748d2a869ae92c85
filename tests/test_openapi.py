"""The OpenAPI description stays true to the code, and hostile input never breaks the service.

The description the app serves (``GET /openapi.json``, generated from
``chalicelib.contract``) must list exactly the app's routes. Then Hypothesis
throws generated requests at every operation (random JSON of every shape,
wrong types, huge numbers, odd Unicode, broken bytes, bad headers and query
strings) through the real app on DynamoDB Local, and for each answer checks:

* never a 5xx;
* the status is one the description documents for that operation, and the
  body matches the documented schema;
* a body that breaks the documented request schema is refused with a 4xx;
* a refused request (4xx) changed nothing in the table.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from chalicelib.contract.openapi import document
from chalicelib.storage import TicketStore
from tests.conftest import Api, local_only
from tests.test_validation import table_snapshot

SPEC = document()
pytestmark = pytest.mark.dynamodb_local
#: OpenAPI 3.1's schemas are JSON Schema (draft 2020-12).
COMPONENTS = SPEC["components"]


def validator(schema: dict[str, Any]) -> Draft202012Validator:
    return Draft202012Validator({**schema, "components": COMPONENTS})


def operation(path: str, method: str) -> dict[str, Any]:
    return SPEC["paths"][path][method]


def test_the_description_lists_exactly_the_apps_routes() -> None:
    from app import app

    in_code = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    documented = {(path, method) for path, methods in SPEC["paths"].items() for method in methods}
    assert documented == in_code


def test_every_schema_is_valid_json_schema() -> None:
    Draft202012Validator.check_schema({"components": COMPONENTS})
    for path, methods in SPEC["paths"].items():
        for method, spec in methods.items():
            for status, response in spec["responses"].items():
                schema = response.get("content", {}).get("application/json", {}).get("schema")
                assert schema, f"{method} {path} {status} documents no body"
                validator(schema)


# -- strategies -------------------------------------------------------------------

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=6,
)
EVENT_IDS = st.one_of(
    st.sampled_from([1, "1", 2, "2", 0, -1, "01", " 1", "1.0", 1.0, True, None, 10**19]),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.text(max_size=22),
    JSON,
)
EMAILS = st.one_of(
    st.sampled_from(["ann@example.com", " ANN@Example.com ", "a@b", "@x.com", "a@@b.com", ""]),
    st.emails(),
    st.text(max_size=40),
    JSON,
)
NAMES = st.one_of(st.text(max_size=210), st.sampled_from(["", "   ", "x" * 200, "x" * 201]), JSON)
TOTALS = st.one_of(
    st.sampled_from([1, 1_000_000, 1_000_001, 0, -1, "5", 5.5, 5.0, True, None]),
    st.integers(min_value=-(2**40), max_value=2**40),
    JSON,
)
FIELDS = {"eventId": EVENT_IDS, "userEmail": EMAILS, "name": NAMES, "totalTickets": TOTALS}


VALID_BODIES = {
    "initialize": st.fixed_dictionaries(
        {
            "name": st.sampled_from(["Concert", "  Padded name  ", "x" * 200, "Zoë's gig"]),
            "totalTickets": st.integers(min_value=1, max_value=1_000_000),
        }
    ),
    "place": st.fixed_dictionaries(
        {
            "eventId": st.sampled_from([1, "1", 2, 99]),
            "userEmail": st.sampled_from(["ann@example.com", " ANN@Example.com", "bob@example.com"])
            | st.emails(),
        }
    ),
}


@st.composite
def bodies(draw: st.DrawFn, kind: str) -> Any:
    """A valid body with at most one field broken; sometimes anything at all."""
    shape = draw(st.sampled_from(["valid", "one-field-off", "one-field-off", "missing", "junk"]))
    if shape == "junk":
        return draw(
            st.one_of(
                JSON,
                st.binary(max_size=40).map(lambda b: ("raw", b)),
                st.text(max_size=40).map(lambda t: ("raw", t.encode())),
                st.just(("raw", b"")),
            )
        )
    body = dict(draw(VALID_BODIES[kind]))
    if shape != "valid":
        field = draw(st.sampled_from(sorted(body)))
        if shape == "missing":
            del body[field]
        else:
            body[field] = draw(FIELDS[field])
    extra = draw(st.dictionaries(st.text(max_size=6), JSON, max_size=2))
    return {**extra, **body}  # unknown fields are refused (400), never fatal


def path_segments() -> st.SearchStrategy[str]:
    return st.one_of(
        st.sampled_from(["1", "2", "0", "-1", "01", "999999999999999999", "9" * 19, "1.5"]),
        st.text(min_size=1, max_size=20).map(lambda t: quote(t, safe="")),
    )


QUERY_VALUES = st.one_of(st.text(max_size=30), st.sampled_from(["0", "1", "100", "101", "-1"]))


# -- the oracle -----------------------------------------------------------------


def check_answer(
    api: Api,
    store: TicketStore,
    path: str,
    method: str,
    send: Any,
    body_schema: dict[str, Any] | None = None,
    body: Any = None,
) -> None:
    before = table_snapshot(store)
    reply = send()
    spec = operation(path, method)
    assert reply.status < 500, reply
    assert str(reply.status) in spec["responses"], f"undocumented {reply.status}: {reply}"
    response = spec["responses"][str(reply.status)]
    schema = response["content"]["application/json"]["schema"]
    errors = sorted(e.message for e in validator(schema).iter_errors(reply.body))
    assert not errors, (reply, errors)
    is_raw = isinstance(body, tuple) and body[0] == "raw"
    if body_schema is not None and not is_raw and list(validator(body_schema).iter_errors(body)):
        assert 400 <= reply.status < 500, f"schema-invalid body accepted: {body} -> {reply}"
    if 400 <= reply.status < 500:
        assert table_snapshot(store) == before, f"a refused request changed data: {reply}"


def post(api: Api, path: str, body: Any, headers: dict[str, str] | None = None) -> Any:
    raw = body[1] if isinstance(body, tuple) and body[0] == "raw" else json.dumps(body)
    return api.post(path, raw, headers)


HOSTILE = settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def seeded(api: Api) -> Api:
    """Event 1 (2 tickets) with one booking, so that valid requests find real data."""
    event_id = api.create_event(2)
    assert event_id == 1
    api.book(event_id, "ann@example.com")
    return api


@local_only
@HOSTILE
@given(body=bodies("initialize"))
def test_initialize_survives_hostile_bodies(seeded: Api, store: TicketStore, body: Any) -> None:
    schema = operation("/initialize", "post")["requestBody"]["content"]["application/json"]
    check_answer(
        seeded,
        store,
        "/initialize",
        "post",
        lambda: post(seeded, "/initialize", body),
        schema["schema"],
        body,
    )


@local_only
@HOSTILE
@given(
    path=st.sampled_from(["/book", "/cancel"]),
    body=bodies("place"),
    key=st.one_of(st.none(), st.text(max_size=110), st.just("retry-1")),
)
def test_book_and_cancel_survive_hostile_bodies(
    seeded: Api, store: TicketStore, path: str, body: Any, key: str | None
) -> None:
    headers = {"Idempotency-Key": key} if key is not None and path == "/book" else None
    if headers and not all(0x20 <= ord(c) < 0x7F for c in key or ""):
        headers = None  # HTTP headers are ASCII; a gateway would refuse others itself
    schema = operation(path, "post")["requestBody"]["content"]["application/json"]["schema"]
    check_answer(
        seeded,
        store,
        path,
        "post",
        lambda: post(seeded, path, body, headers),
        schema,
        body,
    )


@local_only
@HOSTILE
@given(
    template=st.sampled_from(
        [
            "/status/{eventId}",
            "/events/{eventId}",
            "/events/{eventId}/standing",
            "/events/{eventId}/attendees",
            "/events/{eventId}/waiting-list",
        ]
    ),
    segment=path_segments(),
    query=st.dictionaries(
        st.sampled_from(["userEmail", "limit", "cursor", "x"]), QUERY_VALUES, max_size=2
    ),
)
def test_reads_survive_hostile_paths_and_queries(
    seeded: Api, store: TicketStore, template: str, segment: str, query: dict[str, str]
) -> None:
    url = template.replace("{eventId}", segment)
    if query:
        url += "?" + urlencode(query)
    check_answer(seeded, store, template, "get", lambda: seeded.get(url))


@local_only
@pytest.mark.parametrize("path", ["/events", "/organisers/me/events"])
@HOSTILE
@given(query=st.dictionaries(st.sampled_from(["limit", "cursor", "x"]), QUERY_VALUES, max_size=3))
def test_event_listings_survive_hostile_queries(
    seeded: Api, store: TicketStore, path: str, query: dict[str, str]
) -> None:
    url = path + ("?" + urlencode(query) if query else "")
    check_answer(seeded, store, path, "get", lambda: seeded.get(url))
