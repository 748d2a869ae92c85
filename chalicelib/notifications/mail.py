"""Emails to the person a domain event concerns: what each says, and how it is sent.

``compose`` writes the message (plain text and HTML, the event's name escaped in
HTML and stripped of line breaks in the subject); a ``Mailer`` sends it:

* ``SesMailer``: Amazon SES v2 ``SendEmail`` with simple content, from the
  stage's sender (``MAIL_FROM``, a verified SES identity);
* ``OutboxMailer``: locally, one ``.eml`` file per email in ``MAIL_OUTBOX_DIR``
  (``outbox/`` at the repository root under ``make dev``: git-ignored, and
  outside what the dev server's reloader watches). A file's name holds the
  notice's id, never the address.
"""

from __future__ import annotations

import html
import os
import re
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from botocore.exceptions import ClientError

from chalicelib.notifications import domain_events as kinds
from chalicelib.notifications.domain_events import DomainEvent
from chalicelib.notifications.settings import MAIL_FROM_ENV, MAIL_OUTBOX_ENV

if TYPE_CHECKING:
    from mypy_boto3_sesv2.client import SESV2Client

#: The person-level domain events that send an email; the others (a waiting place
#: left, the event-level ones) reach organisers' webhooks only.
EMAILED = frozenset(
    {
        kinds.PLACE_BOOKED,
        kinds.PLACE_WAITLISTED,
        kinds.PLACE_PROMOTED,
        kinds.PLACE_CANCELLED,
        kinds.PLACE_LEFT,
        kinds.PLACE_RELEASED,
    }
)

_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029\x85\x0b\x0c]+")
#: The start of an RFC 2047 encoded word: a mail library decodes ``=?utf-8?q?...?=`` in
#: a header into whatever it encodes, line breaks included, so a name must not carry one.
_ENCODED_WORD = "=?"


class Undeliverable(Exception):
    """This email can never be sent as it is (a malformed address, say): retrying would
    only hold up the stream; the notice is given up, counted and logged."""


def header_safe(text: str) -> str:
    """``text`` fit for a header: no line breaks, and no encoded word a mail library would
    decode into some (``=?`` becomes ``= ?``)."""
    return _LINE_BREAKS.sub(" ", text).replace(_ENCODED_WORD, "= ?").strip()


@dataclass(frozen=True)
class Email:
    to: str
    subject: str
    text: str
    html: str
    #: The notice it answers (the domain event id): names an outbox file, tags an SES send.
    notice_id: str


def compose(event: DomainEvent, event_name: str, position: int | None = None) -> Email | None:
    """The email ``event`` sends its person, or None when it sends none.

    ``position`` is the person's place in the waiting list when the notice is
    made (``place.waitlisted`` only); None when they no longer wait by then, and
    a waiting-list confirmation is then not worth sending: whatever came next
    (a promotion, a departure) sends its own email.
    """
    if event.email is None or event.type not in EMAILED:
        return None
    name = header_safe(event_name)
    lines: list[str]
    if event.type == kinds.PLACE_BOOKED:
        subject = f"Your ticket for {name}"
        lines = [f"Your ticket for {name} is booked.", "Keep this email as your confirmation."]
    elif event.type == kinds.PLACE_WAITLISTED:
        if position is None:
            return None
        subject = f"You are on the waiting list for {name}"
        lines = [
            f"{name} is sold out, so you joined its waiting list.",
            f"You are number {position} in line. If a ticket comes free, it is yours"
            " automatically and we will email you.",
        ]
    elif event.type == kinds.PLACE_PROMOTED:
        subject = f"You have a ticket for {name}"
        lines = [
            f"Good news: a ticket for {name} came free and it is now yours.",
            "You do not need to do anything. If you can no longer go, please cancel so"
            " that the next person waiting gets it.",
        ]
    elif event.type == kinds.PLACE_CANCELLED:
        subject = f"Your booking for {name} is cancelled"
        lines = [f"Your ticket for {name} is cancelled. It has gone to the next person waiting."]
    elif event.type == kinds.PLACE_LEFT:
        subject = f"You left the waiting list for {name}"
        lines = [f"You are no longer on the waiting list for {name}."]
    else:  # PLACE_RELEASED
        subject = f"{name} is cancelled"
        lines = [
            f"The organiser has cancelled {name}.",
            "Your place is released; there is nothing you need to do.",
        ]
    text = "\n\n".join(lines) + "\n"
    body = "".join(f"<p>{html.escape(line)}</p>" for line in lines)
    page = (
        '<!doctype html><html><head><meta charset="utf-8">'
        f"<title>{html.escape(subject)}</title></head><body>{body}</body></html>"
    )
    return Email(event.email, subject, text, page, event.id)


