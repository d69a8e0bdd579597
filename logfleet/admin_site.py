"""The Django admin site of LogFleet: the stock one, with its login limited like the API's.

A POST to /admin/login/ counts in the Authentication group's counters exactly as
`POST /api/v1/auth/login` does, and in the same buckets: per client IP, then per target account
(the email typed in). Over either limit the login page is answered again with 429, the
`Retry-After` and `X-RateLimit-*` headers, and a message in the form, without checking the password.
"""

from django.contrib import admin
from django.contrib.admin.forms import AdminAuthenticationForm
from django.core.exceptions import ValidationError

from logfleet.api import ratelimit
from logfleet.errors import RateLimited


class RateLimitedAdminAuthenticationForm(AdminAuthenticationForm):
    def clean(self):
        try:
            ratelimit.enforce(self.request, group="auth", key=ratelimit.ip_key(self.request))
            ratelimit.enforce_account(self.request, self.cleaned_data.get("username"))
        except RateLimited as refused:
            self.request.rate_limited = refused
            raise ValidationError(
                "Too many login attempts. Try again in %(seconds)d seconds.",
                code="rate_limited",
                params={"seconds": refused.retry_after},
            ) from None
        return super().clean()


def take_over(obj, saved) -> None:
    """Make the admin's `obj` the object a service saved: the admin goes on with `obj` (its log
    entry, its redirect) after `save_model`, which wrote through the service instead of `obj.save()`."""
    obj.__dict__.update({name: value for name, value in saved.__dict__.items() if not name.startswith("_")})
    obj._state.adding = False


class LogFleetAdminSite(admin.AdminSite):
    login_form = RateLimitedAdminAuthenticationForm
    site_header = "LogFleet operations"
    # "View site": where people use LogFleet (the API's documentation until the dashboard exists).
    site_url = "/api/v1/docs"

    def login(self, request, extra_context=None):
        response = super().login(request, extra_context)
        usage = getattr(request, "rate_usage", None)
        if usage is not None:
            for header, value in usage.headers().items():
                response[header] = value
        refused = getattr(request, "rate_limited", None)
        if refused is not None:
            response.status_code = 429
            response["Retry-After"] = str(refused.retry_after)
        return response
