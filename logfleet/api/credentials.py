"""One credential per request (API.md sections 2 and 4): a person's `Authorization: Bearer <token>`
or an agent's `X-API-Key`, never both.

A request that carries both is refused with 401 by every authentication class, whichever it would
have tried first and whether either is valid: resolving them in order would let a bad credential
ride along with a good one, and what a call is allowed to do would depend on the class order of
the view it reached.
"""

from rest_framework.exceptions import AuthenticationFailed

MIXED_MESSAGE = "Send one credential: Authorization or X-API-Key, not both"


def refuse_mixed_credentials(request) -> None:
    meta = request.META
    if "HTTP_AUTHORIZATION" in meta and "HTTP_X_API_KEY" in meta:
        raise AuthenticationFailed(MIXED_MESSAGE)
