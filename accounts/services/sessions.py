"""LogFleet sessions: the JWTs of a login, refreshed by rotation and ended by logout, a password change or
reset, deactivation or reuse of a refresh token."""

import uuid

from django.utils import timezone
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenError

from accounts import tokens
from accounts.models import (
    AuthSession,
    User,
    UserStatus,
)
from logfleet import realtime
from logfleet.errors import Unauthenticated


def session_start(*, user: User) -> tokens.TokenPair:
    session_id = uuid.uuid4()
    pair = tokens.issue_pair(user_id=user.pk, session_id=session_id)
    AuthSession.objects.create(id=session_id, user=user, refresh_jti=pair.refresh_jti)
    return pair


def _decode_access(raw_token: str):
    """The claims and session id of a well-formed, unexpired access token; TokenError or ValueError otherwise."""
    token = tokens.decode_access(raw_token)
    return token, uuid.UUID(str(token.get("sid")))


def session_authenticate(raw_token: str) -> tuple[User, AuthSession]:
    """The user and session of a valid access token whose session is open and whose user is active.

    One query; role and status come fresh from the database on every request.
    """
    try:
        token, session_id = _decode_access(raw_token)
    except (TokenError, ValueError):
        raise Unauthenticated("Invalid or expired token") from None
    return session_open(session_id, user_id=token.get("user_id"))


def session_open(session_id, *, user_id=None) -> tuple[User, AuthSession]:
    """The user and session of an open session whose user is active: a token's (the API's, the
    sockets') or a signed-in browser's (accounts.browser). One query."""
    try:
        session_id = uuid.UUID(str(session_id))
    except ValueError:
        raise Unauthenticated("The session has ended; log in again") from None
    session = (
        AuthSession.objects.select_related("user", "user__organization")
        .filter(id=session_id, ended_at__isnull=True)
        .first()
    )
    if session is None or (user_id is not None and str(session.user_id) != str(user_id)):
        raise Unauthenticated("The session has ended; log in again")
    user = session.user
    if not user.is_active or user.organization_id is None:
        raise Unauthenticated("The account is not active")
    return user, session


# Why a session ended (AuthSession.end_reason), as a WebSocket's close reason says it.
SESSION_ENDED = {
    "logout": "Logged out",
    "password_changed": "The password was changed; log in again",
    "password_reset": "The password was reset; log in again",
    "deactivated": "The account was deactivated",
    "refresh_token_reused": "The session's refresh token was used twice (a copy was taken); log in again",
}


def session_standing(raw_token: str, *, organization_id=None) -> realtime.Standing:
    """Whether an access token still authenticates as on an HTTP request (session open, user active and in
    an organization) and, with `organization_id`, still in that one; why not, or when the token expires.

    For the WebSockets that hold a token open (streaming.consumers): they ask at their start and again
    whenever they may have missed the end of the session.
    """
    try:
        token, session_id = _decode_access(raw_token)
    except ExpiredTokenError:
        return realtime.Standing(ended="The token has expired; log in again")
    except (TokenError, ValueError):
        return realtime.Standing(ended="The token is not valid")
    standing = auth_session_standing(session_id, user_id=token.get("user_id"), organization_id=organization_id)
    return standing if standing.ended else realtime.Standing(expires_at=float(token["exp"]))


def auth_session_standing(session_id, *, user_id=None, organization_id=None) -> realtime.Standing:
    """Whether a LogFleet session still holds (open, its user active and in an organization, and, with
    `organization_id`, still in that one), and why not: a token's, or a signed-in browser's
    (accounts.browser.browser_standing)."""
    try:
        user, _session = session_open(session_id, user_id=user_id)
    except Unauthenticated as exc:
        try:
            end_reason = AuthSession.objects.filter(id=uuid.UUID(str(session_id))).values_list("end_reason", flat=True)
        except ValueError:
            return realtime.Standing(ended=exc.message)
        return realtime.Standing(ended=SESSION_ENDED.get(end_reason.first()) or exc.message)
    if organization_id is not None and str(user.organization_id) != str(organization_id):
        return realtime.Standing(ended="The account no longer belongs to this organization")
    return realtime.Standing()


def session_refresh(*, refresh_token: str) -> tokens.TokenPair:
    """Rotate: the presented refresh token must be the session's newest; it is dead afterwards."""
    try:
        token = tokens.decode_refresh(refresh_token)
        session_id = uuid.UUID(str(token.get("sid")))
    except (TokenError, ValueError):
        raise Unauthenticated("Invalid or expired refresh token") from None
    pair = tokens.issue_pair(user_id=token.get("user_id"), session_id=session_id)
    # One conditional UPDATE: of two concurrent refreshes with the same token only one wins.
    rotated = AuthSession.objects.filter(
        id=session_id,
        refresh_jti=token.get("jti"),
        ended_at__isnull=True,
        user__status=UserStatus.ACTIVE,
    ).update(refresh_jti=pair.refresh_jti, refreshed_at=timezone.now())
    if not rotated:
        # A genuine but already used refresh token: someone kept a copy. Treat it as theft (as
        # OAuth's refresh-token rotation does) and end the session for both holders.
        session_end(session=AuthSession(pk=session_id), reason="refresh_token_reused")
        raise Unauthenticated("Refresh token already used or session ended")
    return pair


def session_end(*, session: AuthSession, reason: str) -> None:
    AuthSession.objects.filter(id=session.pk, ended_at__isnull=True).update(ended_at=timezone.now(), end_reason=reason)
    realtime.credential_ended(realtime.auth_session_group(session.pk), SESSION_ENDED[reason])


def sessions_end_all(*, user: User, reason: str) -> int:
    ended = AuthSession.objects.filter(user=user, ended_at__isnull=True).update(
        ended_at=timezone.now(), end_reason=reason
    )
    # Sent even when nothing was open: a socket that missed an earlier end closes now.
    realtime.credential_ended(realtime.user_group(user.pk), SESSION_ENDED[reason])
    return ended
