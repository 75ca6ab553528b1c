"""Single-use, short-lived tickets that let an EventSource (no headers) open one stream.

Kept in memory: Flowboard is one process, a ticket lives seconds, and taking it out of a
dict is atomic on the event loop, so single use needs no database round trip. A restart
forgets outstanding tickets; the client asks for a new one, as it must on any reconnect.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from flowboard.auth.identity import Method, Principal, Unauthenticated

MAX_OUTSTANDING = 100_000


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

    def issue(self, org_id: str, flow_id: str) -> str:
        """A new ticket for one subscription to the flow."""
        if len(self._tickets) >= self._capacity:
            self.sweep()
        while len(self._tickets) >= self._capacity:  # bounded memory: the oldest go first
            self._tickets.pop(next(iter(self._tickets)))
        ticket = secrets.token_urlsafe(32)
        self._tickets[_key(ticket)] = Ticket(org_id, flow_id, self._clock() + self.lifetime)
        return ticket

    def redeem(self, ticket: str, flow_id: str) -> Principal:
        """Use a ticket up (whatever the outcome) and return whom it speaks for."""
        found = self._tickets.pop(_key(ticket), None)
        if found is None:
            raise Unauthenticated("unknown or already used ticket")
        if self._clock() >= found.expires_at:
            raise Unauthenticated("ticket expired")
        if found.flow_id != flow_id:
            raise Unauthenticated("ticket is for another flow")
        return Principal(found.org_id, found.flow_id, Method.TICKET)

    def sweep(self) -> int:
        """Forget expired tickets; return how many."""
        now = self._clock()
        expired = [key for key, t in self._tickets.items() if now >= t.expires_at]
        for key in expired:
            del self._tickets[key]
        return len(expired)
