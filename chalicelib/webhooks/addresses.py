"""The SSRF guard: webhooks reach only public addresses, through a connection pinned to one.

An endpoint's URL is the organiser's input, and the delivery worker runs inside
our network: without a guard a URL could make it POST to the instance metadata
service (``169.254.169.254``), to a database on a private subnet, or to itself.
Two checks, because the first alone is not enough:

* **At registration** (``check_url``): ``https`` only; a host (a DNS name or an IP
  literal); no credentials (``user@``); at most ``MAX_URL_LENGTH`` characters; an
  IP literal must be a public address; ``localhost`` and its subdomains are refused.
* **At every delivery** (``post``): the host is resolved, and if *any* address it
  resolves to is not public the delivery is refused (a name can be pointed at
  ``10.0.0.1`` after it was registered). The connection then goes to the address
  that was checked, not to a second lookup, so DNS rebinding cannot swap it; TLS
  still verifies the certificate against the host name. Redirects are not
  followed (a 3xx is a failure), connecting has ``CONNECT_TIMEOUT_SECONDS``, each
  read of the answer ``TIMEOUT_SECONDS`` (less the time resolving took), and the
  whole attempt ``ATTEMPT_DEADLINE_SECONDS``: an endpoint that trickles its answer a
  byte at a time is cut off there, so it holds a worker for seconds, not for the
  function's timeout. At most ``MAX_RESPONSE_BYTES`` of the answer are read (and
  ignored).

"Public" means what ``ipaddress`` calls global and none of private, loopback,
link-local, multicast, reserved, unspecified or shared (``100.64.0.0/10``); an
IPv6 address that embeds an IPv4 one (IPv4-mapped, NAT64, 6to4, Teredo) is judged
by the IPv4 address too.

Loopback (and ``http`` to loopback) is allowed only when ``WEBHOOKS_ALLOW_LOOPBACK``
is ``1``: the local stage and the tests, whose receivers listen on ``127.0.0.1``.
"""

from __future__ import annotations

import contextlib
import http.client
import ipaddress
import os
import socket
import ssl
import threading
import time
from collections.abc import Mapping
from urllib.parse import urlsplit

from chalicelib.notifications.settings import WEBHOOKS_ALLOW_LOOPBACK_ENV

MAX_URL_LENGTH = 2048
#: Per read of the answer (after resolving): a slow endpoint holds up only its own attempt.
TIMEOUT_SECONDS = 5.0
CONNECT_TIMEOUT_SECONDS = 3.0
#: The whole attempt, from resolving to the end of the answer, however the bytes trickle.
ATTEMPT_DEADLINE_SECONDS = 10.0
#: How much of an endpoint's answer is read (then ignored): only the status counts.
MAX_RESPONSE_BYTES = 64 * 1024

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_SHARED = ipaddress.IPv4Network("100.64.0.0/10")


class AddressRefused(ValueError):
    """A URL or an address that webhooks may not reach; the message says why."""


def loopback_allowed() -> bool:
    """Whether this stage lets webhooks reach loopback (local stage and tests only)."""
    return os.environ.get(WEBHOOKS_ALLOW_LOOPBACK_ENV) == "1"


#: Special-purpose ranges that this Python's ``ipaddress`` may still call global (its
#: tables differ between releases): IETF protocol assignments, the deprecated 6to4
#: relay anycast, and IPv6 site-local addresses.
_NOT_PUBLIC = tuple(
    ipaddress.ip_network(network) for network in ("192.0.0.0/24", "192.88.99.0/24", "fec0::/10")
)


def is_forbidden(address: IPAddress, allow_loopback: bool = False) -> bool:
    """Whether a delivery must not go to ``address``.

    An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``) is the IPv4 address itself, so
    only that is judged; every other address is judged with whatever IPv4 address it
    carries.
    """
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return is_forbidden(address.ipv4_mapped, allow_loopback)
    if any(address in network for network in _NOT_PUBLIC):
        return True
    for candidate in _embedded(address):
        if allow_loopback and candidate.is_loopback:
            continue
        if (
            not candidate.is_global
            or candidate.is_private
            or candidate.is_loopback
            or candidate.is_link_local
            or candidate.is_multicast
            or candidate.is_reserved
            or candidate.is_unspecified
            or (isinstance(candidate, ipaddress.IPv4Address) and candidate in _SHARED)
        ):
            return True
    return False


