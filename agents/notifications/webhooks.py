"""Webhooks: what a URL may be, the guard against server-side request forgery, signing, and the POST.

The guard (unless WEBHOOK_ALLOW_PRIVATE): a URL whose host resolves to a loopback, private,
link-local, multicast or otherwise non-public address is refused when a channel is written, and
again at every delivery. A delivery resolves the name once, checks every address it got, connects
to that very address (with the URL's host in `Host` and in TLS's SNI and certificate check) and
checks the address of the socket it connected: a name that resolves to a public address when
checked and to a private one a moment later (DNS rebinding) cannot slip through. Standard library
only (http.client, ssl): no proxies, and redirects are never followed (a 3xx is a failed attempt).
"""

import hashlib
import hmac
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from logfleet.errors import Invalid

URL_MAX_LENGTH = 2048
USER_AGENT = "LogFleet-Webhooks/1"
# What is kept of an answer's body (and of an error's text), in characters.
RESPONSE_BODY_MAX = 1024
ERROR_MAX = 1024
_READ_MAX = 4096  # bytes read of an answer's body: enough to keep RESPONSE_BODY_MAX characters
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
PRIVATE_MESSAGE = "must not point at a loopback, private, link-local or multicast address"


def address_allowed(ip: str) -> bool:
    """Whether a webhook may be sent to this address: a public unicast one."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return False
    if address.version == 6:
        if address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        elif address in _NAT64:  # an IPv4 address behind NAT64: judge the IPv4 one
            address = ipaddress.ip_address(int(address) & 0xFFFFFFFF)
    return address.is_global and not (
        address.is_multicast
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_reserved
        or address.is_unspecified
    )


def resolve(host: str, port: int) -> list[str]:
    """The addresses of `host` (a name or an address literal), in the resolver's order; OSError when none."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(info[4][0] for info in infos))
    if not addresses:
        raise OSError(f"{host} has no address")
    return addresses


def _port(parts) -> int:
    return parts.port or (443 if parts.scheme == "https" else 80)


def url_check(url: str) -> str:
    """The URL as stored; Invalid naming `url` when it is not an http(s) URL LogFleet may call."""

    def refuse(problem: str):
        raise Invalid(details={"url": problem})

    if not isinstance(url, str) or not url.strip():
        refuse("is required for a webhook channel")
    url = url.strip()
    if len(url) > URL_MAX_LENGTH:
        refuse(f"must be at most {URL_MAX_LENGTH} characters")
    if "\x00" in url or any(char.isspace() for char in url):
        refuse("must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        port = _port(parts)
    except ValueError:
        refuse("must be a valid http:// or https:// URL")
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        refuse("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        refuse("must not contain credentials (user:password@)")
    if parts.fragment:
        refuse("must not contain a #fragment")
    if not settings.WEBHOOK_ALLOW_PRIVATE:
        try:
            addresses = resolve(parts.hostname, port)
        except (OSError, UnicodeError):
            refuse(f"the host {parts.hostname[:255]!r} does not resolve")
        if not all(address_allowed(address) for address in addresses):
            refuse(PRIVATE_MESSAGE)
    return url


def signature(secret: str, timestamp: int, body: bytes) -> str:
    """`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, keyed with the secret string as it was answered."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def headers(*, secret: str, event_type: str, event_id: str, body: bytes, timestamp: int) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-LogFleet-Event": event_type,
        "X-LogFleet-Delivery": event_id,
        "X-LogFleet-Timestamp": str(timestamp),
        "X-LogFleet-Signature": signature(secret, timestamp, body),
    }


@dataclass(frozen=True)
class Answer:
    """How an attempt went: the HTTP status (None when there was no answer), its body, or the error."""

    status: int | None = None
    body: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def storable(text: str, limit: int) -> str:
    """Text as a column of both databases holds it: no NUL (PostgreSQL refuses it), at most `limit` characters."""
    return text.replace("\x00", "\ufffd")[:limit]


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to `address`, the one checked, whatever the name resolves to now."""

    def __init__(self, host, port, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout)
        self.address = address

    def connect(self):
        self.sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """As above, with TLS for the URL's host (SNI and certificate check name the host, not the address)."""

    def __init__(self, host, port, *, address: str, timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self.address = address

    def connect(self):
        sock = socket.create_connection((self.address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def post(url: str, *, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POST `body` to `url` once, through the SSRF guard; never raises for what the network does."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", _port(parts)
    allow_private = settings.WEBHOOK_ALLOW_PRIVATE
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        return Answer(error=storable(f"could not resolve {host}: {exc}", ERROR_MAX))
    if not allow_private:
        refused = [address for address in addresses if not address_allowed(address)]
        if refused:
            return Answer(
                error=storable(f"not sent: {host} resolves to {refused[0]}, which {PRIVATE_MESSAGE}", ERROR_MAX)
            )
    connection_class = _PinnedHTTPSConnection if parts.scheme == "https" else _PinnedHTTPConnection
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    started = time.monotonic()
    connection = None
    try:
        for index, address in enumerate(addresses):  # the checked addresses, in the resolver's order
            connection = connection_class(host, port, address=address, timeout=timeout)
            try:
                connection.connect()
                break
            except OSError:
                connection.close()
                if index == len(addresses) - 1 or time.monotonic() - started >= timeout:
                    raise
        peer = connection.sock.getpeername()[0]
        if not allow_private and not address_allowed(peer):
            return Answer(error=storable(f"not sent: connected to {peer}, which {PRIVATE_MESSAGE}", ERROR_MAX))
        connection.request("POST", target, body=body, headers=headers)
        connection.sock.settimeout(max(0.1, timeout - (time.monotonic() - started)))
        response = connection.getresponse()
        data = response.read(_READ_MAX)
        return Answer(status=response.status, body=storable(data.decode("utf-8", "replace"), RESPONSE_BODY_MAX))
    except TimeoutError:
        return Answer(error=f"no answer within {timeout:g} s")
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Answer(error=storable(f"{type(exc).__name__}: {exc}", ERROR_MAX))
    finally:
        if connection is not None:
            connection.close()
