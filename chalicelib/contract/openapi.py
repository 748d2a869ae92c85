"""The OpenAPI 3.1 description, generated from the contract's declarations.

Served by ``GET /openapi.json``; ``make openapi`` writes the same document to
``docs/openapi.json``, and a test fails if that copy is stale.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from chalicelib.contract import schemas
from chalicelib.contract.operations import OPERATIONS, Answer, Operation, Parameter
from chalicelib.identity.access import Access

TITLE = "Event ticket booking service"
VERSION = "2.0.0"
BEARER = "bearerAuth"


@cache
def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for operation in OPERATIONS:
        paths.setdefault(operation.path, {})[operation.method] = _operation(operation)
    return {
        "openapi": "3.1.0",
        "info": {"title": TITLE, "version": VERSION, "description": _description()},
        "paths": paths,
        "components": {
            "schemas": {
                **schemas.COMPONENTS,
                "OpenApiDocument": {"type": "object", "required": ["openapi", "paths"]},
            },
            "securitySchemes": {
                BEARER: {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "An ID token: Amazon Cognito's in AWS, `make token` under"
                    " make dev. Organisers are in the `organisers` group.",
                }
            },
        },
    }


def _description() -> str:
    return (
        "Book tickets for events; a sold-out event has a first-in-first-out waiting list."
        ' Errors use the {"Code", "Message"} shape and the message names the problem.'
        " Every constraint is a schema keyword, and these hold for every request:"
        f" a body is at most {schemas.MAX_BODY_BYTES:,} bytes (413), is JSON encoded as"
        " UTF-8 with Content-Type application/json (415 otherwise),"
        f" nests at most {schemas.MAX_JSON_DEPTH} levels, repeats no key, and holds no"
        " control character or lone surrogate in any string (400); integers are written"
        " without a fraction or exponent (5, not 5.0)."
    )


def _operation(operation: Operation) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "operationId": operation.operation_id,
        "summary": operation.summary,
        "security": [] if operation.access == Access.PUBLIC else [{BEARER: []}],
    }
    if operation.parameters:
        spec["parameters"] = [_parameter(p) for p in operation.parameters]
    if operation.body:
        spec["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(operation.body)}},
        }
    spec["responses"] = {
        str(status): _answer(answer) for status, answer in sorted(operation.all_answers.items())
    }
    return spec


def _parameter(parameter: Parameter) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "name": parameter.name,
        "in": parameter.location,
        "required": parameter.required,
        "schema": parameter.schema,
    }
    if parameter.description:
        spec["description"] = parameter.description
    return spec


def _answer(answer: Answer) -> dict[str, Any]:
    content: dict[str, Any] = {"application/json": {"schema": _ref(answer.schema)}}
    if answer.csv_rows:
        content["text/csv"] = {"schema": _csv(answer.csv_rows)}
    spec: dict[str, Any] = {"description": answer.description, "content": content}
    headers = {name: (schema, True) for name, schema in answer.headers.items()}
    headers |= {name: (schema, False) for name, schema in answer.optional_headers.items()}
    if headers:
        spec["headers"] = {
            name: {"required": required, "schema": schema}
            for name, (schema, required) in headers.items()
        }
    return spec


def _csv(row_component: str) -> dict[str, Any]:
    """A CSV answer: the JSON answer's entries, one line each, under a header row."""
    columns = ",".join(schemas.COMPONENTS[row_component]["properties"])
    return {
        "type": "string",
        "description": f"CSV (RFC 4180, CRLF line ends, UTF-8): the header row {columns},"
        f" then one row per {row_component} of the JSON answer, in the same order. A text"
        " cell that starts with = + - @ (or a tab or carriage return) gets a leading"
        " apostrophe, so a spreadsheet never runs it as a formula. The next page's cursor"
        f" is in the {schemas.NEXT_CURSOR_HEADER} header. Each answer is one page (no"
        " streaming): follow the cursor for the rest",
    }


def _ref(component: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{component}"}
