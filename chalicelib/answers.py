"""Domain errors as HTTP answers: the status, Chalice's ``{"Code", "Message"}`` body, headers.

Chalice's own error classes give the status and ``Code`` where Chalice has one;
413 and 415 have none, and 401, 429 and 503 carry a header (``WWW-Authenticate``,
``Retry-After``), so every answer is built here as a ``Response``.
"""

from __future__ import annotations

from chalice.app import (
    BadRequestError,
    ChaliceViewError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    Response,
    TooManyRequestsError,
    UnauthorizedError,
)

from chalicelib.errors import (
    AlreadyHoldsPlace,
    BodyTooLarge,
    BookingError,
    CapacityBelowBooked,
    CapBelowWaiting,
    ChangeInterrupted,
    DailyLimitReached,
    EventCancelled,
    EventNotFound,
    Forbidden,
    InvalidRequest,
    InvalidWindow,
    NoPlaceHeld,
    NotOnSale,
    SalesClosed,
    ServiceBusy,
    Unauthenticated,
    UnsupportedMediaType,
    WaitingListFull,
    WebhookLimitReached,
    WebhookNotFound,
    WebhookUrlRefused,
)

_CHALICE_ERRORS: dict[type[BookingError], type[ChaliceViewError]] = {
    InvalidRequest: BadRequestError,
    EventNotFound: NotFoundError,
    NoPlaceHeld: NotFoundError,
    AlreadyHoldsPlace: ConflictError,
    WaitingListFull: ConflictError,
    EventCancelled: ConflictError,
    NotOnSale: ConflictError,
    SalesClosed: ConflictError,
    CapacityBelowBooked: ConflictError,
    ChangeInterrupted: ConflictError,
    CapBelowWaiting: ConflictError,
    Forbidden: ForbiddenError,
    Unauthenticated: UnauthorizedError,
    DailyLimitReached: TooManyRequestsError,
    WebhookNotFound: NotFoundError,
    WebhookLimitReached: ConflictError,
}
#: Errors Chalice has no class for: (status, ``Code``).
_OTHER_ERRORS: dict[type[BookingError], tuple[int, str]] = {
    BodyTooLarge: (413, "RequestEntityTooLargeError"),
    UnsupportedMediaType: (415, "UnsupportedMediaType"),
    InvalidWindow: (422, "UnprocessableEntity"),
    WebhookUrlRefused: (422, "UnprocessableEntity"),
}


def error_response(status: int, code: str, message: str, **headers: str) -> Response:
    return Response(
        body={"Code": code, "Message": message}, status_code=status, headers=dict(headers)
    )


def service_busy_response(error: ServiceBusy) -> Response:
    return error_response(
        503, "ServiceUnavailable", str(error), **{"Retry-After": str(error.retry_after_seconds)}
    )


def internal_error_response() -> Response:
    return error_response(500, "InternalServerError", "An internal server error occurred")


def error_answer(error: BookingError) -> Response:
    """The answer to a domain error (``ServiceBusy`` included)."""
    if isinstance(error, ServiceBusy):
        return service_busy_response(error)
    if type(error) in _OTHER_ERRORS:
        status, code = _OTHER_ERRORS[type(error)]
    else:
        chalice_error = _CHALICE_ERRORS[type(error)]
        status, code = chalice_error.STATUS_CODE, chalice_error.__name__
    return error_response(status, code, str(error), **_error_headers(error))


def _error_headers(error: BookingError) -> dict[str, str]:
    if isinstance(error, Unauthenticated):
        challenge = 'Bearer realm="ticket-booking"'
        if error.invalid_token:
            challenge += f', error="invalid_token", error_description="{error}"'
        return {"WWW-Authenticate": challenge}
    if isinstance(error, DailyLimitReached):
        return {"Retry-After": str(error.retry_after_seconds)}
    return {}
