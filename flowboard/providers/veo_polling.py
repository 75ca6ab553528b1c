"""When to poll a Veo operation: a schedule built from the model's typical duration.

Veo takes from about 20 s to 6 min; most operations end near the model's typical time.
So the first poll comes near the earliest plausible completion, polls come every
`interval` seconds in the window typical ± interval, gaps elsewhere are at most the
ceiling (the last one before the window shortened to land on it), and after the window
the interval grows x1.5 back to the ceiling. Every gap is jittered downwards by up to
`jitter` of its length, so follows started together drift apart and the ceiling holds.
The jitter is small (2 %) because it is paid for in every gap of a long operation, and
operations are already de-phased by their starts (resumed ones by a spread first look).
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from flowboard.config import VeoSettings

Jitter = Callable[[float, float], float]

DEFAULT_JITTER = 0.02  # each gap is its nominal length times U(1 - jitter, 1)
_BACKOFF = 1.5


@dataclass(frozen=True)
class PollTiming:
    """One model's schedule.

    first_seconds: the first poll after the start (the earliest plausible completion).
    typical_seconds: when most operations of the model end.
    interval_seconds: the gap around the typical time (typical ± interval).
    max_seconds: the longest gap (before the window and after the backoff).
    jitter: the largest fraction taken off a gap at random.
    """

    first_seconds: float
    typical_seconds: float
    interval_seconds: float
    max_seconds: float
    jitter: float = DEFAULT_JITTER

    @property
    def window(self) -> tuple[float, float]:
        """The span, in seconds since the start, polled every `interval_seconds`."""
        return (
            self.typical_seconds - self.interval_seconds,
            self.typical_seconds + self.interval_seconds,
        )


def timing_for(settings: VeoSettings, model: str) -> PollTiming:
    """Return `model`'s schedule: the longest `models` prefix it starts with, else the defaults."""
    matches = [prefix for prefix in settings.models if model.startswith(prefix)]
    own = settings.models[max(matches, key=len)] if matches else None

    def pick(name: str) -> float:
        value = getattr(own, name, None) if own is not None else None
        return float(value if value is not None else getattr(settings, name))

    return PollTiming(
        first_seconds=pick("first_poll_seconds"),
        typical_seconds=pick("typical_seconds"),
        interval_seconds=min(pick("poll_interval_seconds"), pick("poll_max_seconds")),
        max_seconds=pick("poll_max_seconds"),
        jitter=settings.poll_jitter,
    )


def _gap(timing: PollTiming, at: float, previous: float) -> float:
    """The nominal gap after a poll `at` seconds into the operation."""
    opens, closes = timing.window
    interval, ceiling = timing.interval_seconds, timing.max_seconds
    if at < opens - interval:  # approaching: long gaps, the last one landing on the window
        return min(ceiling, max(interval, opens - at))
    if at < closes:
        return interval
    return min(ceiling, max(interval, previous * _BACKOFF))


def poll_delays(
    timing: PollTiming, age: float | None = 0.0, jitter: Jitter = random.uniform
) -> Iterator[float]:
    """Yield the sleep before each poll of an operation `age` seconds old.

    `age` None: an operation of unknown age (resumed after a restart), taken as
    `first_seconds` old. An operation already under way (resumed, or followed again after
    a failed read) is looked at within one interval, spread out, then by the schedule.
    """
    low = 1.0 - timing.jitter
    if age == 0.0:
        delay = timing.first_seconds * jitter(low, 1.0)
        at = delay
    else:
        delay = timing.interval_seconds * jitter(0.0, 1.0)
        at = (timing.first_seconds if age is None else age) + delay
    gap = timing.interval_seconds
    while True:
        yield delay
        gap = _gap(timing, at, gap)
        delay = gap * jitter(low, 1.0)
        at += delay
