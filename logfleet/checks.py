"""System checks of LogFleet's own settings (shown by `manage.py check`, `migrate` and `check --deploy`)."""

import logging

from django.conf import settings
from django.core import checks

SHARED_IP_BUCKET = "logfleet.W001"
EMAIL_ONLY_PRINTED = "logfleet.W002"

_PRINTING_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


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


@checks.register(checks.Tags.security, deploy=True)
def email_is_delivered(app_configs=None, **kwargs) -> list[checks.CheckMessage]:
    if settings.EMAIL_BACKEND not in _PRINTING_BACKENDS:
        return []
    return [
        checks.Warning(
            "EMAIL_BACKEND prints (or drops) email: password-reset and invitation links would end up in the "
            "server's log instead of people's inboxes.",
            hint="Set EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and Django's EMAIL_HOST settings.",
            id=EMAIL_ONLY_PRINTED,
        )
    ]


def log_at_start() -> None:
    """Servers do not run the system checks: the ones about the deployment are logged at start."""
    for warning in shared_ip_bucket():
        logging.getLogger("logfleet").warning("%s %s (%s)", warning.msg, warning.hint, warning.id)
