"""Standard Webhooks signatures: `whsec_` secrets, signing, and verification.

signature = "v1," + base64(HMAC-SHA256(secret bytes, f"{id}.{timestamp}.{body}")),
where the secret bytes are the base64 part after `whsec_`. The header may carry
several space-separated signatures (during a secret rotation); one match suffices.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Mapping

PREFIX = "whsec_"
SECRET_BYTES = 32
MIN_SECRET_BYTES = 24
MAX_SECRET_BYTES = 64


class InvalidSignature(Exception):
    """A webhook's headers are missing, stale, or match no signature."""


def generate_secret() -> str:
    """A new random secret, `whsec_<base64 of 32 bytes>`."""
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_bytes(secret: str) -> bytes:
    """The key inside a `whsec_` secret; ValueError when it is not one."""
    if not secret.startswith(PREFIX):
        raise ValueError("secret must start with whsec_")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("secret must be whsec_ followed by base64") from exc
    if not key:
        raise ValueError("secret must not be empty")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: str) -> str:
    """The `v1,<base64>` signature of one message."""
    signed = f"{message_id}.{timestamp}.{body}".encode()
    digest = hmac.new(secret_bytes(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, message_id: str, timestamp: int, body: str) -> dict[str, str]:
    """The three headers a delivery carries."""
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, message_id, timestamp, body),
    }


def _timestamp(raw: str, now: float, tolerance: float) -> int:
    try:
        timestamp = int(raw)
    except ValueError as exc:
        raise InvalidSignature("webhook-timestamp is not a number") from exc
    if timestamp < now - tolerance:
        raise InvalidSignature("webhook-timestamp is too old")
    if timestamp > now + tolerance:
        raise InvalidSignature("webhook-timestamp is too far in the future")
    return timestamp


def verify(
    secret: str, received: Mapping[str, str], body: bytes, now: float, tolerance: float
) -> tuple[str, int]:
    """Check a message's headers and body; return its (webhook-id, timestamp)."""
    message_id = received.get("webhook-id", "")
    raw_timestamp = received.get("webhook-timestamp", "")
    signatures = received.get("webhook-signature", "")
    if not (message_id and raw_timestamp and signatures):
        raise InvalidSignature("webhook-id, webhook-timestamp and webhook-signature are required")
    timestamp = _timestamp(raw_timestamp, now, tolerance)
    try:
        text = body.decode()
    except UnicodeDecodeError as exc:
        raise InvalidSignature("body is not UTF-8") from exc
    expected = sign(secret, message_id, timestamp, text).encode()
    for candidate in signatures.split():
        # compare every candidate in constant time; a prefix other than v1 never matches
        if hmac.compare_digest(candidate.encode(), expected):
            return message_id, timestamp
    raise InvalidSignature("no matching signature")
