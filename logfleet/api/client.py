"""Facts about the client of a request that several apps need."""

import ipaddress

from django.conf import settings


def parse_ip(value: str | None) -> str | None:
    """An IP address from a header or the socket, in canonical form; None when it is not one.

    Accepts what load balancers send: `203.0.113.5`, `203.0.113.5:4711`, `2001:db8::1` and
    `[2001:db8::1]:443`.
    """
    if not value:
        return None
    text = value.strip()
    if text.startswith("["):
        text = text[1:].split("]", 1)[0]
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def client_ip(request) -> str | None:
    """The client address, trusting exactly TRUSTED_PROXY_COUNT hops of X-Forwarded-For.

    With 0 (the default) the header is ignored, so a client cannot choose its own address
    (and with it its rate-limit bucket). With N, the N-th address from the right is the one
    the outermost trusted proxy saw. A forwarded value that is not an address falls back to
    the socket's address.
    """
    return _client_ip(request.META.get("HTTP_X_FORWARDED_FOR", ""), request.META.get("REMOTE_ADDR"))


def scope_client_ip(scope) -> str | None:
    """The same for a WebSocket's ASGI scope."""
    forwarded = ",".join(
        value.decode("latin-1") for name, value in scope.get("headers", []) if name.lower() == b"x-forwarded-for"
    )
    client = scope.get("client")
    return _client_ip(forwarded, client[0] if client else None)


def _client_ip(forwarded_header: str, remote: str | None) -> str | None:
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [part.strip() for part in forwarded_header.split(",") if part.strip()]
        if len(forwarded) >= hops:
            address = parse_ip(forwarded[-hops])
            if address is not None:
                return address
    return parse_ip(remote)
