"""The Veo polling schedule: built from the model's typical duration, configurable per model."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from flowboard.config import VeoSettings, load_settings
from flowboard.providers.veo_polling import PollTiming, poll_delays, timing_for

TIMING = PollTiming(first_seconds=20, typical_seconds=90, interval_seconds=15, max_seconds=30)


def high(low: float, top: float) -> float:
    return top


def low(low: float, top: float) -> float:
    return low


def times(delays: Iterator[float], count: int) -> list[float]:
    """Poll times since the start (ignoring the polls' own answer time)."""
    return list(itertools.accumulate(itertools.islice(delays, count)))


def test_schedule_without_jitter_follows_the_phases() -> None:
    polled = times(poll_delays(TIMING, jitter=high), 12)

    # First poll at 20 s; ceiling gaps, the last shortened to land on typical - interval
    # (75 s); every 15 s up to typical + interval (105 s); then x1.5 back to the ceiling.
    assert polled == [20, 50, 75, 90, 105, 127.5, 157.5, 187.5, 217.5, 247.5, 277.5, 307.5]


def test_gaps_are_jittered_downwards_within_bounds() -> None:
    rng = random.Random(3)
    delays = list(itertools.islice(poll_delays(TIMING, jitter=rng.uniform), 200))
    floor = 1 - TIMING.jitter

    assert TIMING.jitter == 0.02
    assert floor * 20 <= delays[0] <= 20
    assert all(floor * 15 <= d <= 30 for d in delays[1:])
    assert len(set(delays)) == len(delays)  # never in lock-step, even at the ceiling
    assert min(delays[-50:]) >= floor * 30


def test_jitter_is_configured() -> None:
    timing = timing_for(VeoSettings(poll_jitter=0.25), "veo-3.0-generate-001")
    delays = list(itertools.islice(poll_delays(timing, jitter=low), 8))

    assert timing.jitter == 0.25
    assert delays[0] == 0.75 * timing.first_seconds
    assert all(d >= 0.75 * timing.interval_seconds for d in delays[1:])


def test_operation_of_unknown_age_is_looked_at_within_one_interval() -> None:
    rng = random.Random(5)
    firsts = [next(poll_delays(TIMING, age=None, jitter=rng.uniform)) for _ in range(200)]

    assert all(0 <= first <= 15 for first in firsts)
    assert max(firsts) - min(firsts) > 10  # spread over the interval, not in one burst
    # then by the schedule, as if first_seconds old (the first look 15 s later, at "35 s"):
    # a ceiling gap to "65 s", within one interval of the window: every interval from there
    assert times(poll_delays(TIMING, age=None, jitter=high), 4) == [15, 45, 60, 75]


def test_first_poll_after_the_window_backs_off_at_once() -> None:
    short = PollTiming(first_seconds=60, typical_seconds=20, interval_seconds=5, max_seconds=30)

    gaps = list(itertools.islice(poll_delays(short, jitter=high), 6))

    assert gaps == [60, 7.5, 11.25, 16.875, 25.3125, 30]


def test_interval_never_exceeds_the_ceiling() -> None:
    settings = VeoSettings(poll_interval_seconds=60, poll_max_seconds=30)

    assert timing_for(settings, "veo-3.0-generate-001").interval_seconds == 30


def settings_with(**values: Any) -> VeoSettings:
    return VeoSettings.model_validate(values)


def test_per_model_timing_takes_the_longest_prefix_and_inherits_the_rest() -> None:
    settings = settings_with(
        first_poll_seconds=25,
        typical_seconds=100,
        poll_interval_seconds=12,
        poll_max_seconds=40,
        models={"veo-3": {"typical_seconds": 80}, "veo-3.1-fast": {"first_poll_seconds": 10}},
    )

    assert timing_for(settings, "veo-2.0-generate-001") == PollTiming(25, 100, 12, 40)
    assert timing_for(settings, "veo-3.0-generate-001") == PollTiming(25, 80, 12, 40)
    # "veo-3.1-fast" is longer than "veo-3": its own first poll, nothing else inherited from
    # "veo-3" (prefixes do not stack; the rest comes from [providers.veo]).
    assert timing_for(settings, "veo-3.1-fast-generate-preview") == PollTiming(10, 100, 12, 40)


def test_config_toml_documents_the_defaults() -> None:
    shipped = load_settings(Path(__file__).parent.parent / "config.toml", environ={})
    veo = shipped.providers.veo
    assert timing_for(veo, "veo-3.0-generate-001") == PollTiming(40, 90, 20, 30, 0.02)
    assert veo.model_dump() == VeoSettings().model_dump()  # the file says what the code does
    assert timing_for(veo, "veo-3.1-fast-generate-preview") == PollTiming(15, 60, 10, 30)
    assert timing_for(veo, "veo-3.0-fast-generate-001") == PollTiming(15, 60, 10, 30)


def test_replaced_poll_initial_seconds_still_reads() -> None:
    settings = settings_with(poll_initial_seconds=5.0)

    assert (settings.first_poll_seconds, settings.poll_interval_seconds) == (5.0, 5.0)
    assert settings_with(poll_initial_seconds=5.0, first_poll_seconds=9).first_poll_seconds == 9
