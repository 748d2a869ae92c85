"""Organiser webhooks: registration and its SSRF guard, signed deliveries that an
independent receiver verifies, retries with back-off, disabling, the queues."""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import http.client
import itertools
import json
import socket
import threading
import time
from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import boto3
import pytest
from hypothesis import given, settings

from chalicelib.booking import create_event
from chalicelib.contract import schemas
from chalicelib.identity.access import Caller
from chalicelib.models import EndpointStatus
from chalicelib.notifications.domain_events import PLACE_PROMOTED, DomainEvent, domain_event_id
from chalicelib.notifications.settings import WEBHOOKS_ALLOW_LOOPBACK_ENV
from chalicelib.storage import TicketStore
from chalicelib.storage import webhooks as webhook_storage
from chalicelib.webhooks import addresses, delivery, endpoints, signing
from chalicelib.webhooks.queue import SQS_MAX_DELAY_SECONDS, LocalDeliveryQueue, SqsDeliveryQueue
from tests.conftest import ORGANISER, Api, drain, moto_only, unique_table_name
from tests.schema_strategies import from_schema

RIVAL = "rival@example.com"


@pytest.fixture
def no_loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    """A deployed stage: loopback is refused."""
    monkeypatch.delenv(WEBHOOKS_ALLOW_LOOPBACK_ENV, raising=False)


def _register(api: Api, body: Any, who: str = ORGANISER) -> Any:
    return api.post("/webhooks", body, token=api.token(who, organiser=True))


# -- the API -----------------------------------------------------------------------------------


@moto_only
def test_an_organiser_registers_lists_and_deletes_an_endpoint(api: Api, no_loopback: None) -> None:
    event_id = api.create_event(2)
    reply = _register(api, {"url": "https://hooks.example.com/in", "eventId": event_id})
    assert reply.status == 201, reply
    body = reply.body
    assert body["secret"].startswith("whsec_")
    assert body["status"] == "ENABLED" and body["eventId"] == event_id
    assert body["url"] == "https://hooks.example.com/in"
    assert _register(api, {"url": "https://hooks.example.com/all"}).body["eventId"] is None

    listed = api.get("/webhooks")
    assert listed.status == 200
    assert {e["webhookId"] for e in listed.body["webhooks"]} >= {body["webhookId"]}
    assert all("secret" not in e for e in listed.body["webhooks"])
    assert body["secret"] not in str(listed.body)

    deleted = api.send("delete", f"/webhooks/{body['webhookId']}", None)
    assert deleted.status == 200 and deleted.body == {
        "webhookId": body["webhookId"],
        "deleted": True,
    }
    assert api.send("delete", f"/webhooks/{body['webhookId']}", None).status == 404
    assert len(api.get("/webhooks").body["webhooks"]) == 1


@moto_only
def test_only_organisers_and_only_their_own(api: Api, no_loopback: None) -> None:
    event_id = api.create_event(2)
    url = {"url": "https://hooks.example.com/in"}
    assert api.post("/webhooks", url, token=None).status == 401
    assert api.get("/webhooks", token=None).status == 401
    assert api.post("/webhooks", url, token=api.token("ann@example.com")).status == 403
    assert api.get("/webhooks", token=api.token("ann@example.com")).status == 403
    mine = _register(api, url).body["webhookId"]
    rival = api.token(RIVAL, organiser=True)
    assert api.get("/webhooks", token=rival).body == {"webhooks": []}
    for reply in (
        api.send("delete", f"/webhooks/{mine}", None, token=rival),
        api.post(f"/webhooks/{mine}/enable", None, token=rival),
    ):
        assert reply.status == 404, reply
        assert reply.body["Code"] == "NotFoundError"
    # Another organiser's event: 403; an unknown event: 404.
    assert _register(api, {**url, "eventId": event_id}, who=RIVAL).status == 403
    assert _register(api, {**url, "eventId": 999}).status == 404
    assert len(api.get("/webhooks").body["webhooks"]) == 1


