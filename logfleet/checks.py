"""System checks for a deployment (`manage.py check --deploy`)."""

from django.conf import settings
from django.core.checks import Tags, Warning, register

_PRINTING_BACKENDS = {
    "django.core.mail.backends.console.EmailBackend",
    "django.core.mail.backends.dummy.EmailBackend",
}


@register(Tags.security, deploy=True)
def email_is_delivered(app_configs, **kwargs):
    if settings.EMAIL_BACKEND in _PRINTING_BACKENDS:
        return [
            Warning(
                "EMAIL_BACKEND prints (or drops) email: password-reset and invitation links would end up in the "
                "server's log instead of people's inboxes.",
                hint="Set EMAIL_BACKEND=django.core.mail.backends.smtp.EmailBackend and Django's EMAIL_HOST settings.",
                id="logfleet.W001",
            )
        ]
    return []
