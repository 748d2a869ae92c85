"""HTTP routes of the ticket booking service.

Each route parses and validates the request, authorises it, calls one domain
function in ``chalicelib.booking`` (or, for organisers' lists,
``chalicelib.organiser_lists``), and shapes the answer: JSON, or CSV for a list when
the client asks for it.
``RequestObserver`` verifies the caller's token against the operation's access
level (``chalicelib.contract.operations``) before the route runs, maps errors to
HTTP, and logs every request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from chalice.app import (
    Chalice,
    CloudWatchEvent,
    DynamoDBEvent,
    Rate,
    Request,
    Response,
    SQSEvent,
)

from chalicelib import audit, booking, csv_answers, organiser, organiser_lists, validation
from chalicelib.audit import fanout
from chalicelib.clock import now_ms
from chalicelib.contract import openapi as contract_openapi
from chalicelib.contract import schemas
from chalicelib.errors import InvalidRequest
from chalicelib.http import RequestObserver, json_body
from chalicelib.identity.access import Caller, current_caller
from chalicelib.models import Event, Standing, Status
from chalicelib.notifications import dispatch
from chalicelib.notifications import settings as notification_settings
from chalicelib.observability import count, flush_metrics
from chalicelib.storage import TicketStore, ticket_store
from chalicelib.webhooks import delivery as webhook_delivery
from chalicelib.webhooks import endpoints as webhook_endpoints

app = Chalice(app_name="ticket-booking")
observe = RequestObserver(app)


def _request() -> Request:
    request = app.current_request
    assert request is not None, "called outside a request"
    return request


def _query(name: str) -> str | None:
    params: Mapping[str, str] = _request().query_params or {}
    return params.get(name)


@app.route("/initialize", methods=["POST"])
@observe
def initialize() -> Response:
    new_event = validation.parse_new_event(json_body())
    event = booking.create_event(
        ticket_store(),
        new_event.name,
        new_event.total_tickets,
        owner_id=current_caller().subject,
        waiting_list_cap=new_event.waiting_list_cap or booking.DEFAULT_WAITING_LIST_CAP,
        sales_window=new_event.sales_window,
    )
    return Response(body=event.to_json(), status_code=201)


@app.route("/book", methods=["POST"])
@observe
def book() -> Response:
    place = validation.parse_place_request(json_body())
    request_key = validation.parse_idempotency_key(_request().headers.get("idempotency-key"))
    email = booking.acting_for(ticket_store(), current_caller(), place.event_id, place.email)
    outcome = booking.book_ticket(ticket_store(), place.event_id, email, request_key)
    body = {"eventId": place.event_id, "userEmail": email, "status": outcome.status}
    if outcome.replayed:
        body["idempotentReplay"] = True
    if outcome.status == Status.BOOKED:
        return Response(body={"message": "Ticket booked successfully", **body}, status_code=201)
    body["position"] = outcome.position
    return Response(
        body={"message": "Event sold out, you're added to the waiting list", **body},
        status_code=202,
    )


@app.route("/cancel", methods=["POST"])
@observe
def cancel() -> Response:
    place = validation.parse_place_request(json_body())
    email = booking.acting_for(ticket_store(), current_caller(), place.event_id, place.email)
    outcome = booking.cancel_booking(ticket_store(), place.event_id, email)
    message = (
        "Your booking has been cancelled successfully"
        if outcome.previous_status == Status.BOOKED
        else "You have left the waiting list"
    )
    return Response(
        body={
            "message": message,
            "eventId": place.event_id,
            "userEmail": email,
            "status": outcome.status,
            "previousStatus": outcome.previous_status,
            "ticketPassedToWaitingList": outcome.promoted_waiting_person,
        },
        status_code=200,
    )


def _event_answer(event_id: str) -> Response:
    event = booking.get_event(ticket_store(), validation.parse_event_id(event_id))
    return Response(body=event.to_json(), status_code=200)


@app.route("/status/{eventId}", methods=["GET"])
@observe
def status(eventId: str) -> Response:  # noqa: N803 (name fixed by the URL template)
    """The original API's name for ``GET /events/{eventId}``."""
    return _event_answer(eventId)


@app.route("/events", methods=["GET"])
@observe
def list_events() -> Response:
    limit = validation.parse_page_size(_query("limit"))
    before_id = validation.parse_cursor(_query("cursor"))
    events, next_before = booking.list_events(ticket_store(), limit, before_id)
    return _events_page(events, next_before)


@app.route("/organisers/me/events", methods=["GET"])
@observe
def my_events() -> Response:
    """The caller's own events (organisers), newest first."""
    limit = validation.parse_page_size(_query("limit"))
    before_id = validation.parse_cursor(_query("cursor"))
    events, next_before = organiser_lists.my_events(
        ticket_store(), current_caller(), limit, before_id
    )
    return _events_page(events, next_before)


def _events_page(events: list[Event], next_before: int | None) -> Response:
    return Response(
        body={
            "events": [event.to_json() for event in events],
            "nextCursor": validation.encode_cursor(next_before) if next_before else None,
        },
        status_code=200,
    )


