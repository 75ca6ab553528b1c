"""The authenticator: tells who a bearer credential or a stream ticket speaks for."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from flowboard.auth.identity import Principal, Unauthenticated
from flowboard.auth.jwt import JwtVerifier, jwt_configured
from flowboard.auth.tickets import COLLECTION as TICKETS_COLLECTION
from flowboard.auth.tickets import SharedTicketBook, TicketBook, Tickets
from flowboard.auth.tokens import TokenService, looks_like_token

if TYPE_CHECKING:
    from flowboard.config import AuthSettings
    from flowboard.db.database import Database
    from flowboard.store.tokens import TokenStore


@dataclass
class Authenticator:
    """API tokens, optional issuer JWTs, and the book of stream tickets."""

    tokens: TokenService
    tickets: Tickets
    jwt: JwtVerifier | None = None

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, store: TokenStore, shared: Database | None = None
    ) -> Authenticator:
        """`shared`: the cluster's database, to keep stream tickets in (else in memory)."""
        verifier = JwtVerifier(settings) if jwt_configured(settings) else None
        lifetime = settings.ticket_seconds
        tickets: Tickets = (
            TicketBook(lifetime)
            if shared is None
            else SharedTicketBook(shared.db[TICKETS_COLLECTION], lifetime)
        )
        return cls(TokenService(store), tickets, verifier)

    async def bearer(self, credential: str) -> Principal:
        """Whom a bearer credential speaks for: an API token, else a JWT when configured."""
        if looks_like_token(credential):
            return await self.tokens.authenticate(credential)
        if self.jwt is not None and credential.count(".") == 2:
            return await self.jwt.verify(credential)
        raise Unauthenticated("malformed bearer token")
