"""Telling open WebSockets that their credential changed, on every server process.

A socket holds a credential for as long as it is open: a viewer its access token (and so a
LogFleet session and a user), an agent its API key. HTTP checks the credential on every request;
a socket checked it once, at its start. So the consumers join one channel-layer group per
credential (`auth-session.<id>`, `auth-user.<id>`, `api-key.<id>`), and the code that ends or
changes a credential sends one of these events to that group after its transaction commits:

- `credential.ended` `{reason}`: it no longer holds (logout, password change, key revoked...):
  close with 4401 and `reason`, without asking anything;
- `credential.check`: something it depends on changed (a user was edited): check it again now;
- `credential.expires` `{expires_at}`: it now ends by itself at that Unix time (a rotated key).

The channel layer is Redis in production, so the socket may be on any process. Sending is best
effort: a socket that misses an event still re-checks its credential every
STREAM_SOCKET_RECHECK_SECONDS (streaming.consumers).
"""

import logging
from dataclasses import dataclass

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction

logger = logging.getLogger("logfleet.realtime")


@dataclass(frozen=True)
class Standing:
    """Whether a socket's credential still holds.

    `ended` is why it does not (a short sentence, sent as the close reason), None while it holds;
    `expires_at` the Unix time at which it ends by itself, if it does.
    """

    ended: str | None = None
    expires_at: float | None = None


def auth_session_group(session_id) -> str:
    return f"auth-session.{session_id}"


def user_group(user_id) -> str:
    return f"auth-user.{user_id}"


def api_key_group(key_id) -> str:
    return f"api-key.{key_id}"


def group_send(group: str, message: dict) -> None:
    """Send now; raises when the channel layer cannot be reached."""
    async_to_sync(get_channel_layer().group_send)(group, message)


def _send_after_commit(group: str, message: dict) -> None:
    def send():
        try:
            group_send(group, message)
        except Exception:
            # The sockets' periodic re-check is the backstop for this.
            logger.warning("could not send %s to %s", message["type"], group, exc_info=True)

    transaction.on_commit(send)


def credential_ended(group: str, reason: str) -> None:
    _send_after_commit(group, {"type": "credential.ended", "reason": reason})


def credential_check(group: str) -> None:
    _send_after_commit(group, {"type": "credential.check"})


def credential_expires(group: str, expires_at: float) -> None:
    _send_after_commit(group, {"type": "credential.expires", "expires_at": expires_at})