@app.route("/events/{eventId}", methods=["GET"])
@observe
def get_event(eventId: str) -> Response:  # noqa: N803
    return _event_answer(eventId)


@app.route("/events/{eventId}", methods=["PATCH"])
@observe
def change_event(eventId: str) -> Response:  # noqa: N803
    """The organiser changes the name, capacity, waiting-list cap or sales window: 200 when
    done, 202 while a raise is still promoting a long waiting list (send it again)."""
    event_id = validation.parse_event_id(eventId)
    change = validation.parse_event_change(json_body())
    event, complete = organiser.change_event(ticket_store(), current_caller(), event_id, change)
    return Response(body=event.to_json(), status_code=200 if complete else 202)


@app.route("/events/{eventId}/close", methods=["POST"])
@observe
def close_sales(eventId: str) -> Response:  # noqa: N803
    return _control(eventId, organiser.close_sales)


@app.route("/events/{eventId}/reopen", methods=["POST"])
@observe
def reopen_sales(eventId: str) -> Response:  # noqa: N803
    return _control(eventId, organiser.reopen_sales)


def _control(event_id_text: str, act: Callable[[TicketStore, Caller, int], Event]) -> Response:
    """An organiser's control of one event: the event as it is afterwards."""
    event = act(ticket_store(), current_caller(), validation.parse_event_id(event_id_text))
    return Response(body=event.to_json(), status_code=200)


@app.route("/events/{eventId}/cancel", methods=["POST"])
@observe
def cancel_event(eventId: str) -> Response:  # noqa: N803
    """Cancel the event: 200 once every place is released, 202 while some remain (call again)."""
    event_id = validation.parse_event_id(eventId)
    event = organiser.cancel_event(ticket_store(), current_caller(), event_id)
    done = event.released_count >= event.places_to_release
    return Response(body=event.to_json(), status_code=200 if done else 202)


@app.route("/events/{eventId}/standing", methods=["GET"])
@observe
def standing(eventId: str) -> Response:  # noqa: N803
    """My standing: the email comes from the token, never from the URL."""
    if _query("userEmail") is not None:
        raise InvalidRequest(
            "userEmail", "is not taken from the URL; organisers use POST /events/{eventId}/lookup"
        )
    event_id = validation.parse_event_id(eventId)
    result = booking.get_standing(ticket_store(), event_id, current_caller().email)
    return Response(body=_standing_json(result), status_code=200)


@app.route("/events/{eventId}/lookup", methods=["POST"])
@observe
def lookup(eventId: str) -> Response:  # noqa: N803
    """Box office: anyone's standing in the caller's own event."""
    event_id = validation.parse_event_id(eventId)
    email = booking.acting_for(
        ticket_store(), current_caller(), event_id, validation.parse_lookup(json_body())
    )
    result = booking.get_standing(ticket_store(), event_id, email)
    return Response(body=_standing_json(result), status_code=200)


@app.route("/events/{eventId}/attendees", methods=["GET"])
@observe
def attendees(eventId: str) -> Response:  # noqa: N803
    """The event's ticket holders in booking order (its organiser only): JSON or CSV."""
    return _event_list(eventId, organiser_lists.attendees, "attendees", schemas.ATTENDEE)


@app.route("/events/{eventId}/waiting-list", methods=["GET"])
@observe
def waiting_list(eventId: str) -> Response:  # noqa: N803
    """The event's waiting list with positions (its organiser only): JSON or CSV."""
    return _event_list(eventId, organiser_lists.waiting_list, "waitingList", schemas.WAITING_ENTRY)


def _event_list(
    event_id_text: str, read: organiser_lists.ListReader, name: str, row_schema: schemas.Schema
) -> Response:
    """Parse an event list's page request, read the page as the caller, shape the answer."""
    event_id = validation.parse_event_id(event_id_text)
    limit = validation.parse_page_size(_query("limit"))
    after = validation.parse_list_cursor(_query("cursor"))
    page = read(ticket_store(), current_caller(), event_id, limit, after)
    rows = [entry.to_json() for entry in page.entries]
    return _list_answer(event_id, name, rows, page.next_cursor, row_schema)


def _list_answer(
    event_id: int,
    name: str,
    rows: list[dict[str, Any]],
    next_cursor: int | None,
    row_schema: schemas.Schema,
) -> Response:
    """A page of an event's list: JSON, or CSV if ``Accept`` prefers it (the documented
    columns, in order); the next page's cursor also in a header, for CSV's sake."""
    cursor = str(next_cursor) if next_cursor is not None else None
    headers: dict[str, str | list[str]] = {"Vary": "Accept"}
    if cursor is not None:
        headers[schemas.NEXT_CURSOR_HEADER] = cursor
    if csv_answers.wants_csv(_request().headers.get("accept")):
        headers["Content-Type"] = f"{csv_answers.MEDIA_TYPE}; charset=utf-8"
        text = csv_answers.render(row_schema["properties"], rows)
        return Response(body=text, status_code=200, headers=headers)
    body = {"eventId": event_id, name: rows, "nextCursor": cursor}
    return Response(body=body, status_code=200, headers=headers)