@moto_only
@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("http://hooks.example.com/in", 422, "url: must be an https URL"),
        ("https://10.0.0.1/in", 422, "url: must not point at a private"),
        ("https://169.254.169.254/latest/meta-data", 422, "url: must not point at a private"),
        ("https://100.64.0.1/", 422, "url: must not point at a private"),
        ("https://[::ffff:10.0.0.1]/", 422, "url: must not point at a private"),
        ("https://192.0.0.8/", 422, "url: must not point at a private"),
        ("https://192.88.99.1/", 422, "url: must not point at a private"),
        ("https://[fec0::1]/", 422, "url: must not point at a private"),
        ("https://[::1]/", 422, "url: must not point at this machine"),
        ("https://127.0.0.1:8443/", 422, "url: must not point at this machine"),
        ("https://localhost/", 422, "url: must not point at this machine"),
        ("https://api.localhost/", 422, "url: must not point at this machine"),
        ("https://127.1/", 422, "url: has a host that is neither"),
        ("https://2130706433/", 422, "url: has a host that is neither"),
        ("https://hooks.example.com:99999/", 422, "url: has a port outside"),
        ("https://hooks.example.com:0/", 422, "url: has a port outside"),
        ("https://[00]/", 422, "url: has a host that is not a valid address"),
        ("https://[1.2.3.4]/", 422, "url: has a host that is not a valid address"),
        ("https://user:pw@hooks.example.com/", 400, "url: must be an absolute http(s) URL"),
        ("https://user@hooks.example.com/", 400, "url: must be an absolute http(s) URL"),
        ("not a url", 400, "url: must be an absolute http(s) URL"),
        ("https://hooks.example.com/#frag", 400, "url: must be an absolute http(s) URL"),
        ("https://hooks.example.com/" + "x" * 2048, 400, "url: must be at most 2048"),
        ("", 400, "url: must be an absolute http(s) URL"),
    ],
)
def test_urls_that_webhooks_may_not_reach_are_refused(
    api: Api, no_loopback: None, url: str, status: int, message: str
) -> None:
    reply = _register(api, {"url": url})
    assert reply.status == status, reply
    assert set(reply.body) == {"Code", "Message"}
    assert reply.body["Message"].startswith(message), reply.body
    assert api.get("/webhooks").body == {"webhooks": []}


@moto_only
def test_the_event_in_a_query_string_is_refused_not_ignored(api: Api, no_loopback: None) -> None:
    event_id = api.create_event(1)
    reply = api.post(f"/webhooks?eventId={event_id}", {"url": "https://hooks.example.com/in"})
    assert reply.status == 400, reply
    assert reply.body["Message"].startswith("eventId: is not a query parameter here")
    assert api.get("/webhooks").body == {"webhooks": []}


@moto_only
def test_a_public_address_written_as_ipv4_mapped_ipv6_is_allowed(
    api: Api, no_loopback: None
) -> None:
    reply = _register(api, {"url": "https://[::ffff:1.1.1.1]/in"})
    assert reply.status == 201, reply


@moto_only
def test_unknown_fields_and_bad_ids_are_400(api: Api) -> None:
    reply = _register(api, {"url": "https://hooks.example.com/", "secret": "whsec_mine"})
    assert reply.status == 400 and reply.body["Message"] == "secret: is not a field of this request"
    reply = api.send("delete", "/webhooks/nope", None)
    assert reply.status == 400 and reply.body["Message"].startswith("webhookId: must be a webhook")


@moto_only
def test_loopback_is_allowed_where_the_stage_allows_it(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOKS_ALLOW_LOOPBACK_ENV, "1")
    assert _register(api, {"url": "http://127.0.0.1:9/in"}).status == 201
    assert _register(api, {"url": "http://10.0.0.1/in"}).status == 422  # private: never
    assert (
        _register(api, {"url": "http://hooks.example.com/in"}).status == 422
    )  # http: loopback only


@moto_only
def test_an_organiser_has_at_most_ten_endpoints(api: Api) -> None:
    from chalicelib.storage.webhooks import MAX_ENDPOINTS_PER_ORGANISER

    ids = []
    for n in range(MAX_ENDPOINTS_PER_ORGANISER):
        reply = _register(api, {"url": f"https://hooks.example.com/{n}"})
        assert reply.status == 201
        ids.append(reply.body["webhookId"])
    reply = _register(api, {"url": "https://hooks.example.com/one-more"})
    assert reply.status == 409 and "at most 10" in reply.body["Message"]
    assert api.send("delete", f"/webhooks/{ids[0]}", None).status == 200
    assert _register(api, {"url": "https://hooks.example.com/one-more"}).status == 201


