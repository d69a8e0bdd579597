"""Webhook signing secrets: shown once, then kept encrypted, never as plain text.

A receiver checks the signature with the secret string it was given (`whsec_...`), so LogFleet must
be able to read it again to sign each delivery: a hash would not do. It is encrypted with Fernet
(AES-128-CBC and HMAC-SHA256, from the pinned `cryptography`) under a key derived from
WEBHOOK_SECRET_KEY (SECRET_KEY by default): a copy of the database alone does not reveal it.
"""

import base64
import hashlib
import hmac
import secrets as random

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

PREFIX = "whsec_"


def generate() -> str:
    """A new signing secret: `whsec_` and 32 random bytes in URL-safe base64."""
    return PREFIX + random.token_urlsafe(32)


def _fernet() -> Fernet:
    key = hmac.new(settings.WEBHOOK_SECRET_KEY.encode(), b"logfleet webhook signing secrets", hashlib.sha256).digest()
    return Fernet(base64.urlsafe_b64encode(key))


def encrypt(secret: str) -> str:
    return _fernet().encrypt(secret.encode()).decode()


def decrypt(token: str) -> str | None:
    """The secret, or None when it cannot be read (WEBHOOK_SECRET_KEY changed without keeping the old one)."""
    try:
        return _fernet().decrypt(token.encode()).decode()
    except (InvalidToken, ValueError):
        return None
