"""The API contract, declared once: validation and the OpenAPI description both read it.

schemas     every value's constraints, as JSON Schema keywords
check       enforces exactly those keywords on a request's values
body        raw bytes to a JSON object: size, encoding, nesting, duplicates, strings
operations  each route's parameters, body and documented answers
openapi     the OpenAPI 3.1 document built from the above
"""
