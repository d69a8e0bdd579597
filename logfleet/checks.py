"""System checks of LogFleet's own settings (shown by `manage.py check`, `migrate` and `check --deploy`)."""

from django.conf import settings
from django.core import checks

SHARED_IP_BUCKET = "logfleet.W001"


@checks.register(checks.Tags.security)
def shared_ip_bucket(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    """Several processes (REDIS_URL) usually sit behind a load balancer or TLS proxy. With
    TRUSTED_PROXY_COUNT=0 the client address is the proxy's, so every client shares one per-IP
    bucket of the Authentication group: one client's failed logins lock everybody out."""
    if not settings.REDIS_URL or settings.TRUSTED_PROXY_COUNT:
        return []
    return [
        checks.Warning(
            "REDIS_URL is set but TRUSTED_PROXY_COUNT is 0: behind a load balancer or proxy every "
            "client has the proxy's address, so all of them share one per-IP rate-limit bucket "
            "(login, registration, password reset) and the audit log records the proxy's address.",
            hint="Set TRUSTED_PROXY_COUNT to the number of proxies in front of the server processes "
            "(1 for the README's nginx). If clients reach the processes directly, this does not apply.",
            id=SHARED_IP_BUCKET,
        )
    ]
