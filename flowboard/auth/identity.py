"""Who a request acts for, and the two ways identifying it can fail."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Method(StrEnum):
    """What proved the caller's identity."""

    TOKEN = "token"
    JWT = "jwt"
    TICKET = "ticket"


@dataclass(frozen=True)
class Principal:
    """The caller.

    org_id: the organisation every query of the request is scoped to.
    subject: the token id, the JWT `sub`, or the flow a stream ticket was for.
    method: what proved it.
    """

    org_id: str
    subject: str
    method: Method


class Unauthenticated(Exception):
    """No valid credential: answered 401. The message never contains the credential."""


class IdentityUnavailable(Exception):
    """The identity provider (JWKS endpoint) could not be reached: answered 503."""
