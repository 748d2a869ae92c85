"""The contract is one source of truth, and no input, however hostile, gets a 5xx.

* ``check`` (which enforces the declarations) agrees with a reference JSON Schema
  validator on every request schema, for valid and hostile values alike.
* The description the app serves is the generated one, and ``docs/openapi.json`` is
  not stale.
* A generator that follows the schema never gets a 400, 413 or 415, and every
  answer it gets is documented, in the documented shape.
* Every class of malformed input gets its 4xx with a message naming the problem,
  and writes nothing: through Chalice's test client, and as raw bytes over real
  HTTP to ``chalice local`` (the two do not read bodies the same way).
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator, ValidationError, validators

from chalicelib.contract import schemas
from chalicelib.contract.check import check
from chalicelib.contract.openapi import document
from chalicelib.contract.operations import OPERATIONS
from chalicelib.errors import InvalidRequest
from chalicelib.observability import KEY_ENV
from chalicelib.storage import TicketStore
from chalicelib.storage.schema import ENDPOINT_URL_ENV, TABLE_NAME_ENV
from devtools import openapi as openapi_cli
from devtools.dynamodb_local import (
    LOCAL_CREDENTIALS,
    DynamoDBLocal,
    free_port,
    local_client,
    port_in_use,
)
from devtools.issuer import LocalIssuer
from devtools.tables import create_table_if_missing
from tests.conftest import ORGANISER, ROOT, Api, local_only, unique_table_name
from tests.schema_strategies import from_schema
from tests.test_validation import table_snapshot

SPEC = document()
#: Where each chalice local server of this module writes its output, by port.
SERVER_LOGS: dict[int, Path] = {}
REQUEST_SCHEMAS = {
    "NewEvent": schemas.NEW_EVENT,
    "PlaceRequest": schemas.PLACE_REQUEST,
    "LookupRequest": schemas.LOOKUP_REQUEST,
    "EventChange": schemas.EVENT_CHANGE,
    "NewWebhook": schemas.NEW_WEBHOOK,
}


def _full_match_pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
    """ECMA-262 reads an anchored ``^...$`` whole; Python's ``re.search`` lets ``$``
    match before a trailing newline. The reference validator reads it as ECMA does."""
    if isinstance(instance, str) and not re.fullmatch(pattern[1:-1], instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


Reference = validators.extend(Draft202012Validator, {"pattern": _full_match_pattern})


def reference(schema: dict[str, Any]) -> Any:
    return Reference({**schema, "components": SPEC["components"]})


def _has_integral_float(value: Any) -> bool:
    """JSON Schema counts 5.0 as an integer; the API asks for 5 (documented in the text)."""
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_integral_float(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_integral_float(v) for v in value)
    return False


HOSTILE_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
    | st.sampled_from(["1", "0", "01", "1\n", " ann@example.com ", "a@b", "x" * 201]),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(
            st.sampled_from(["name", "totalTickets", "eventId", "userEmail", "x"]),
            children,
            max_size=4,
        )
    ),
    max_leaves=8,
)


def _email(local: int, total: int) -> str:
    domain = ".".join(["d" * 60] * 5)[: total - local - 5] + ".com"
    return "a" * local + "@" + domain


#: Values at and one past each declared bound, built from the declarations.
BOUNDARIES: dict[str, list[Any]] = {
    "name": ["x" * schemas.MAX_NAME_LENGTH, "x" * (schemas.MAX_NAME_LENGTH + 1), "", " ", "x"],
    "totalTickets": [
        schemas.MIN_TICKETS - 1,
        schemas.MIN_TICKETS,
        schemas.MAX_TICKETS,
        schemas.MAX_TICKETS + 1,
    ],
    "eventId": [0, 1, schemas.MAX_EVENT_ID, schemas.MAX_EVENT_ID + 1, "1", "0", "9" * 18, "9" * 19],
    "waitingListCap": [0, 1, schemas.MAX_WAITING_LIST_CAP, schemas.MAX_WAITING_LIST_CAP + 1],
    "salesOpenAt": [
        "2028-02-29T00:00:00Z",
        "2027-02-29T00:00:00Z",
        "2026-04-30T23:59:59.999999+14:00",
        "2026-04-31T00:00:00Z",
        "2026-12-01T09:00:00",
        "2026-12-01t09:00:00z",
        None,
    ],
    "salesCloseAt": ["2099-12-31T23:59:59Z", "2100-01-01T00:00:00Z", "2026-12-01T24:00:00Z", None],
    "url": [
        "https://example.com/hooks",
        "https://" + "a" * 63 + ".example.com/",
        "https://" + "a" * 64 + ".example.com/",
        "https://example.com/" + "x" * (schemas.MAX_WEBHOOK_URL_LENGTH - 20),
        "https://example.com/" + "x" * (schemas.MAX_WEBHOOK_URL_LENGTH - 19),
        "https://user:pw@example.com/",
        "https://example.com/#fragment",
        "https://[::1]:8443/x",
        "ftp://example.com/",
        "",
    ],
    "userEmail": [
        _email(64, 80),
        _email(65, 80),
        _email(10, schemas.MAX_EMAIL_LENGTH),
        _email(10, schemas.MAX_EMAIL_LENGTH + 1),
    ],
}


@st.composite
def near_misses(draw: st.DrawFn, schema: dict[str, Any]) -> Any:
    """A valid value with one field set to a boundary value, or dropped, or one added."""
    value = dict(draw(from_schema(schema)))
    field = draw(st.sampled_from(sorted(schema["properties"])))
    how = draw(st.sampled_from(["boundary", "boundary", "drop", "add"]))
    if how == "boundary":
        value[field] = draw(st.sampled_from(BOUNDARIES[field]))
    elif how == "drop":
        value.pop(field, None)
    else:
        value["extra"] = draw(HOSTILE_VALUES)
    return value


def test_the_boundaries_cover_every_declared_field() -> None:
    for schema in REQUEST_SCHEMAS.values():
        assert set(schema["properties"]) <= set(BOUNDARIES)


@pytest.mark.parametrize("name", sorted(REQUEST_SCHEMAS))
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_check_agrees_with_a_reference_validator(name: str, data: st.DataObject) -> None:
    schema = REQUEST_SCHEMAS[name]
    value = data.draw(st.one_of(from_schema(schema), near_misses(schema), HOSTILE_VALUES))
    expected = reference(schema).is_valid(value) and not _has_integral_float(value)
    try:
        check(schema, value, "body")
        accepted = True
    except InvalidRequest:
        accepted = False
    assert accepted == expected, value


def test_the_served_description_is_the_generated_one_and_the_docs_copy_is_fresh(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert openapi_cli.main(["--check"]) == 0, "docs/openapi.json is stale: run make openapi"
    assert json.loads((ROOT / "docs" / "openapi.json").read_text()) == SPEC
    Draft202012Validator.check_schema({"components": SPEC["components"]})


@local_only
def test_get_openapi_json_serves_the_description_to_anyone(api: Api) -> None:
    reply = api.get("/openapi.json")
    assert reply.status == 200
    assert reply.body == json.loads(json.dumps(SPEC))


def test_every_route_is_an_operation_of_the_contract() -> None:
    from app import app

    in_code = {(path, method.lower()) for path, methods in app.routes.items() for method in methods}
    assert in_code == {(op.path, op.method) for op in OPERATIONS}


# -- a schema-following client --------------------------------------------------------------


@dataclass
class Generated:
    method: str
    template: str
    path: str
    body: Any
    headers: dict[str, str]


@st.composite
def requests_by_the_schema(draw: st.DrawFn) -> Generated:
    """Any operation, with parameters and body drawn from their declared schemas only."""
    operation = draw(st.sampled_from(OPERATIONS))
    path, query, headers = operation.path, {}, {}
    for parameter in operation.parameters:
        if not parameter.required and not draw(st.booleans()):
            continue
        value = str(draw(from_schema(parameter.schema)))
        if parameter.location == "path":
            path = path.replace("{" + parameter.name + "}", value)
        elif parameter.location == "query":
            query[parameter.name] = value
        else:
            headers[parameter.name] = value
    if query:
        path += "?" + "&".join(f"{k}={_quote(v)}" for k, v in query.items())
    body = draw(from_schema(schemas.COMPONENTS[operation.body])) if operation.body else None
    return Generated(operation.method, operation.path, path, body, headers)


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


@local_only
@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(request=requests_by_the_schema())
def test_a_client_that_follows_the_schema_never_gets_a_4xx_for_its_form(
    api: Api, request: Generated
) -> None:
    if request.method == "get":
        reply = api.get(request.path)
    else:
        reply = api.send(request.method, request.path, request.body, request.headers)
    documented = SPEC["paths"][request.template][request.method]["responses"]
    assert reply.status not in (400, 413, 415), (request, reply)
    assert str(reply.status) in documented, (request, reply)
    schema = documented[str(reply.status)]["content"]["application/json"]["schema"]
    assert reference(schema).is_valid(reply.body), (request, reply)
    sent = {h.lower(): v for h, v in reply.headers.items()}
    for header, spec in documented[str(reply.status)].get("headers", {}).items():
        if spec["required"]:
            assert header.lower() in sent, (request, reply)
        if header.lower() in sent and spec["schema"].get("type") == "string":
            assert reference(spec["schema"]).is_valid(sent[header.lower()]), (request, reply)


# -- malformed input, class by class ----------------------------------------------------------


@dataclass(frozen=True)
class Hostile:
    """One class of malformed input: what is sent, and exactly what it must get."""

    name: str
    method: str
    path: str
    body: bytes | None
    status: int
    code: str
    message: str  # a regular expression the message must match from its start
    content_type: str | None = "application/json"


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def _place(email: str = "ann@example.com", event_id: Any = 1, **extra: Any) -> bytes:
    return json.dumps({"eventId": event_id, "userEmail": email, **extra}).encode()


BIG = schemas.MAX_BODY_BYTES
HOSTILE: list[Hostile] = [
    Hostile(
        "deep nesting", "POST", "/book", _nested(1000), 400, "BadRequestError", "body: nests deeper"
    ),
    Hostile("deep nesting on a read is ignored", "GET", "/status/1", _nested(1000), 200, "", ""),
    Hostile(
        "just too deep",
        "POST",
        "/book",
        _nested(schemas.MAX_JSON_DEPTH + 1),
        400,
        "BadRequestError",
        "body: nests deeper",
    ),
    Hostile(
        "lone surrogate escaped in an email",
        "POST",
        "/book",
        b'{"eventId": 1, "userEmail": "\\ud800@example.com"}',
        400,
        "BadRequestError",
        "body: has a control character or a lone surrogate",
    ),
    Hostile(
        "lone surrogate as raw bytes",
        "POST",
        "/book",
        b'{"eventId": 1, "userEmail": "\xed\xa0\x80@example.com"}',
        415,
        "UnsupportedMediaType",
        "send JSON encoded as UTF-8",
    ),
    Hostile(
        "NUL in a name",
        "POST",
        "/initialize",
        b'{"name": "a\\u0000b", "totalTickets": 1}',
        400,
        "BadRequestError",
        "body: has a control character",
    ),
    Hostile(
        "C1 control in a name",
        "POST",
        "/initialize",
        '{"name": "a\u0085b", "totalTickets": 1}'.encode(),
        400,
        "BadRequestError",
        "body: has a control character",
    ),
    Hostile(
        "control character in an unknown key",
        "POST",
        "/book",
        b'{"\\u0007": 1}',
        400,
        "BadRequestError",
        "body: has a control character",
    ),
    Hostile(
        "duplicate keys",
        "POST",
        "/initialize",
        b'{"name": "x", "totalTickets": "5", "totalTickets": 5}',
        400,
        "BadRequestError",
        "body: has a duplicate key",
    ),
    Hostile(
        "unknown field",
        "POST",
        "/book",
        _place(admin=True),
        400,
        "BadRequestError",
        "admin: is not a field of this request",
    ),
    Hostile(
        "65-character local part",
        "POST",
        "/book",
        _place("a" * 65 + "@example.com"),
        400,
        "BadRequestError",
        "userEmail: is not a valid email address",
    ),
    Hostile(
        "email too long",
        "POST",
        "/book",
        _place("a@" + "b" * 250 + ".com"),
        400,
        "BadRequestError",
        "userEmail: must be at most 254",
    ),
    Hostile(
        "event id past 18 digits",
        "POST",
        "/book",
        _place(event_id=10**18),
        400,
        "BadRequestError",
        "eventId: must be a positive integer",
    ),
    Hostile(
        "event id zero as a string",
        "POST",
        "/book",
        _place(event_id="0"),
        400,
        "BadRequestError",
        "eventId: must be a positive integer",
    ),
    Hostile(
        "leading zeros (not JSON)",
        "POST",
        "/initialize",
        b'{"name": "x", "totalTickets": 007}',
        400,
        "BadRequestError",
        "body: is not valid JSON",
    ),
    Hostile(
        "a 41-digit integer",
        "POST",
        "/initialize",
        b'{"name": "x", "totalTickets": ' + b"9" * 41 + b"}",
        400,
        "BadRequestError",
        "body: has an integer longer than 40 digits",
    ),
    Hostile(
        "a 5,001-digit integer",
        "POST",
        "/initialize",
        b'{"name": "x", "totalTickets": 1' + b"0" * 5000 + b"}",
        400,
        "BadRequestError",
        "body: has an integer longer than 40 digits",
    ),
    Hostile(
        "a number too large to store",
        "POST",
        "/initialize",
        b'{"name": "x", "totalTickets": 1e400}',
        400,
        "BadRequestError",
        "body: has a number too large",
    ),
    Hostile(
        "NaN",
        "POST",
        "/initialize",
        b'{"name": "x", "totalTickets": NaN}',
        400,
        "BadRequestError",
        "body: NaN is not JSON",
    ),
    Hostile(
        "a fraction where an integer goes",
        "POST",
        "/initialize",
        b'{"name": "x", "totalTickets": 5.0}',
        400,
        "BadRequestError",
        "totalTickets: must be a whole number",
    ),
    Hostile(
        "charset latin-1",
        "POST",
        "/book",
        _place(),
        415,
        "UnsupportedMediaType",
        "send JSON encoded as UTF-8",
        "application/json; charset=latin-1",
    ),
    Hostile(
        "UTF-16",
        "POST",
        "/book",
        _place().decode().encode("utf-16-le"),
        415,
        "UnsupportedMediaType",
        "send JSON encoded as UTF-8",
    ),
    Hostile(
        "UTF-16 with a byte order mark",
        "POST",
        "/book",
        _place().decode().encode("utf-16"),
        415,
        "UnsupportedMediaType",
        "send JSON encoded as UTF-8",
    ),
    Hostile(
        "UTF-8 byte order mark",
        "POST",
        "/book",
        b"\xef\xbb\xbf" + _place(),
        415,
        "UnsupportedMediaType",
        "send JSON encoded as UTF-8",
    ),
    Hostile(
        "not JSON at all",
        "POST",
        "/book",
        b"eventId=1&userEmail=a",
        415,
        "UnsupportedMediaType",
        "",
        "application/x-www-form-urlencoded",
    ),
    Hostile(
        "one byte over the limit",
        "POST",
        "/book",
        _place() + b" " * (BIG + 1 - len(_place())),
        413,
        "RequestEntityTooLargeError",
        f"a request body may be at most {BIG:,} bytes",
    ),
    Hostile(
        "8 MB",
        "POST",
        "/initialize",
        b'{"name": "' + b"x" * 8_000_000 + b'", "totalTickets": 1}',
        413,
        "RequestEntityTooLargeError",
        "a request body may be at most",
    ),
    Hostile(
        "8 MB on a read",
        "GET",
        "/status/1",
        b"x" * 8_000_000,
        413,
        "RequestEntityTooLargeError",
        "a request body may be at most",
    ),
    Hostile(
        "empty body",
        "POST",
        "/book",
        b"",
        400,
        "BadRequestError",
        "body: a JSON object is required",
    ),
    Hostile(
        "a JSON array",
        "POST",
        "/book",
        b"[1, 2]",
        400,
        "BadRequestError",
        "body: must be a JSON object",
    ),
    Hostile(
        "cursor past 18 digits",
        "GET",
        "/events?cursor=" + str(10**38 + 1),
        None,
        400,
        "BadRequestError",
        "cursor: must be a positive integer",
    ),
    Hostile(
        "cursor of old-style base64 JSON",
        "GET",
        "/events?cursor=eyJiZWZvcmUiOjF9",
        None,
        400,
        "BadRequestError",
        "cursor: must be a positive integer",
    ),
    Hostile(
        "limit with 5,001 digits",
        "GET",
        "/events?limit=" + "0" * 5000 + "1",
        None,
        400,
        "BadRequestError",
        "limit: must be an integer from 1 to 100",
    ),
    Hostile(
        "limit zero",
        "GET",
        "/events?limit=0",
        None,
        400,
        "BadRequestError",
        "limit: must be between 1 and 100",
    ),
    Hostile(
        "list cursor of base64 JSON naming another event's key",
        "GET",
        "/events/1/attendees?cursor=eyJQSyI6IHsiUyI6ICJFVkVOVCMyIn19",
        None,
        400,
        "BadRequestError",
        "cursor: must be the nextCursor of a previous page of this list",
    ),
    Hostile(
        "list cursor past 38 digits",
        "GET",
        "/events/1/waiting-list?cursor=" + "9" * 39,
        None,
        400,
        "BadRequestError",
        "cursor: must be the nextCursor of a previous page of this list",
    ),
    Hostile(
        "list limit past 100",
        "GET",
        "/events/1/waiting-list?limit=101",
        None,
        400,
        "BadRequestError",
        "limit: must be between 1 and 100",
    ),
    Hostile(
        "my events with a cursor that is not an id",
        "GET",
        "/organisers/me/events?cursor=abc",
        None,
        400,
        "BadRequestError",
        "cursor: must be a positive integer",
    ),
    Hostile(
        "event id in a path past 18 digits",
        "GET",
        "/events/" + "9" * 19,
        None,
        400,
        "BadRequestError",
        "eventId: must be a positive integer",
    ),
    Hostile(
        "event id in a path with a fraction",
        "GET",
        "/status/1.5",
        None,
        400,
        "BadRequestError",
        "eventId: must be a positive integer",
    ),
]
#: The 8 MB and 1,000-deep cases cost the most; both are also sent over HTTP.
assert len({case.name for case in HOSTILE}) == len(HOSTILE)


def _expect(case: Hostile, status: int, body: Any) -> None:
    assert status == case.status, (case.name, status, body)
    if case.status < 300:
        return
    assert set(body) == {"Code", "Message"}, (case.name, body)
    assert body["Code"] == case.code, (case.name, body)
    assert re.match(re.escape(case.message), body["Message"]), (case.name, body)


@pytest.fixture
def seeded_store(store: TicketStore, api: Api) -> TicketStore:
    assert api.create_event(3) == 1
    return store


@local_only
@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_each_class_of_malformed_input_gets_its_4xx_and_writes_nothing(
    api: Api, seeded_store: TicketStore, case: Hostile
) -> None:
    before = table_snapshot(seeded_store)
    headers = {"Content-Type": case.content_type} if case.content_type else {}
    headers["Authorization"] = f"Bearer {api.token(ORGANISER, organiser=True)}"
    response = getattr(api.client.http, case.method.lower())(
        case.path, headers=headers, body=case.body or b""
    )
    body = json.loads(response.body) if response.body else None
    _expect(case, response.status_code, body)
    if case.status >= 400:
        assert table_snapshot(seeded_store) == before


# -- the same, as raw bytes over HTTP to chalice local --------------------------------------


@pytest.fixture(scope="module")
def chalice_local(
    dynamodb_local: DynamoDBLocal, issuer: LocalIssuer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, int, TicketStore]]:
    """``chalice local`` (as ``make dev`` runs it), on its own table and port."""
    table = unique_table_name()
    client = local_client(dynamodb_local.endpoint_url)  # a module fixture: its own credentials
    create_table_if_missing(client, table, stream=False)
    port = free_port()
    log_path = tmp_path_factory.mktemp("chalice-local") / "server.log"
    SERVER_LOGS[port] = log_path
    server_log = log_path.open("wb")
    env = {
        **os.environ,
        **LOCAL_CREDENTIALS,
        TABLE_NAME_ENV: table,
        ENDPOINT_URL_ENV: dynamodb_local.endpoint_url,
        KEY_ENV: "http-test-key",
        **issuer.environment,
    }
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "devtools.local_api", "local", "--stage", "test"),
            *("--host", "127.0.0.1", "--port", str(port), "--no-autoreload"),
        ],
        cwd=ROOT,
        env=env,
        stdout=server_log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not port_in_use(port):
            assert process.poll() is None and time.monotonic() < deadline, "chalice local died"
            time.sleep(0.2)
        status, _ = _send(
            "127.0.0.1",
            port,
            "POST",
            "/initialize",
            b'{"name": "x", "totalTickets": 3}',
            token=issuer.token(ORGANISER, organiser=True),
        )
        assert status == 201
        yield "127.0.0.1", port, TicketStore(client, table)
    finally:
        process.terminate()
        process.wait(timeout=20)
        server_log.close()


def _send(
    host: str,
    port: int,
    method: str,
    path: str,
    body: bytes | None,
    content_type: str | None = "application/json",
    token: str | None = None,
) -> tuple[int, Any]:
    connection = http.client.HTTPConnection(host, port, timeout=60)
    headers = {"Content-Type": content_type} if content_type else {}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    if body is not None:
        headers["Content-Length"] = str(len(body))
    connection.request(method, path, body=body, headers=headers)
    response = connection.getresponse()
    raw = response.read()
    connection.close()
    return response.status, json.loads(raw) if raw else None


def _send_raw(host: str, port: int, data: bytes) -> bytes:
    """Bytes as sent, whatever HTTP makes of them; the server's answer, whole."""
    with socket.create_connection((host, port), timeout=30) as connection:
        connection.sendall(data)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


