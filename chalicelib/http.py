"""The HTTP edge: the request body, domain errors to status codes, one log line per request.

Chalice's own error classes keep the ``{"Code", "Message"}`` body shape for
4xx; 413, 415, 503 and 500 are built as ``Response`` objects with the same
shape because Chalice has no class for them or they carry a header
(``Retry-After``).
"""

from __future__ import annotations

import binascii
import functools
import logging
import sys
import time
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any

from chalice.app import (
    Chalice,
    Request,
    Response,
)

from chalicelib.answers import error_answer, internal_error_response
from chalicelib.contract import body as raw_body
from chalicelib.contract import schemas
from chalicelib.contract.check import check
from chalicelib.contract.operations import BY_ID, Operation
from chalicelib.errors import (
    BookingError,
    InvalidRequest,
    Unauthenticated,
    UnsupportedMediaType,
)
from chalicelib.identity import tokens
from chalicelib.identity.access import Access, Caller, require, set_caller
from chalicelib.observability import (
    bind_request,
    count,
    email_fingerprint,
    flush_metrics,
    log_event,
    log_failure_safely,
    unbind_request,
)
from chalicelib.retry import reset_retry_count, retry_count
from chalicelib.validation import normalise_email

#: The current request's body, parsed at most once: the JSON object, or the
#: error that says why it is not one. Unset until a route asks for it.
_parsed_body: ContextVar[dict[str, Any] | BookingError | None] = ContextVar(
    "parsed_body", default=None
)
_current_request: ContextVar[Request | None] = ContextVar("current_request", default=None)


def authenticate(access: Access, request: Request | None) -> Caller | None:
    """The verified caller of a protected operation; public ones ignore any token."""
    if access == Access.PUBLIC or request is None:
        return None
    token = tokens.bearer_token(request.headers.get("authorization"))
    claims = tokens.verify(token, tokens.IssuerConfig.from_environment())
    email = _valid_or_none(schemas.EMAIL, claims.email)
    if email is None:
        raise Unauthenticated("the token's email is not an address this service accepts")
    return Caller(claims.subject, normalise_email(email), claims.is_organiser)


def request_bytes(request: Request) -> bytes:
    """The body as sent. API Gateway hands Lambda text (or base64); chalice local, bytes."""
    try:
        raw = request.raw_body
    except UnicodeEncodeError:
        raise UnsupportedMediaType("send JSON encoded as UTF-8") from None
    except (binascii.Error, ValueError):
        raise InvalidRequest("body", "is not valid base64") from None
    return raw if isinstance(raw, bytes) else raw.encode("utf-8", "surrogatepass")


def json_body() -> dict[str, Any]:
    """The request's body as a JSON object, or the error naming what is wrong with it."""
    parsed = _parsed_body.get()
    if parsed is None:
        try:
            request = _current_request.get()
            assert request is not None, "json_body() outside a request"
            raw_body.check_content_type(request.headers.get("content-type"))
            parsed = raw_body.parse_json_object(request_bytes(request))
        except BookingError as error:
            parsed = error
        _parsed_body.set(parsed)
    if isinstance(parsed, BookingError):
        raise parsed
    return parsed


#: The only bytes JSON allows around a value (RFC 8259): not form feeds or vertical tabs.
JSON_WHITESPACE = b" \t\r\n"


def _refuse_any_body(request: Request) -> None:
    """A write that takes no body accepts none (or JSON ``null``), or an empty object:
    like an unknown field anywhere else, anything sent is refused rather than ignored
    (cancelling an event cannot be undone, so a request that meant something else
    must not pass for it). Reads ignore bodies, as documented."""
    if request_bytes(request).strip(JSON_WHITESPACE) in (b"", b"null"):
        return
    fields = json_body()
    if fields:
        raise InvalidRequest(next(iter(fields)) or "body", "this operation takes no body")


