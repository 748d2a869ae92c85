"""Organiser webhooks: registration and its SSRF guard, signed deliveries that an
independent receiver verifies, retries with back-off, disabling, the queues."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given, settings

from chalicelib.contract import schemas
from chalicelib.notifications.settings import WEBHOOKS_ALLOW_LOOPBACK_ENV
from chalicelib.webhooks import addresses
from tests.conftest import ORGANISER, Api, moto_only
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