@settings(max_examples=500, deadline=None)
@given(url=from_schema(schemas.WEBHOOK_URL))
def test_the_guard_judges_any_url_of_the_declared_form_without_crashing(url: str) -> None:
    """Whatever the form admits, the guard answers yes or a reason (a 422), never a crash."""
    for allow in (False, True):
        with contextlib.suppress(addresses.AddressRefused):
            addresses.check_url(url, allow)


# -- deliveries ---------------------------------------------------------------------------------

T0 = 1_800_000_000_000  # Unix ms: the tests' clock starts here
OWNER = Caller("owner-sub", "owner@example.com", is_organiser=True)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


class Receiver:
    """A webhook receiver on 127.0.0.1 that answers ``statuses`` in turn (the last one
    for ever after) and records what it was sent. It verifies nothing itself."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append((self.path, headers, body))
                status = receiver.statuses[min(len(receiver.received), len(statuses)) - 1]
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/redirected")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hooks"

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *args: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def verify_as_a_receiver(secret: str, headers: dict[str, str], body: bytes, now_s: int) -> None:
    """Standard Webhooks verification, written from the specification (not ``signing``)."""
    key = base64.b64decode(secret.split("_", 1)[1])
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    assert any(
        hmac.compare_digest(expected, candidate)
        for candidate in headers["webhook-signature"].split(" ")
    ), "signature mismatch"
    assert abs(now_s - int(headers["webhook-timestamp"])) <= 300, "stale timestamp"


@pytest.fixture
def loopback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(WEBHOOKS_ALLOW_LOOPBACK_ENV, "1")


def _event(store: TicketStore) -> int:
    return create_event(store, "Launch", 2, owner_id=OWNER.subject).event_id


def _domain_event(event_id: int, n: int = 1) -> DomainEvent:
    return DomainEvent(
        domain_event_id(f"record-{n}", PLACE_PROMOTED),
        PLACE_PROMOTED,
        event_id,
        "2027-01-15T10:00:00.000+00:00",
        "ann@example.com",
    )


def _enqueue(store: TicketStore, queue: Any, event_id: int, n: int = 1) -> int:
    return delivery.enqueue_deliveries(store, queue, OWNER.subject, _domain_event(event_id, n))


def _register_endpoint(store: TicketStore, url: str, event_id: int | None = None) -> Any:
    return endpoints.register(store, OWNER, url, event_id).endpoint


@pytest.mark.usefixtures("loopback")
def test_a_signed_delivery_reaches_a_receiver_that_verifies_it(moto_store: TicketStore) -> None:
    store, clock = moto_store, Clock()
    queue = LocalDeliveryQueue(clock)
    event_id, other_event = _event(store), _event(store)
    with Receiver([200]) as receiver:
        endpoint = _register_endpoint(store, receiver.url, event_id)
        _register_endpoint(store, receiver.url + "/other", other_event)  # not this event's
        domain_event = _domain_event(event_id)
        assert delivery.enqueue_deliveries(store, queue, OWNER.subject, domain_event) == 1
        assert delivery.deliver_due(store, queue, clock()) == [delivery.Outcome.DELIVERED]
    [(path, headers, body)] = receiver.received
    assert path == "/hooks"
    assert headers["content-type"] == "application/json"
    assert headers["webhook-id"] == domain_event.id
    assert headers["webhook-timestamp"] == str(T0 // 1000)
    verify_as_a_receiver(endpoint.secret, headers, body, T0 // 1000)
    assert json.loads(body) == {
        "type": "place.promoted",
        "timestamp": "2027-01-15T10:00:00.000+00:00",
        "data": {"eventId": event_id, "userEmail": "ann@example.com"},
    }
    # The receiver's check fails for a changed body, another secret, or an old delivery.
    with pytest.raises(AssertionError, match="signature mismatch"):
        verify_as_a_receiver(endpoint.secret, headers, body.replace(b"ann", b"bob"), T0 // 1000)
    with pytest.raises(AssertionError, match="signature mismatch"):
        verify_as_a_receiver(signing.new_secret(), headers, body, T0 // 1000)
    with pytest.raises(AssertionError, match="stale timestamp"):
        verify_as_a_receiver(endpoint.secret, headers, body, T0 // 1000 + 301)
    # The documented verify() agrees.
    args = (headers["webhook-id"], headers["webhook-timestamp"], body.decode())
    signing.verify(endpoint.secret, *args, headers["webhook-signature"], T0 // 1000)
    with pytest.raises(signing.InvalidSignature):
        signing.verify(endpoint.secret, *args, headers["webhook-signature"], T0 // 1000 + 301)


@pytest.mark.usefixtures("loopback")
def test_a_failing_endpoint_is_retried_on_schedule_then_disabled(moto_store: TicketStore) -> None:
    store, clock = moto_store, Clock()
    queue = LocalDeliveryQueue(clock)
    event_id = _event(store)
    with Receiver([500]) as receiver:
        endpoint = _register_endpoint(store, receiver.url)
        assert _enqueue(store, queue, event_id) == 1
        attempts_at: list[int] = []
        outcomes: list[delivery.Outcome] = []
        while (due := queue.next_due_ms()) is not None:
            clock.now = due
            attempts_at.append((due - T0) // 1000)
            outcomes += delivery.deliver_due(store, queue, clock())
        assert len(receiver.received) == delivery.MAX_ATTEMPTS == 8
        # Every attempt: the same id and body, a fresh timestamp and signature.
        assert len({h["webhook-id"] for _, h, _ in receiver.received}) == 1
        assert len({b for _, _, b in receiver.received}) == 1
        for (_, headers, body), at in zip(receiver.received, attempts_at, strict=True):
            assert headers["webhook-timestamp"] == str(T0 // 1000 + at)
            verify_as_a_receiver(endpoint.secret, headers, body, T0 // 1000 + at)
        gaps = [later - earlier for earlier, later in itertools.pairwise(attempts_at)]
        assert gaps == [5, 300, 1800, 7200, 18000, 36000, 36000]
        assert attempts_at[-1] >= 24 * 3600
        assert outcomes == [delivery.Outcome.RETRY_SCHEDULED] * 7 + [delivery.Outcome.DISABLED]
        assert len(queue.dead_letters) == 1

        stored_endpoint = webhook_storage.get_endpoint(store, OWNER.subject, endpoint.webhook_id)
        assert stored_endpoint is not None
        assert stored_endpoint.status == EndpointStatus.DISABLED
        assert stored_endpoint.consecutive_failures == 8
        # Disabled: nothing more is queued or sent.
        assert (
            delivery.enqueue_deliveries(store, queue, OWNER.subject, _domain_event(event_id, 2))
            == 0
        )
        assert len(receiver.received) == 8

        # Enabled again, with a clean record: the next event goes out (and now succeeds).
        receiver.statuses = [204]
        enabled = endpoints.enable(store, OWNER, endpoint.webhook_id)
        assert (enabled.status, enabled.consecutive_failures) == (EndpointStatus.ENABLED, 0)
        assert enabled.failing_since_ms is None and enabled.disabled_at is None
        assert (
            delivery.enqueue_deliveries(store, queue, OWNER.subject, _domain_event(event_id, 3))
            == 1
        )
        assert delivery.deliver_due(store, queue, clock()) == [delivery.Outcome.DELIVERED]


def test_a_short_outage_never_disables_and_a_success_resets_the_streak(
    moto_store: TicketStore,
) -> None:
    store, clock = moto_store, Clock()
    queue = LocalDeliveryQueue(clock)
    event_id = _event(store)
    endpoint = _register_endpoint(store, "https://hooks.example.com/in")
    down = [True]

    def post(url: str, headers: Mapping[str, str], body: bytes) -> int:
        return 503 if down[0] else 200

    for n in range(12):  # an hour's outage: more failures than the threshold, but short
        _enqueue(store, queue, event_id, n)
        clock.now += 5 * 60 * 1000
        delivery.deliver_due(store, queue, clock(), post)
    failing = webhook_storage.get_endpoint(store, OWNER.subject, endpoint.webhook_id)
    assert failing is not None and failing.status == EndpointStatus.ENABLED
    assert failing.consecutive_failures > delivery.DISABLE_AFTER_FAILURES
    assert failing.failing_since_ms == T0 + 5 * 60 * 1000

    down[0] = False
    delivery.enqueue_deliveries(store, queue, OWNER.subject, _domain_event(event_id, 99))
    assert delivery.deliver_due(store, queue, clock(), post)[-1] == delivery.Outcome.DELIVERED
    healed = webhook_storage.get_endpoint(store, OWNER.subject, endpoint.webhook_id)
    assert healed is not None
    assert (healed.consecutive_failures, healed.failing_since_ms) == (0, None)


def test_a_deleted_endpoint_gets_nothing_more(moto_store: TicketStore) -> None:
    store, clock = moto_store, Clock()
    queue = LocalDeliveryQueue(clock)
    event_id = _event(store)
    endpoint = _register_endpoint(store, "https://hooks.example.com/in")
    calls: list[str] = []

    def post(url: str, headers: Mapping[str, str], body: bytes) -> int:
        calls.append(url)
        return 500

    delivery.enqueue_deliveries(store, queue, OWNER.subject, _domain_event(event_id))
    assert delivery.deliver_due(store, queue, clock(), post) == [delivery.Outcome.RETRY_SCHEDULED]
    endpoints.delete(store, OWNER, endpoint.webhook_id)
    clock.now += 5_000
    assert delivery.deliver_due(store, queue, clock(), post) == [delivery.Outcome.SKIPPED]
    assert len(calls) == 1 and len(queue) == 0
    assert _enqueue(store, queue, event_id, 2) == 0


@pytest.mark.usefixtures("loopback")
def test_a_redirect_is_a_failure_and_is_not_followed(moto_store: TicketStore) -> None:
    store, clock = moto_store, Clock()
    queue = LocalDeliveryQueue(clock)
    event_id = _event(store)
    with Receiver([302]) as receiver:
        endpoint = _register_endpoint(store, receiver.url)
        delivery.enqueue_deliveries(store, queue, OWNER.subject, _domain_event(event_id))
        assert delivery.deliver_due(store, queue, clock()) == [delivery.Outcome.RETRY_SCHEDULED]
    assert [path for path, _, _ in receiver.received] == ["/hooks"]  # /redirected never asked
    failed = webhook_storage.get_endpoint(store, OWNER.subject, endpoint.webhook_id)
    assert failed is not None and failed.consecutive_failures == 1


def _resolving_to(*addresses_: str) -> Any:
    """A ``getaddrinfo`` whose answers are ``addresses_``, one call after another."""
    answers = list(addresses_)
    real = socket.getaddrinfo

    def getaddrinfo(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if addresses._ip_literal(host) is not None:  # a numeric host resolves to itself
            return real(host, port, *args, **kwargs)
        address = answers.pop(0) if len(answers) > 1 else answers[0]
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [(family, socket.SOCK_STREAM, 6, "", (address, port))]

    return getaddrinfo


def test_a_name_that_resolves_to_a_private_address_is_refused_at_delivery(
    moto_store: TicketStore, monkeypatch: pytest.MonkeyPatch, no_loopback: None
) -> None:
    """Registration passed (a public-looking name); delivery resolves it to 10.x: refused
    before any connection is made."""
    store, clock = moto_store, Clock()
    queue = LocalDeliveryQueue(clock)
    event_id = _event(store)
    endpoint = _register_endpoint(store, "https://hooks.example.com/in")
    connections: list[Any] = []
    monkeypatch.setattr(socket, "create_connection", lambda *a, **k: connections.append(a))
    for private in ("10.1.2.3", "169.254.169.254", "::ffff:127.0.0.1", "100.64.1.1"):
        monkeypatch.setattr(socket, "getaddrinfo", _resolving_to(private))
        with pytest.raises(addresses.AddressRefused):
            addresses.post(endpoint.url, {}, b"{}")
    # One public address and one private: refused too.
    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda host, port, *a, **k: [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port)),
        ],
    )
    delivery.enqueue_deliveries(store, queue, OWNER.subject, _domain_event(event_id))
    assert delivery.deliver_due(store, queue, clock()) == [delivery.Outcome.RETRY_SCHEDULED]
    assert connections == []


@pytest.mark.usefixtures("loopback")
def test_the_connection_goes_to_the_address_that_was_checked(
    moto_store: TicketStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name answers 127.0.0.1 when checked and 10.0.0.1 afterwards; the
    delivery still goes to 127.0.0.1 (the connection is pinned), with the name as Host."""
    with Receiver([200]) as receiver:
        port = receiver.server.server_address[1]
        monkeypatch.setattr(socket, "getaddrinfo", _resolving_to("127.0.0.1", "10.0.0.1"))
        status = addresses.post(f"http://receiver.localhost:{port}/in", {}, b"{}")
    assert status == 200
    [(path, headers, _)] = receiver.received
    assert path == "/in" and headers["host"] == f"receiver.localhost:{port}"