def _standing_json(result: Standing) -> dict[str, Any]:
    return {
        "eventId": result.event_id,
        "userEmail": result.email,
        "status": result.status,
        "position": result.position,
    }


@app.route("/webhooks", methods=["POST"])
@observe
def register_webhook() -> Response:
    """An organiser's new endpoint; the answer carries its signing secret, once.

    A query parameter is refused, not ignored: ``?eventId=1`` would otherwise register
    an endpoint for every event of the organiser's while they meant one.
    """
    for name in _request().query_params or {}:
        raise InvalidRequest(name, "is not a query parameter here; eventId goes in the body")
    new = validation.parse_new_webhook(json_body())
    registered = webhook_endpoints.register(ticket_store(), current_caller(), new.url, new.event_id)
    return Response(body=registered.to_json(), status_code=201)


@app.route("/webhooks", methods=["GET"])
@observe
def list_webhooks() -> Response:
    found = webhook_endpoints.list_endpoints(ticket_store(), current_caller())
    return Response(body={"webhooks": [e.to_json() for e in found]}, status_code=200)


@app.route("/webhooks/{webhookId}", methods=["DELETE"])
@observe
def delete_webhook(webhookId: str) -> Response:  # noqa: N803
    webhook_id = validation.parse_webhook_id(webhookId)
    webhook_endpoints.delete(ticket_store(), current_caller(), webhook_id)
    return Response(body={"webhookId": webhook_id, "deleted": True}, status_code=200)


@app.route("/webhooks/{webhookId}/enable", methods=["POST"])
@observe
def enable_webhook(webhookId: str) -> Response:  # noqa: N803
    webhook_id = validation.parse_webhook_id(webhookId)
    endpoint = webhook_endpoints.enable(ticket_store(), current_caller(), webhook_id)
    return Response(body=endpoint.to_json(), status_code=200)


@app.route("/openapi.json", methods=["GET"])
@observe
def openapi() -> Response:
    """The OpenAPI description, generated from the declarations the validation uses."""
    return Response(body=contract_openapi.document(), status_code=200)


@app.schedule(Rate(1, unit=Rate.HOURS))
def audit_invariants(event: CloudWatchEvent) -> dict[str, Any]:
    """Hourly in AWS: queue one audit per event for ``audit_worker``.

    Where no queue is configured (the test stage) it audits every event itself,
    with the same steps; violations are logged as ERROR lines either way.
    """
    url = fanout.queue_url()
    if url is None:
        return audit.run_scheduled_audit(ticket_store()).to_json()
    try:
        return {"eventsQueued": fanout.queue_every_event(ticket_store(), fanout.sqs_client(), url)}
    finally:
        flush_metrics()


@app.on_sqs_message(queue=fanout.AUDIT_QUEUE_NAME, batch_size=1, maximum_concurrency=10)
def audit_worker(event: SQSEvent) -> None:
    """Audit the event each message names within this invocation's time; continue it if need be.

    An exception fails the message: SQS retries it, then dead-letters it.
    """
    url = fanout.queue_url()
    if url is None:
        raise RuntimeError(f"environment variable {fanout.AUDIT_QUEUE_URL_ENV} is not set")
    try:
        for record in event:
            fanout.audit_message(
                ticket_store(),
                fanout.sqs_client(),
                url,
                record.body,
                _time_left(record.context),
            )
    except Exception:
        count("AuditErrors", 1)
        raise
    finally:
        flush_metrics()


def _time_left(lambda_context: Any) -> Callable[[], int]:
    """The invocation's remaining milliseconds, as the Lambda context tells them."""
    remaining: Callable[[], int] = lambda_context.get_remaining_time_in_millis
    return remaining


@app.on_dynamodb_record(
    stream_arn=notification_settings.STREAM_PLACEHOLDER_ARN,
    batch_size=100,
    starting_position="TRIM_HORIZON",
)
def notify_changes(event: DynamoDBEvent) -> dict[str, Any]:
    """The table's stream: each change of a place or an event becomes domain events, which
    send emails and queue organisers' webhooks (each once per domain event id).

    Answers the records that failed (Lambda's partial batch response): Lambda retries
    from the first of them; what happened before it is not repeated.
    """
    try:
        failed = dispatch.dispatcher(ticket_store()).handle(r.to_dict() for r in event)
        return {"batchItemFailures": [{"itemIdentifier": sequence} for sequence in failed]}
    finally:
        flush_metrics()


@app.on_sqs_message(
    queue=notification_settings.WEBHOOK_QUEUE_NAME, batch_size=1, maximum_concurrency=20
)
def deliver_webhooks(event: SQSEvent) -> None:
    """One webhook delivery attempt per message; a failure is queued again with back-off.

    A crash (DynamoDB unavailable, say) raises: SQS retries the message, then dead-letters it.
    """
    queue = webhook_delivery.delivery_queue()
    try:
        for record in event:
            webhook_delivery.deliver(ticket_store(), queue, record.body, now_ms())
    except Exception:
        count("WebhookWorkerErrors", 1)
        raise
    finally:
        flush_metrics()