def _embedded(address: IPAddress) -> list[IPAddress]:
    """The address and any IPv4 address it carries (IPv4-mapped, NAT64, 6to4, Teredo)."""
    found: list[IPAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            found.append(address.ipv4_mapped)
        if address in _NAT64:
            found.append(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
        if address.sixtofour is not None:
            found.append(address.sixtofour)
        if address.teredo is not None:
            found.extend(address.teredo)
    return found


def _ip_literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None


def _is_loopback_name(host: str) -> bool:
    return host == "localhost" or host.endswith(".localhost")


def check_url(url: str, allow_loopback: bool | None = None) -> None:
    """Raise ``AddressRefused`` unless ``url`` may be registered as an endpoint.

    Only the URL is judged here (no DNS lookup: a name's addresses can change);
    ``post`` checks the resolved addresses at every delivery.
    """
    allow = loopback_allowed() if allow_loopback is None else allow_loopback
    if len(url) > MAX_URL_LENGTH:
        raise AddressRefused(f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError:  # a bracketed host that is no IP address, say
        raise AddressRefused("has a host that is not a valid address") from None
    if parts.scheme not in ("https", "http"):
        raise AddressRefused("must be an https URL")
    if "@" in parts.netloc:
        raise AddressRefused("must not carry credentials (user@host)")
    host = (parts.hostname or "").lower()
    if not host:
        raise AddressRefused("must name a host")
    try:
        port = parts.port
    except ValueError:
        raise AddressRefused("has a port outside 1-65535") from None
    if port == 0:
        raise AddressRefused("has a port outside 1-65535")
    literal = _ip_literal(host)
    if parts.netloc.startswith("[") and not isinstance(literal, ipaddress.IPv6Address):
        raise AddressRefused("has a host that is not a valid address")
    loopback = _is_loopback_name(host) or (literal is not None and literal.is_loopback)
    if loopback and not allow:
        raise AddressRefused("must not point at this machine (loopback)")
    if literal is not None and is_forbidden(literal, allow):
        raise AddressRefused("must not point at a private, link-local or reserved address")
    if literal is None and not loopback:
        _check_name(host)
    if parts.scheme == "http" and not (allow and loopback):
        raise AddressRefused("must be an https URL (http only to loopback, in the local stage)")


def _check_name(host: str) -> None:
    """A DNS name, not an IPv4 address in disguise (``127.1``, ``2130706433``, ``0x7f.1``):
    resolvers read those as addresses, so the name check would never see them."""
    last = host.rstrip(".").rsplit(".", 1)[-1]
    if last.isdigit() or (last.startswith("0x") and all(c in "0123456789abcdef" for c in last[2:])):
        raise AddressRefused("has a host that is neither a DNS name nor a dotted IPv4 address")


def resolve(host: str, port: int, allow_loopback: bool) -> str:
    """The address to connect to: the first one ``host`` resolves to, provided that every
    address it resolves to is public (refused otherwise)."""
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise AddressRefused(f"host does not resolve ({type(error).__name__})") from None
    addresses = [str(info[4][0]).split("%", 1)[0] for info in found]
    if not addresses:
        raise AddressRefused("host resolves to no address")
    for text in addresses:
        if is_forbidden(ipaddress.ip_address(text), allow_loopback):
            raise AddressRefused("host resolves to a private, loopback or reserved address")
    return addresses[0]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """HTTP to an address checked beforehand, whatever the name resolves to now."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.pinned_address = address

    def connect(self) -> None:
        self.sock = socket.create_connection(
            (self.pinned_address, self.port), CONNECT_TIMEOUT_SECONDS
        )
        self.sock.settimeout(self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """HTTPS to an address checked beforehand; the certificate is checked against ``host``."""

    def __init__(self, host: str, port: int, address: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.pinned_address = address

    def connect(self) -> None:
        sock = socket.create_connection((self.pinned_address, self.port), CONNECT_TIMEOUT_SECONDS)
        sock.settimeout(self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post(url: str, headers: Mapping[str, str], body: bytes) -> int:
    """POST ``body`` to ``url`` through the guard; the answer's status code.

    Raises ``AddressRefused`` when the URL or its addresses are not allowed, and
    ``OSError`` / ``http.client.HTTPException`` when the endpoint cannot be reached
    in time. The answer's body is read up to ``MAX_RESPONSE_BYTES`` and ignored.
    """
    allow = loopback_allowed()
    check_url(url, allow)
    parts = urlsplit(url)
    host = parts.hostname or ""
    https = parts.scheme == "https"
    port = parts.port or (443 if https else 80)
    started = time.monotonic()
    address = resolve(host, port, allow)
    remaining = max(0.5, TIMEOUT_SECONDS - (time.monotonic() - started))
    kind = _PinnedHTTPSConnection if https else _PinnedHTTPConnection
    connection = kind(host, port, address, remaining)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    # Past the deadline the socket is shut down under whatever read is waiting: the read
    # then ends at once, and the attempt fails (an OSError or an HTTPException).
    deadline = threading.Timer(
        max(0.0, ATTEMPT_DEADLINE_SECONDS - (time.monotonic() - started)),
        _cut_off,
        args=(connection,),
    )
    deadline.daemon = True
    deadline.start()
    try:
        connection.request("POST", target, body=body, headers=dict(headers))
        response = connection.getresponse()
        response.read(MAX_RESPONSE_BYTES)
        if not deadline.is_alive():
            raise TimeoutError(f"no whole answer within {ATTEMPT_DEADLINE_SECONDS} s")
        return response.status
    finally:
        deadline.cancel()
        connection.close()


def _cut_off(connection: http.client.HTTPConnection) -> None:
    """End an attempt that ran out of time: shut its socket down (a read blocked on it
    returns at once; closing alone would not wake it)."""
    sock = connection.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed
            sock.shutdown(socket.SHUT_RDWR)