class RequestObserver:
    """Decorates a route: guards the body's size, maps errors, times it, logs one line.

    Usage: ``observe = RequestObserver(app)`` then ``@observe`` under ``@app.route``;
    the log line's ``action`` is the view function's name.
    """

    def __init__(self, app: Chalice) -> None:
        self.app = app

    def __call__(self, view: Callable[..., Response]) -> Callable[..., Response]:
        action = view.__name__
        operation = BY_ID[action]  # every route is an operation of the contract

        @functools.wraps(view)
        def handle(**uri_params: Any) -> Response:
            started = time.perf_counter()
            response, outcome = internal_error_response(), "InternalServerError"
            failure: Any = None
            try:
                self._bind()
                response, outcome = self._respond(operation, view, uri_params)
                return response
            except Exception:
                failure = sys.exc_info()
                return response
            finally:
                self._log(action, response, outcome, failure, started, uri_params)
                unbind_request()

        return handle

    def _bind(self) -> None:
        request = self.app.current_request
        request_id = (request.context or {}).get("requestId") if request is not None else None
        bind_request(request_id, getattr(self.app, "lambda_context", None))

    def _respond(
        self, operation: Operation, view: Callable[..., Response], uri_params: dict[str, Any]
    ) -> tuple[Response, str]:
        """The answer, and the outcome its log line reports (the domain error's name)."""
        request = self.app.current_request
        _current_request.set(request)
        _parsed_body.set(None)
        set_caller(None)
        reset_retry_count()
        try:
            if request is not None:
                raw_body.check_size(request_bytes(request))
            caller = authenticate(operation.access, request)
            require(operation.access, caller)
            set_caller(caller)
            if operation.body is None and operation.method != "get" and request is not None:
                _refuse_any_body(request)
            response = view(**uri_params)
        except BookingError as error:
            return error_answer(error), type(error).__name__
        body = response.body if isinstance(response.body, dict) else {}
        return response, str(body.get("status", "OK"))

    def _log(
        self,
        action: str,
        response: Response,
        outcome: str,
        failure: Any,
        started: float,
        uri_params: dict[str, Any],
    ) -> None:
        """One line per request. Logging never changes the answer: a failure here is
        reported as safely as possible and swallowed."""
        try:
            status = response.status_code
            body = response.body if isinstance(response.body, dict) else {}
            level = {503: logging.WARNING, 500: logging.ERROR}.get(status, logging.INFO)
            log_event(
                level,
                "request outcome",
                exc_info=failure,
                action=action,
                outcome=outcome,
                statusCode=status,
                durationMs=round((time.perf_counter() - started) * 1000, 2),
                **self._request_context(uri_params, body),
            )
            _count_outcome(status, body)
            flush_metrics()
        except Exception as error:
            log_failure_safely(action, error)

    def _request_context(
        self, uri_params: dict[str, Any], answer: dict[str, Any]
    ) -> dict[str, Any]:
        """eventId and a pseudonym of the email: only values that passed their checks."""
        parsed = _parsed_body.get()
        body: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
        event_id = _valid_or_none(schemas.EVENT_ID, uri_params.get("eventId", body.get("eventId")))
        if event_id is None:
            event_id = _valid_or_none(schemas.EVENT_ID, answer.get("eventId"))
        context: dict[str, Any] = {"eventId": int(event_id) if event_id is not None else None}
        request = _current_request.get()
        email = body.get("userEmail")
        if email is None and request is not None and request.query_params:
            email = request.query_params.get("userEmail")
        if isinstance(email, str) and _valid_or_none(schemas.EMAIL, email) is not None:
            context["user"] = email_fingerprint(email)
        return context


def _valid_or_none(schema: schemas.Schema, value: Any) -> Any:
    """``value`` if it passes ``schema``: user input is logged only once it is well-formed."""
    if value is None:
        return None
    try:
        check(schema, value, "logged")
    except InvalidRequest:
        return None
    return value


#: The metric each answer counts; a replayed booking is not a new one.
_OUTCOME_METRICS = {201: "Bookings", 202: "WaitlistJoins", 409: "Conflicts", 503: "ServiceBusy"}


def _count_outcome(status: int, body: dict[str, Any]) -> None:
    """The request's metrics: what it did, and how many DynamoDB retries it took."""
    creates_a_place = status not in (201, 202) or "userEmail" in body  # 201 also creates events
    if status in _OUTCOME_METRICS and creates_a_place and not body.get("idempotentReplay"):
        count(_OUTCOME_METRICS[status])
    if body.get("status") == "CANCELLED":
        count("Cancellations")
        if body.get("ticketPassedToWaitingList"):
            count("Promotions")
    count("DynamoDBRetries", retry_count())