def test_the_sqs_queue_clamps_the_delay_and_the_message_carries_its_due_time(
    moto_store: TicketStore,
) -> None:
    store, clock = moto_store, Clock()
    sqs = boto3.client("sqs", region_name="us-east-1")
    url = sqs.create_queue(QueueName=f"webhooks-{unique_table_name()}")["QueueUrl"]
    dead = sqs.create_queue(QueueName=f"webhooks-dlq-{unique_table_name()}")["QueueUrl"]
    queue = SqsDeliveryQueue(url, dead)
    sent: list[dict[str, Any]] = []
    real_send = queue.client.send_message

    def send_message(**kwargs: Any) -> Any:
        sent.append(kwargs)
        return real_send(**kwargs)

    queue.client.send_message = send_message
    event_id = _event(store)
    _register_endpoint(store, "https://hooks.example.com/in")
    message = delivery.DeliveryMessage(
        OWNER.subject, "wh_x", "evt_1", "{}", attempt=1, notBefore=0
    ).to_json()
    assert _enqueue(store, queue, event_id) == 1
    [first] = drain(url)
    # Attempt 5 fails: the next is 5 hours away, sent with SQS's longest delay (900 s).
    fifth = json.loads(first) | {"attempt": 5}
    outcome = delivery.deliver(store, queue, json.dumps(fifth), clock(), lambda *a: 500)
    assert outcome == delivery.Outcome.RETRY_SCHEDULED
    assert sent[-1]["DelaySeconds"] == SQS_MAX_DELAY_SECONDS
    retry = json.loads(sent[-1]["MessageBody"])
    assert (retry["attempt"], retry["notBefore"]) == (6, T0 + 5 * 3600 * 1000)
    # Received 15 minutes later, it is not due: sent back with the delay it still needs.
    clock.now += 900_000
    early = delivery.deliver(store, queue, sent[-1]["MessageBody"], clock(), lambda *a: 200)
    assert early == delivery.Outcome.DEFERRED
    assert sent[-1]["DelaySeconds"] == SQS_MAX_DELAY_SECONDS
    assert sent[-1]["MessageBody"] == sent[-2]["MessageBody"]
    clock.now = T0 + 5 * 3600 * 1000 - 30_000
    delivery.deliver(store, queue, sent[-1]["MessageBody"], clock(), lambda *a: 200)
    assert sent[-1]["DelaySeconds"] == 30
    # A malformed message goes straight to the dead-letter queue.
    assert delivery.deliver(store, queue, message[:-3], clock()) == delivery.Outcome.DEAD_LETTERED
    assert drain(dead) == [message[:-3]]


