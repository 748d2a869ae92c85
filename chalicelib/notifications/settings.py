"""Names that the code, ``.chalice/config.json`` and ``deploy/resources.json`` share.

The stream handler and the webhook worker read these environment variables lazily
(``chalice.test.Client`` swaps the environment per invocation).
"""

from __future__ import annotations

#: ``@app.on_dynamodb_record`` needs a literal ARN, but the table is created in the same
#: template (aws/chalice#1882): ``deploy/resources.json`` overrides the event source's
#: ``Stream`` with ``Fn::GetAtt [TicketsTable, StreamArn]``. This ARN is never used.
STREAM_PLACEHOLDER_ARN = (
    "arn:aws:dynamodb:us-east-1:000000000000:table/ticket-booking/stream/replaced-by-template"
)

#: The sender of every email (per stage, in ``.chalice/config.json``).
MAIL_FROM_ENV = "MAIL_FROM"
#: Locally: write each email as an ``.eml`` file in this folder instead of sending it.
MAIL_OUTBOX_ENV = "MAIL_OUTBOX_DIR"

#: The SQS queue of webhook deliveries and retries (AWS), and its dead-letter queue.
WEBHOOK_QUEUE_NAME = "ticket-booking-webhooks"
WEBHOOK_QUEUE_URL_ENV = "WEBHOOK_QUEUE_URL"
WEBHOOK_DEAD_LETTER_URL_ENV = "WEBHOOK_DEAD_LETTER_QUEUE_URL"
#: Set (to ``1``) only in the local stage and in tests: webhooks may then go to loopback
#: addresses. Deployed stages refuse private, loopback and link-local addresses.
WEBHOOKS_ALLOW_LOOPBACK_ENV = "WEBHOOKS_ALLOW_LOOPBACK"
