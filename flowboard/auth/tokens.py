"""API tokens: `fb_<random>` handed out once; only their SHA-256 is stored."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import timedelta

from flowboard.auth.identity import Method, Principal, Unauthenticated
from flowboard.ids import new_id, utcnow
from flowboard.models.tokens import ApiToken
from flowboard.store.tokens import TokenStore

_LOGGER = logging.getLogger(__name__)

TOKEN_PREFIX = "fb_"
_TOKEN_SHAPE = re.compile(r"^fb_[A-Za-z0-9_-]{32,128}$")
# lastUsedAt is a hint for people auditing tokens: one write a minute per token is enough.
TOUCH_EVERY = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedToken:
    """A new token and its plain text, which exists only until it is shown once."""

    token: ApiToken
    plain: str

    def __repr__(self) -> str:  # keep the plain text out of tracebacks and debug output
        return f"IssuedToken(token={self.token!r}, plain='***')"


def new_plain_token() -> str:
    """A high-entropy token (256 bits) with a recognisable prefix."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def token_hash(plain: str) -> str:
    """The stored form of a token: hex SHA-256 (the token is random, so no salt is needed)."""
    return hashlib.sha256(plain.encode()).hexdigest()


def looks_like_token(value: str) -> bool:
    """Whether a bearer credential has the shape of a Flowboard API token."""
    return _TOKEN_SHAPE.fullmatch(value) is not None


@dataclass
class TokenService:
    """Create, list, revoke and check API tokens."""

    store: TokenStore

    async def create(self, org_id: str, name: str) -> IssuedToken:
        """Store a new token for the organisation; the plain text is returned only here."""
        plain = new_plain_token()
        token = ApiToken(
            id=new_id("tok"), org_id=org_id, name=name, hash=token_hash(plain), created_at=utcnow()
        )
        await self.store.insert(token)
        _LOGGER.info("token created", extra={"token_id": token.id, "org_id": org_id})
        return IssuedToken(token, plain)

    async def list(self, org_id: str | None = None) -> list[ApiToken]:
        return await self.store.list(org_id)

    async def revoke(self, token_id: str) -> ApiToken | None:
        """Revoke a token (idempotent); None when no such token exists."""
        token = await self.store.revoke(token_id, utcnow())
        if token is not None:
            _LOGGER.info("token revoked", extra={"token_id": token.id, "org_id": token.org_id})
        return token

    async def authenticate(self, plain: str) -> Principal:
        """The principal a token speaks for; Unauthenticated when unknown or revoked."""
        token = await self.store.by_hash(token_hash(plain))
        if token is None or not token.active:
            raise Unauthenticated("invalid or revoked token")
        now = utcnow()
        if token.last_used_at is None or now - token.last_used_at >= TOUCH_EVERY:
            await self.store.touch(token.id, now)
        return Principal(token.org_id, token.id, Method.TOKEN)
