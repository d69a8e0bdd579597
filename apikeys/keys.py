"""The API key format: `lf_<env>_` + 26 random base62 characters + a 6-character base62 CRC32.

The checksum covers everything before it, so a mistyped or made-up key is refused without a
database lookup. Only an HMAC-SHA256 of the whole key (with a pepper derived from API_KEY_PEPPER, by default SECRET_KEY)
is stored; `key_prefix` (`lf_<env>_` + the first 8 random characters) finds the row.
"""

import hashlib
import hmac
import re
import secrets
import zlib
from functools import lru_cache

from django.conf import settings

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
RANDOM_LENGTH = 26
CHECKSUM_LENGTH = 6
PREFIX_RANDOM_LENGTH = 8
KEY_RE = re.compile(rf"^(lf_(?:prod|dev)_)([0-9A-Za-z]{{{RANDOM_LENGTH}}})([0-9A-Za-z]{{{CHECKSUM_LENGTH}}})\Z")

PERMISSIONS = ("edge:register", "edge:heartbeat", "edge:metrics", "edge:stream", "metrics:read")


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, ALPHABET[0])


def checksum(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECKSUM_LENGTH)


def generate(env: str | None = None) -> str:
    body = f"lf_{env or settings.API_KEY_ENV}_" + "".join(secrets.choice(ALPHABET) for _ in range(RANDOM_LENGTH))
    return body + checksum(body)


def parse_prefix(raw: str) -> str | None:
    """The key's lookup prefix when `raw` is well-formed with a valid checksum, else None (no I/O)."""
    match = KEY_RE.match(raw)
    if match is None:
        return None
    env_part, random_part, check = match.groups()
    if not hmac.compare_digest(checksum(env_part + random_part), check):
        return None
    return env_part + random_part[:PREFIX_RANDOM_LENGTH]


@lru_cache(maxsize=4)
def _pepper(secret: str) -> bytes:
    return hashlib.sha256(b"logfleet-api-key-pepper:" + secret.encode()).digest()


def hash_key(raw: str) -> str:
    return hmac.new(_pepper(settings.API_KEY_PEPPER), raw.encode(), hashlib.sha256).hexdigest()


def matches(raw: str, key_hash: str) -> bool:
    return hmac.compare_digest(hash_key(raw), key_hash)
