"""JWTs of a session: HS256, signed with SECRET_KEY, carrying `user_id` and the session id `sid`."""

from dataclasses import dataclass

from django.conf import settings
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken


@dataclass(frozen=True)
class TokenPair:
    token: str
    refresh_token: str
    refresh_jti: str
    session_id: str

    @property
    def expires_in(self) -> int:
        return settings.JWT_ACCESS_TTL

    def as_dict(self) -> dict:
        return {"token": self.token, "expires_in": self.expires_in, "refresh_token": self.refresh_token}


def issue_pair(*, user_id, session_id) -> TokenPair:
    refresh = RefreshToken()
    refresh["user_id"] = str(user_id)
    refresh["sid"] = str(session_id)
    return TokenPair(
        token=str(refresh.access_token),
        refresh_token=str(refresh),
        refresh_jti=refresh["jti"],
        session_id=str(session_id),
    )


def decode_access(raw: str) -> AccessToken:
    """Raises rest_framework_simplejwt.exceptions.TokenError when invalid or expired."""
    return AccessToken(raw)


def decode_refresh(raw: str) -> RefreshToken:
    return RefreshToken(raw)
