from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework import authentication, exceptions
from rest_framework.permissions import BasePermission

from accounts.authentication import SessionJWTAuthentication, SessionJWTAuthenticationScheme
from apikeys import services
from logfleet.api.credentials import refuse_mixed_credentials

HEADER = "HTTP_X_API_KEY"
AUTHORIZATION = "HTTP_AUTHORIZATION"
KEY_START = "lf_"  # every key starts so (apikeys.keys); an access token (a JWT) never does


def _key_principal(raw: str) -> services.KeyPrincipal:
    principal = services.authenticate(raw.strip())
    if principal is None:
        raise exceptions.AuthenticationFailed("Invalid, expired or revoked API key")
    return principal


class APIKeyAuthentication(authentication.BaseAuthentication):
    """`X-API-Key: lf_<env>_...`: `request.user` is None, `request.auth` the KeyPrincipal."""

    header = HEADER

    def authenticate(self, request):
        refuse_mixed_credentials(request)
        raw = request.META.get(HEADER)
        if raw is None:
            return None
        return None, _key_principal(raw)

    def authenticate_header(self, request):
        return "X-API-Key"


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.APIKeyAuthentication"
    name = "apiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "apiKey", "in": "header", "name": "X-API-Key"}


class KeyOrTokenAuthentication(authentication.BaseAuthentication):
    """Exactly one credential, in any of three forms (the Prometheus export, which people and
    Prometheus servers both read):

    - `Authorization: Bearer <access token>`: a person (SessionJWTAuthentication);
    - `Authorization: Bearer lf_<env>_...`: an API key, as a Prometheus scrape config sends its
      `authorization.credentials`;
    - `X-API-Key: lf_<env>_...`: an API key, as agents send it.

    A request with both an `Authorization` and an `X-API-Key` header is refused (401) whatever either
    holds (logfleet.api.credentials): which of two credentials counts is never decided by the order
    they are tried in.
    """

    def authenticate(self, request):
        refuse_mixed_credentials(request)
        authorization, key = request.META.get(AUTHORIZATION), request.META.get(HEADER)
        if key is not None:
            return None, _key_principal(key)
        if authorization is None:
            return None
        scheme, _space, credential = authorization.strip().partition(" ")
        credential = credential.strip()
        if scheme.lower() == "bearer" and credential.startswith(KEY_START):
            return None, _key_principal(credential)
        return SessionJWTAuthentication().authenticate(request)

    def authenticate_header(self, request):
        return SessionJWTAuthentication().authenticate_header(request)


class KeyOrTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Either of the two schemes people and agents use (the export's description says that its Bearer
    may also be an API key). It defines no scheme of its own: bearerAuth and apiKeyAuth are the
    components of SessionJWTAuthentication and APIKeyAuthentication, which the other views register."""

    target_class = "apikeys.authentication.KeyOrTokenAuthentication"
    name = []

    def get_security_requirement(self, auto_schema):
        return [
            {SessionJWTAuthenticationScheme.name: []},
            {APIKeyAuthenticationScheme.name: []},
        ]

    def get_security_definition(self, auto_schema):
        return []


def requires_key_permission(permission: str) -> type[BasePermission]:
    """A permission class: the request was made with an API key that carries `permission`."""

    class HasKeyPermission(BasePermission):
        message = f"This API key lacks the permission {permission}"

        def has_permission(self, request, view):
            principal = request.auth
            return isinstance(principal, services.KeyPrincipal) and principal.has(permission)

    HasKeyPermission.__name__ = f"HasKeyPermission[{permission}]"
    return HasKeyPermission