def to_mime(email: Email, sender: str) -> EmailMessage:
    """The email as a MIME message: plain text with an HTML alternative."""
    message = EmailMessage()
    try:
        message["From"] = sender
        message["To"] = email.to
        message["Subject"] = email.subject
    except ValueError as error:  # an address the mail library refuses
        raise Undeliverable(type(error).__name__) from None
    message["Date"] = formatdate(usegmt=True)
    domain = sender.rpartition("@")[2] or "localhost"
    message["Message-ID"] = make_msgid(idstring=email.notice_id, domain=domain)
    message.set_content(email.text)
    message.add_alternative(email.html, subtype="html")
    return message


class Mailer(Protocol):
    def send(self, email: Email) -> None: ...


class SesMailer:
    """SES v2 ``SendEmail``; the client is created on the first email."""

    def __init__(self, sender: str, client: SESV2Client | None = None) -> None:
        self.sender = sender
        self._client = client
        self._lock = threading.Lock()

    @property
    def client(self) -> SESV2Client:
        """Created once (boto3's client creation is not thread-safe; its calls are)."""
        with self._lock:
            if self._client is None:
                import boto3
                from botocore.config import Config

                config = Config(connect_timeout=2, read_timeout=5, retries={"max_attempts": 3})
                self._client = boto3.client("sesv2", config=config)
            return self._client

    def send(self, email: Email) -> None:
        content: Any = {
            "Simple": {
                "Subject": {"Data": email.subject, "Charset": "UTF-8"},
                "Body": {
                    "Text": {"Data": email.text, "Charset": "UTF-8"},
                    "Html": {"Data": email.html, "Charset": "UTF-8"},
                },
            }
        }
        try:
            self.client.send_email(
                FromEmailAddress=self.sender,
                Destination={"ToAddresses": [email.to]},
                Content=content,
                EmailTags=[{"Name": "notice", "Value": email.notice_id}],
            )
        except ClientError as error:
            # SES refuses the request itself (an address it cannot parse): no retry helps.
            # Anything else (throttling, an unverified sender) fails the record, to be
            # retried and, at worst, to land in the on-failure queue, which alarms.
            if error.response.get("Error", {}).get("Code") == "BadRequestException":
                raise Undeliverable("BadRequestException") from None
            raise


class OutboxMailer:
    """Writes each email to ``folder`` as ``<notice id>.eml`` (atomically: a reader never
    sees half a file)."""

    def __init__(self, sender: str, folder: Path) -> None:
        self.sender = sender
        self.folder = folder

    def send(self, email: Email) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        final = self.folder / f"{email.notice_id}.eml"
        partial = self.folder / f".{email.notice_id}.eml.tmp"
        partial.write_bytes(to_mime(email, self.sender).as_bytes())
        partial.replace(final)


_mailers: dict[tuple[str, str], Mailer] = {}


def mailer() -> Mailer:
    """The stage's mailer: the outbox when ``MAIL_OUTBOX_DIR`` is set, else SES (lazily)."""
    sender = os.environ.get(MAIL_FROM_ENV)
    if not sender:
        raise RuntimeError(f"environment variable {MAIL_FROM_ENV} is not set")
    outbox = os.environ.get(MAIL_OUTBOX_ENV, "")
    key = (sender, outbox)
    found = _mailers.get(key)
    if found is None:
        found = OutboxMailer(sender, Path(outbox)) if outbox else SesMailer(sender)
        _mailers[key] = found
    return found


def forget_mailers() -> None:
    """Drop cached mailers (tests switch between the outbox and moto's SES)."""
    _mailers.clear()
