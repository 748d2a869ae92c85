"""The HTTP edge: map domain errors to status codes and log one line per request.

Chalice's own error classes keep the ``{"Code", "Message"}`` body shape for 4xx;
503 and 500 are built as ``Response`` objects because they carry a custom code
or header (``Retry-After``).
"""

from __future__ import annotations

import functools
import logging
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from chalice.app import (
    BadRequestError,
    Chalice,
    ChaliceViewError,
    ConflictError,
    NotFoundError,
    Response,
)

from chalicelib.errors import (
    AlreadyHoldsPlace,
    BookingError,
    EventNotFound,
    InvalidRequest,
    NoPlaceHeld,
    ServiceBusy,
)
from chalicelib.observability import email_fingerprint, log_event
from chalicelib.validation import parse_json_object

#: The current request's body, parsed once by ``RequestObserver``: the JSON
#: object, or the ``InvalidRequest`` that says why it is not one.
_parsed_body: ContextVar[dict[str, Any] | InvalidRequest] = ContextVar("parsed_body")

_CHALICE_ERRORS: dict[type[BookingError], type[ChaliceViewError]] = {
    InvalidRequest: BadRequestError,
    EventNotFound: NotFoundError,
    NoPlaceHeld: NotFoundError,
    AlreadyHoldsPlace: ConflictError,
}


def service_busy_response(error: ServiceBusy) -> Response:
    return Response(
        body={"Code": "ServiceUnavailable", "Message": str(error)},
        status_code=503,
        headers={"Retry-After": str(error.retry_after_seconds)},
    )


def internal_error_response() -> Response:
    return Response(
        body={"Code": "InternalServerError", "Message": "An internal server error occurred"},
        status_code=500,
    )


def json_body() -> dict[str, Any]:
    """The request's body as a JSON object, or ``InvalidRequest`` naming what is wrong."""
    body = _parsed_body.get()
    if isinstance(body, InvalidRequest):
        raise body
    return body


class RequestObserver:
    """Decorates a route: parses its body once, times it, maps errors, and logs one line.

    Usage: ``observe = RequestObserver(app)`` then ``@observe`` under ``@app.route``;
    the log line's ``action`` is the view function's name.
    """

    def __init__(self, app: Chalice) -> None:
        self.app = app

    def __call__(self, view: Callable[..., Response]) -> Callable[..., Any]:
        action = view.__name__

        @functools.wraps(view)
        def handle(**uri_params: Any) -> Any:
            started = time.perf_counter()
            status, outcome, level = 500, "InternalServerError", logging.ERROR
            response: Any = None
            failure: Any = None
            try:
                self._parse_body()
                response = view(**uri_params)
                status = response.status_code
                body = response.body if isinstance(response.body, dict) else {}
                outcome, level = str(body.get("status", "OK")), logging.INFO
                return response
            except ServiceBusy as error:
                status, outcome, level = 503, "ServiceBusy", logging.WARNING
                response = service_busy_response(error)
                return response
            except BookingError as error:
                chalice_error = _CHALICE_ERRORS[type(error)]
                status, outcome = chalice_error.STATUS_CODE, type(error).__name__
                level = logging.INFO
                raise chalice_error(str(error)) from None
            except Exception:
                failure = sys.exc_info()  # logged with the outcome line below
                response = internal_error_response()
                return response
            finally:
                log_event(
                    level,
                    "request outcome",
                    exc_info=failure,
                    action=action,
                    outcome=outcome,
                    statusCode=status,
                    durationMs=round((time.perf_counter() - started) * 1000, 2),
                    **self._request_context(uri_params, response),
                )

        return handle

    def _parse_body(self) -> None:
        request = self.app.current_request
        try:
            _parsed_body.set(parse_json_object(request.raw_body if request else None))
        except InvalidRequest as error:
            _parsed_body.set(error)

    def _request_context(self, uri_params: dict[str, Any], response: Any) -> dict[str, Any]:
        """eventId and a pseudonym of the email, read leniently (the body may be invalid)."""
        request = self.app.current_request
        parsed = _parsed_body.get(None)
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        response_body = getattr(response, "body", None)
        event_id = uri_params.get("eventId") or body.get("eventId")
        if event_id is None and isinstance(response_body, dict):
            event_id = response_body.get("eventId")
        # Only a well-formed id is logged: the field is user input, and could
        # hold anything (an email address, a megabyte of text).
        if isinstance(event_id, str) and event_id.isascii() and event_id.isdigit():
            event_id = int(event_id)
        if isinstance(event_id, bool) or not isinstance(event_id, int):
            event_id = None
        context: dict[str, Any] = {"eventId": event_id}
        email = body.get("userEmail")
        if email is None and request is not None and request.query_params:
            email = request.query_params.get("userEmail")
        if isinstance(email, str):
            context["user"] = email_fingerprint(email)
        if request is not None:
            context["requestId"] = (request.context or {}).get("requestId")
        return context