def test_a_chunked_body_is_refused_not_ignored(
    chalice_local: tuple[str, int, TicketStore], issuer: LocalIssuer
) -> None:
    """chalice local never reads a chunked body: it would have run the request as if it
    had none (a cancellation with a body it must refuse, say) and read the chunks as
    the next request. 411, and the connection closed."""
    host, port, _ = chalice_local
    token = issuer.token("bob@example.com")
    body = b'{"eventId": 1, "dryRun": true}'
    request = (
        b"POST /cancel HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer "
        + token.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
        + f"{len(body):x}".encode()
        + b"\r\n"
        + body
        + b"\r\n0\r\n\r\n"
    )
    answer = _send_raw(host, port, request)
    assert answer.startswith(b"HTTP/1.0 411") or answer.startswith(b"HTTP/1.1 411"), answer
    assert answer.count(b"HTTP/1.") == 1  # the chunks were not read as another request


@pytest.mark.dynamodb_local
@pytest.mark.parametrize("case", HOSTILE, ids=[case.name for case in HOSTILE])
def test_raw_bytes_over_http_get_the_same_answers(
    chalice_local: tuple[str, int, TicketStore], case: Hostile, issuer: LocalIssuer
) -> None:
    host, port, store = chalice_local
    before = table_snapshot(store)
    token = issuer.token(ORGANISER, organiser=True)
    status, body = _send(host, port, case.method, case.path, case.body, case.content_type, token)
    _expect(case, status, body)
    if case.status >= 400:
        assert table_snapshot(store) == before