@moto_only
@pytest.mark.usefixtures("loopback")
def test_the_sqs_worker_makes_one_attempt_per_record(api: Api, store: TicketStore) -> None:
    with Receiver([200]) as receiver:
        endpoint = _register_endpoint(store, receiver.url)
        message = delivery.DeliveryMessage(OWNER.subject, endpoint.webhook_id, "evt_1", '{"a":1}')
        event = api.client.events.generate_sqs_event(
            message_bodies=[message.to_json()], queue_name="ticket-booking-webhooks"
        )
        api.client.lambda_.invoke("deliver_webhooks", event)
    [(_, headers, body)] = receiver.received
    assert body == b'{"a":1}' and headers["webhook-id"] == "evt_1"
    verify_as_a_receiver(endpoint.secret, headers, body, int(headers["webhook-timestamp"]))


def test_an_endpoint_that_trickles_its_answer_is_cut_off_at_the_deadline(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A slow-loris receiver (a byte of its answer every 0.3 s, each read well inside the
    per-read timeout) must not hold the attempt beyond the whole-attempt deadline."""
    monkeypatch.setenv(WEBHOOKS_ALLOW_LOOPBACK_ENV, "1")
    monkeypatch.setattr(addresses, "ATTEMPT_DEADLINE_SECONDS", 1.5)
    stop = threading.Event()

    class Trickle(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            for byte in b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * 200:
                if stop.is_set():
                    return
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.3)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        started = time.monotonic()
        with pytest.raises((OSError, http.client.HTTPException)):
            addresses.post(f"http://127.0.0.1:{server.server_address[1]}/in", {}, b"{}")
        took = time.monotonic() - started
    finally:
        stop.set()
        server.shutdown()
        server.server_close()
    assert took < 1.5 + 1.0, took  # the deadline, plus a read's worth of slack
