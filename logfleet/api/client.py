"""Facts about the client of a request that several apps need."""

from django.conf import settings


def client_ip(request) -> str | None:
    """The client address, trusting exactly TRUSTED_PROXY_COUNT hops of X-Forwarded-For.

    With 0 (the default) the header is ignored, so a client cannot choose its own address
    (and with it its rate-limit bucket). With N, the N-th address from the right is the one
    the outermost trusted proxy saw.
    """
    hops = settings.TRUSTED_PROXY_COUNT
    if hops:
        forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return request.META.get("REMOTE_ADDR") or None