@pytest.mark.dynamodb_local
def test_a_huge_declared_length_gets_a_413_without_the_body_being_read(
    chalice_local: tuple[str, int, TicketStore], issuer: LocalIssuer
) -> None:
    """chalice local used to read Content-Length bytes first: 99999999999 meant a MemoryError."""
    host, port, _ = chalice_local
    for declared, status, code in (
        ("99999999999", 413, "RequestEntityTooLargeError"),
        ("-5", 400, "BadRequestError"),
        ("12abc", 400, "BadRequestError"),
    ):
        connection = http.client.HTTPConnection(host, port, timeout=30)
        connection.putrequest("POST", "/book")
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Authorization", f"Bearer {issuer.token(ORGANISER, True)}")
        connection.putheader("Content-Length", declared)
        connection.endheaders(b'{"eventId": 1}')
        response = connection.getresponse()
        assert response.status == status, declared
        assert json.loads(response.read())["Code"] == code
        connection.close()
    assert _send(host, port, "GET", "/events", None)[0] == 200  # still serving


@pytest.mark.dynamodb_local
def test_the_servers_access_log_never_shows_a_query_string_or_an_address(
    chalice_local: tuple[str, int, TicketStore], issuer: LocalIssuer
) -> None:
    """A client may put an email in a URL; the server's own log must not print it."""
    host, port, _ = chalice_local
    token = issuer.token("bob@example.com")
    path = "/events/1/standing?userEmail=bob%40example.com"
    assert _send(host, port, "GET", path, None, token=token)[0] == 400
    assert _send(host, port, "GET", "/events?limit=1&cursor=1", None)[0] == 200
    # ... or in its path: the route's parameter, or a path no route has.
    assert _send(host, port, "GET", "/status/carol@example.com", None)[0] == 400
    assert _send(host, port, "GET", "/nosuch/dave%40example.com/x", None)[0] == 403
    # ... or in a request line the server cannot parse, which its error lines quote.
    for raw_line in (
        b"GET erin@example.com HTTP/1.1",
        b"GET /x frank@example.com HTTP/1.1",
        b"gina@example.com / HTTP/1.1",
        b"GET /events/1 HTTP/1.1 hugo%2540example.com",
    ):
        _send_raw(host, port, raw_line + b"\r\nHost: x\r\nConnection: close\r\n\r\n")
    time.sleep(0.5)  # the access-log line is written after the answer
    log = SERVER_LOGS[port]
    text = log.read_text(errors="replace")
    assert '"GET /events/1/standing HTTP/1.1" 400' in text  # the line is there, without its query
    assert '"GET /status/{redacted} HTTP/1.1" 400' in text
    assert "bob" not in text and "userEmail" not in text and "cursor=" not in text
    assert "carol" not in text and "dave" not in text
    for name in ("erin", "frank", "gina", "hugo"):
        assert name not in text, name
    assert "{redacted}" in text


@pytest.mark.dynamodb_local
@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_an_unknown_route_never_quotes_the_callers_token_back(
    chalice_local: tuple[str, int, TicketStore], issuer: LocalIssuer, method: str
) -> None:
    """chalice local imitates API Gateway's 403 for an unknown path, which quoted the
    Authorization header (the bearer token) into the body."""
    host, port, _ = chalice_local
    token = issuer.token("cat@example.com")
    status, body = _send(host, port, method, "/no-such-route", b"{}", token=token)
    assert status == 403
    assert set(body) == {"Code", "Message"}
    assert token not in json.dumps(body) and "Bearer" not in json.dumps(body)
