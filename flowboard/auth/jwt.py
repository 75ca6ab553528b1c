"""Bearer JWTs signed by a configured issuer (PEM public key, JWKS URL or shared secret)."""

from __future__ import annotations

import asyncio
import re
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt.exceptions import PyJWKClientConnectionError

from flowboard.auth.identity import IdentityUnavailable, Method, Principal, Unauthenticated

if TYPE_CHECKING:
    from flowboard.config import AuthSettings

_HMAC = frozenset({"HS256", "HS384", "HS512"})
_ORG = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
JWKS_CACHE_SECONDS = 300
JWKS_TIMEOUT_SECONDS = 5


def jwt_configured(settings: AuthSettings) -> bool:
    """Whether any way of checking JWT signatures is configured."""
    secret = settings.jwt_secret.get_secret_value()
    return bool(settings.jwt_public_key or settings.jwt_jwks_url or secret)


def _load_pem(pem: str) -> Any:
    try:
        return load_pem_public_key(pem.encode())
    except ValueError as exc:
        raise ValueError("auth.jwt_public_key: not a PEM public key") from exc


class JwtVerifier:
    """Check a JWT's signature, expiry, issuer and audience; the org comes from a claim."""

    def __init__(self, settings: AuthSettings) -> None:
        self._settings = settings
        self._algorithms = {a.strip() for a in settings.jwt_algorithms.split(",") if a.strip()}
        self._secret = settings.jwt_secret.get_secret_value()
        self._public_key = _load_pem(settings.jwt_public_key) if settings.jwt_public_key else None
        self._jwks = (
            jwt.PyJWKClient(
                settings.jwt_jwks_url, lifespan=JWKS_CACHE_SECONDS, timeout=JWKS_TIMEOUT_SECONDS
            )
            if settings.jwt_jwks_url
            else None
        )

    async def verify(self, token: str) -> Principal:
        """The principal a JWT speaks for; Unauthenticated when it does not check out."""
        try:
            algorithm = str(jwt.get_unverified_header(token).get("alg", ""))
            key = await self._key(token, algorithm)
            claims = self._decode(token, key, algorithm)
        except jwt.ExpiredSignatureError as exc:
            raise Unauthenticated("token expired") from exc
        except PyJWKClientConnectionError as exc:
            raise IdentityUnavailable("the identity provider's keys could not be fetched") from exc
        except jwt.PyJWTError as exc:
            raise Unauthenticated("invalid token") from exc
        org = claims.get(self._settings.jwt_org_claim)
        if not isinstance(org, str) or not _ORG.fullmatch(org):
            raise Unauthenticated("token names no organisation")
        return Principal(org, str(claims.get("sub", "")), Method.JWT)

    async def _key(self, token: str, algorithm: str) -> Any:
        """The key for this algorithm; an HMAC algorithm only ever gets the shared secret."""
        if algorithm not in self._algorithms:
            raise Unauthenticated("token algorithm not accepted")
        if algorithm in _HMAC:
            if not self._secret:
                raise Unauthenticated("token algorithm not accepted")
            return self._secret
        if self._public_key is not None:
            return self._public_key
        if self._jwks is not None:  # PyJWKClient fetches with urllib: keep it off the loop
            signing = await asyncio.to_thread(self._jwks.get_signing_key_from_jwt, token)
            return signing.key
        raise Unauthenticated("token algorithm not accepted")

    def _decode(self, token: str, key: Any, algorithm: str) -> dict[str, Any]:
        settings = self._settings
        required = ["exp"]
        required += ["iss"] if settings.jwt_issuer else []
        required += ["aud"] if settings.jwt_audience else []
        claims: dict[str, Any] = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=settings.jwt_audience or None,
            issuer=settings.jwt_issuer or None,
            leeway=settings.jwt_leeway_seconds,
            options={"require": required, "verify_aud": bool(settings.jwt_audience)},
        )
        return claims
