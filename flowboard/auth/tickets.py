"""Single-use, short-lived tickets that let an EventSource (no headers) open one stream.

Kept in memory on one server: a ticket lives seconds, and taking it out of a dict is
atomic on the event loop, so single use needs no database round trip. A restart forgets
outstanding tickets; the client asks for a new one, as it must on any reconnect. A
cluster keeps them in the database instead (`SharedTicketBook`), since a load balancer
may send the stream to another server than the one that issued its ticket.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from pymongo.asynchronous.collection import AsyncCollection

from flowboard.auth.identity import Method, Principal, Unauthenticated

MAX_OUTSTANDING = 100_000
COLLECTION = "stream_tickets"


class Tickets(Protocol):
    """Where stream tickets are kept: one server's memory, or the cluster's database."""

    lifetime: float

    async def issue(self, org_id: str, flow_id: str) -> str: ...

    async def redeem(self, ticket: str, flow_id: str) -> Principal: ...


@dataclass(frozen=True)
class Ticket:
    """What a ticket grants.

    org_id: the organisation the stream is read as.
    flow_id: the one flow it may subscribe to.
    expires_at: monotonic clock time after which it is refused.
    """

    org_id: str
    flow_id: str
    expires_at: float


def _key(ticket: str) -> str:
    # Only digests are kept, so a dump of the book holds nothing usable.
    return hashlib.sha256(ticket.encode()).hexdigest()


class TicketBook:
    """Issue and redeem stream tickets; each is refused once used or expired."""

    def __init__(
        self,
        lifetime: float,
        clock: Callable[[], float] = time.monotonic,
        capacity: int = MAX_OUTSTANDING,
    ) -> None:
        self.lifetime = lifetime
        self._clock = clock
        self._capacity = capacity
        self._tickets: dict[str, Ticket] = {}

    def __len__(self) -> int:
        return len(self._tickets)

    async def issue(self, org_id: str, flow_id: str) -> str:
        """A new ticket for one subscription to the flow."""
        if len(self._tickets) >= self._capacity:
            self.sweep()
        while len(self._tickets) >= self._capacity:  # bounded memory: the oldest go first
            self._tickets.pop(next(iter(self._tickets)))
        ticket = secrets.token_urlsafe(32)
        self._tickets[_key(ticket)] = Ticket(org_id, flow_id, self._clock() + self.lifetime)
        return ticket

    async def redeem(self, ticket: str, flow_id: str) -> Principal:
        """Use a ticket up (whatever the outcome) and return whom it speaks for."""
        return _granted(self._tickets.pop(_key(ticket), None), self._clock(), flow_id)

    def sweep(self) -> int:
        """Forget expired tickets; return how many."""
        now = self._clock()
        expired = [key for key, t in self._tickets.items() if now >= t.expires_at]
        for key in expired:
            del self._tickets[key]
        return len(expired)


def _granted(found: Ticket | None, now: float, flow_id: str) -> Principal:
    """Whom a ticket taken out of its book speaks for, or why it is refused."""
    if found is None:
        raise Unauthenticated("unknown or already used ticket")
    if now >= found.expires_at:
        raise Unauthenticated("ticket expired")
    if found.flow_id != flow_id:
        raise Unauthenticated("ticket is for another flow")
    return Principal(found.org_id, found.flow_id, Method.TICKET)


class SharedTicketBook:
    """Tickets in the database, for a cluster: any server redeems what another issued.

    Single use is one `find_one_and_delete` (the database hands a ticket to one caller);
    expiry is wall-clock time, the one clock servers share.
    """

    def __init__(self, collection: AsyncCollection[dict[str, Any]], lifetime: float) -> None:
        self.lifetime = lifetime
        self._collection = collection
        self._swept = 0.0

    async def issue(self, org_id: str, flow_id: str) -> str:
        """A new ticket for one subscription to the flow."""
        await self._sweep()
        ticket = secrets.token_urlsafe(32)
        expires = datetime.now(UTC) + timedelta(seconds=self.lifetime)
        doc = {"_id": _key(ticket), "orgId": org_id, "flowId": flow_id, "expiresAt": expires}
        await self._collection.insert_one(doc)
        return ticket

    async def redeem(self, ticket: str, flow_id: str) -> Principal:
        """Use a ticket up (whatever the outcome) and return whom it speaks for."""
        doc = await self._collection.find_one_and_delete({"_id": _key(ticket)})
        found = None
        if doc is not None:
            expires = doc["expiresAt"].replace(tzinfo=UTC).timestamp()
            found = Ticket(doc["orgId"], doc["flowId"], expires)
        return _granted(found, time.time(), flow_id)

    async def _sweep(self) -> None:
        """Forget expired tickets, at most once a lifetime (bounded storage)."""
        if time.monotonic() - self._swept < self.lifetime:
            return
        self._swept = time.monotonic()
        await self._collection.delete_many({"expiresAt": {"$lt": datetime.now(UTC)}})
