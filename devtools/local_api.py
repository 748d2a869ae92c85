"""Chalice's own ``chalice local``, adjusted where a dev server must behave like the real edge.

    python -m devtools.local_api local --stage local --host 127.0.0.1 --port 8000 --no-autoreload

Three adjustments, made to chalice's classes before its CLI builds the server;
the server, its request handling and its thread per request stay chalice's:

* **Listen backlog.** ``ThreadedHTTPServer`` keeps ``socketserver``'s
  ``request_queue_size`` of 5: when more connections arrive at once than that
  queue holds, the kernel resets or drops the rest before a request thread ever
  sees them (on a fresh ``make dev``, 23 of 40 simultaneous clients were reset).
* **Body size.** chalice reads ``Content-Length`` bytes into memory before the
  app sees anything, so ``Content-Length: 99999999999`` ended in a
  ``MemoryError`` and no answer at all. API Gateway refuses payloads over 10 MB
  itself; so does this, with a 413 in the API's own error shape, before reading.
  (The app's 16 KiB limit still answers 413 for anything between.)
* **Access log.** chalice logs each request line, query string included; a
  client that puts an email in a URL would see it printed in clear. The line is
  logged without its query string, and every line the server logs (its own
  errors quote the raw request line) with any run of text that holds an ``@``
  (or ``%40``, ``%2540``...) replaced by ``{redacted}``: the deployed access log
  records the route's template (``resourcePath``), never the path as sent.
* **Chunked bodies.** chalice local never reads a ``Transfer-Encoding: chunked``
  body: the request would run as if it had none, and the chunks would be read
  as the next request. Such a request is refused with 411.
* **Unknown routes.** chalice imitates API Gateway's 403 for a path no route
  matches, which, when the request carries an ``Authorization`` header, quotes
  that header back: the caller's bearer token in a response body, for any proxy
  or log on the way to read. The answer is the API's own ``{"Code", "Message"}``
  403 instead, as the deployed API's gateway responses give it
  (``deploy/resources.json``), with nothing of the request in it.

``devtools.dev_server`` runs this with ``--no-autoreload`` and does the
reloading itself.
"""

from __future__ import annotations

import json
import re
import sys
from typing import Any

from chalice import local
from chalice.cli import main as chalice_main

#: Connections the kernel queues until a thread accepts them (capped by
#: ``net.core.somaxconn``, 4096 on current Linux).
LISTEN_BACKLOG = 1024
#: API Gateway's payload limit for a REST API.
GATEWAY_MAX_BODY_BYTES = 10 * 1024 * 1024
_QUERY = re.compile(r"\?\S*")
#: Any run of text that may hold an email address: an ``@``, percent-encoded once or more.
_ADDRESS = re.compile(r"[^/\s'\"]*(?:@|%(?:25)*40)[^/\s'\"]*", re.IGNORECASE)


def _refuse(handler: Any, status: int, code: str, message: str) -> None:
    body = json.dumps({"Code": code, "Message": message}).encode()
    handler.close_connection = True  # the unread body must not be taken for a next request
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(body)))
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(body)


def _handle_within_the_gateways_limit(original: Any) -> Any:
    def handle(self: Any) -> None:
        if self.headers.get("transfer-encoding") is not None:
            # chalice local never reads a chunked body: the request would run as if it
            # had none, and the chunks would be read as the next request.
            _refuse(self, 411, "LengthRequired", "send the body with a Content-Length")
            return
        declared = self.headers.get("content-length", "0").strip()
        if not declared.isascii() or not declared.isdigit():
            _refuse(self, 400, "BadRequestError", "Content-Length must be a whole number")
            return
        if int(declared) > GATEWAY_MAX_BODY_BYTES:
            limit = f"{GATEWAY_MAX_BODY_BYTES:,}"
            _refuse(self, 413, "RequestEntityTooLargeError", f"the gateway accepts {limit} bytes")
            return
        original(self)

    return handle


#: What a path no route matches gets, locally as in the deployed API.
NO_SUCH_ROUTE = b'{"Code": "ForbiddenError", "Message": "no such route, or not allowed"}'


def _no_route_without_echo(original: Any) -> Any:
    def handle_request(self: Any, method: str, path: str, headers: Any, body: Any) -> Any:
        try:
            return original(self, method, path, headers, body)
        except local.ForbiddenError as error:
            raise local.ForbiddenError(error.headers, NO_SUCH_ROUTE) from None

    return handle_request


def _log_request_without_query(self: Any, code: Any = "-", size: Any = "-") -> None:
    self.log_message('"%s" %s %s', _QUERY.sub("", self.requestline), str(code), str(size))


def _log_message_without_addresses(original: Any) -> Any:
    """Every line the server logs (requests, and its own errors, which quote the raw
    request line) with anything that may be an address replaced by ``{redacted}``."""

    def log_message(self: Any, format: str, *args: Any) -> None:
        original(self, "%s", _ADDRESS.sub("{redacted}", format % args))

    return log_message


def adjust_chalice_local() -> None:
    local.ThreadedHTTPServer.request_queue_size = LISTEN_BACKLOG
    handler = local.ChaliceRequestHandler
    guarded = _handle_within_the_gateways_limit(handler._generic_handle)
    # chalice binds every do_<METHOD> to _generic_handle when the class is made.
    for method in ("GET", "PUT", "POST", "HEAD", "DELETE", "PATCH", "OPTIONS"):
        setattr(handler, f"do_{method}", guarded)
    handler.log_request = _log_request_without_query  # type: ignore[method-assign]
    handler.log_message = _log_message_without_addresses(handler.log_message)  # type: ignore[method-assign]
    gateway = local.LocalGateway
    gateway.handle_request = _no_route_without_echo(gateway.handle_request)  # type: ignore[method-assign]


def main() -> int:
    """Run chalice's CLI on the adjusted server; the arguments are chalice's."""
    adjust_chalice_local()
    return chalice_main()


if __name__ == "__main__":
    sys.exit(main())
