from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.exceptions import AuthenticationFailed
from rest_framework_simplejwt.authentication import JWTAuthentication

from accounts.services import session_authenticate
from logfleet.api.credentials import refuse_mixed_credentials
from logfleet.errors import Unauthenticated


class SessionJWTAuthentication(JWTAuthentication):
    """`Authorization: Bearer <access token>`; the token's session must still be open.

    `request.user` is the user (role and status fresh from the database), `request.auth`
    the AuthSession, which logout ends.
    """

    def authenticate(self, request):
        refuse_mixed_credentials(request)
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            # A token without its scheme (`Authorization: eyJ...`) is not "no credentials".
            raise AuthenticationFailed("The Authorization header must be 'Bearer <access token>'")
        try:
            return session_authenticate(raw_token.decode() if isinstance(raw_token, bytes) else raw_token)
        except Unauthenticated as exc:
            raise AuthenticationFailed(exc.message) from None  # DRF's 401 with WWW-Authenticate


class SessionJWTAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.SessionJWTAuthentication"
    name = "bearerAuth"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
