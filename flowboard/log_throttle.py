"""Bound the lines a kind of noise (malformed requests, refused credentials) can log.

Anyone can send them, no token needed: each kind logs its first `burst` lines of a
window, then counts, and writes the count as one summary line with its next event once
the window has passed (a quiet server writes nothing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

BURST = 5
WINDOW_SECONDS = 60.0


@dataclass
class LogThrottle:
    """Whether the next line of one kind may be written.

    logger: where the summary line goes; what: the kind, in the plural, for that line;
    burst: lines written one by one per window; window: its length in seconds.
    """

    logger: logging.Logger
    what: str
    burst: int = BURST
    window: float = WINDOW_SECONDS
    clock: Callable[[], float] = time.monotonic
    _started: float | None = field(default=None, init=False)
    _written: int = field(default=0, init=False)
    _held: int = field(default=0, init=False)

    def allow(self) -> bool:
        """Count one event; True when its own line should be written."""
        now = self.clock()
        if self._started is None or now - self._started >= self.window:
            self._summarise(now)
            self._started, self._written, self._held = now, 0, 0
        if self._written < self.burst:
            self._written += 1
            return True
        self._held += 1
        return False

    def _summarise(self, now: float) -> None:
        if self._held and self._started is not None:
            self.logger.warning(
                "%d more %s in the last %.0f s, not logged one by one",
                self._held,
                self.what,
                now - self._started,
                extra={"suppressed": self._held},
            )
