from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from apikeys import services
from logfleet.api.credentials import refuse_mixed_credentials

HEADER = "HTTP_X_API_KEY"


class APIKeyAuthentication(authentication.BaseAuthentication):
    """`X-API-Key: lf_<env>_...`: `request.user` is None, `request.auth` the KeyPrincipal."""

    header = HEADER

    def authenticate(self, request):
        refuse_mixed_credentials(request)
        raw = request.META.get(HEADER)
        if raw is None:
            return None
        principal = services.authenticate(raw.strip())
        if principal is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key")
        return None, principal

    def authenticate_header(self, request):
        return "X-API-Key"


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.APIKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def requires_key_permission(permission: str) -> type[BasePermission]:
    """A permission class: the request was made with an API key that carries `permission`."""

    class HasKeyPermission(BasePermission):
        message = f"This API key lacks the permission {permission}"

        def has_permission(self, request, view):
            principal = request.auth
            return isinstance(principal, services.KeyPrincipal) and principal.has(permission)

    HasKeyPermission.__name__ = f"HasKeyPermission[{permission}]"
    return HasKeyPermission
