"""FirestoreMirror against the real Firestore emulator, including an outage and recovery."""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from google.cloud.firestore import AsyncClient

from flowboard.config import FirestoreSettings
from flowboard.mirror.firestore import FirestoreMirror, close_client
from tests.servers.firestore import FirestoreEmulator

_ENV_HOST = "FIRESTORE_EMULATOR_HOST"
_MIRROR_LOGGER = "flowboard.mirror.firestore"


@pytest.fixture
def settings(
    firestore_emulator: FirestoreEmulator, monkeypatch: pytest.MonkeyPatch
) -> FirestoreSettings:
    """Settings aimed at the emulator, with a collection of this test's own."""
    # The mirror must reach the emulator through settings alone.
    monkeypatch.delenv(_ENV_HOST, raising=False)
    return FirestoreSettings(
        enabled=True,
        project="flowboard-test",
        collection=f"exec_{uuid.uuid4().hex[:12]}",
        emulator_host=firestore_emulator.host,
    )


@pytest.fixture
async def reader(
    settings: FirestoreSettings, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[AsyncClient]:
    """An AsyncClient of its own, built the library's documented way (env var at init)."""
    with monkeypatch.context() as patch:
        patch.setenv(_ENV_HOST, settings.emulator_host)
        client = AsyncClient(project=settings.project)
    yield client
    await close_client(client)


def make_mirror(settings: FirestoreSettings, **options: Any) -> FirestoreMirror:
    """Build a mirror with test-friendly retry timings."""
    defaults: dict[str, Any] = {"write_timeout": 5.0, "backoff_initial": 0.05, "backoff_max": 0.4}
    return FirestoreMirror(settings, **{**defaults, **options})


@pytest.fixture
async def mirror(settings: FirestoreSettings) -> AsyncIterator[FirestoreMirror]:
    """A started mirror, stopped after the test."""
    instance = make_mirror(settings)
    await instance.start()
    yield instance
    await instance.stop(timeout=2.0)


async def read(reader: AsyncClient, settings: FirestoreSettings, doc_id: str) -> Any:
    """Return the stored document as a dict, or None when it does not exist."""
    snapshot = await reader.collection(settings.collection).document(doc_id).get()
    return snapshot.to_dict()


def mirror_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    """Messages the mirror logged at exactly `level`."""
    return [
        record.getMessage()
        for record in caplog.records
        if record.name == _MIRROR_LOGGER and record.levelno == level
    ]


STATE: dict[str, Any] = {
    "flow_id": "flow-1",
    "status": "running",
    "progress": 0.25,
    "cancel_requested": False,
    "error": None,
    "nodes": {"node-a": {"status": "done", "outputs": ["asset-1", "asset-2"]}, "node-b": {}},
    "order": ["node-a", "node-b"],
    "attempt": 3,
}


async def test_submitted_doc_reads_back_equal(
    mirror: FirestoreMirror, reader: AsyncClient, settings: FirestoreSettings
) -> None:
    mirror.submit("exec-1", STATE)

    assert await mirror.flush(10.0)
    assert await read(reader, settings, "exec-1") == STATE
    assert mirror.healthy
    assert mirror.stats.writes == 1
    assert _ENV_HOST not in os.environ


async def test_rapid_submits_coalesce_to_last_state(
    mirror: FirestoreMirror, reader: AsyncClient, settings: FirestoreSettings
) -> None:
    mirror.submit("exec-1", {"step": -1})
    assert await mirror.flush(10.0)  # the emulator's first write is slow (JVM warm-up)

    for step in range(1000):
        mirror.submit("exec-1", {"step": step, "status": "running"})
        if step % 50 == 0:
            await asyncio.sleep(0)  # let the worker run now and then, as a real engine would
    mirror.submit("exec-1", {"status": "succeeded"})

    assert await mirror.flush(10.0)
    assert await read(reader, settings, "exec-1") == {"step": 999, "status": "succeeded"}
    stats = mirror.stats
    assert stats.submitted == 1002
    assert 2 <= stats.writes <= 50


async def test_partial_updates_merge_like_firestore(
    mirror: FirestoreMirror, reader: AsyncClient, settings: FirestoreSettings
) -> None:
    first = {"status": "running", "nodes": {"a": {"status": "done"}}, "m": {"x": 1}}
    mirror.submit("exec-1", first)
    mirror.submit("exec-1", {"nodes": {"b": {"status": "running"}}, "m": {}})

    assert await mirror.flush(10.0)
    assert await read(reader, settings, "exec-1") == {
        "status": "running",
        "nodes": {"a": {"status": "done"}, "b": {"status": "running"}},
        "m": {},  # an empty map replaces the field under set(merge=True), as Firestore does
    }
    assert mirror.stats.writes == 1


async def test_unsafe_keys_and_values_are_made_safe(
    mirror: FirestoreMirror, reader: AsyncClient, settings: FirestoreSettings
) -> None:
    data: dict[Any, Any] = {
        "": "empty key",
        "__name__": "reserved",
        "node.with.dots": {"a/b": 1, "`tick`": 2},
        7: "int key",
        "grid": [[1, 2], [3, [4]]],
        "huge": 2**70,
        "when": object,
    }
    mirror.submit("exec-1", data)

    assert await mirror.flush(10.0)
    assert await read(reader, settings, "exec-1") == {
        "~": "empty key",
        "~__name__": "reserved",
        "node.with.dots": {"a/b": 1, "`tick`": 2},
        "7": "int key",
        "grid": [{"values": [1, 2]}, {"values": [3, {"values": [4]}]}],
        "huge": str(2**70),
        "when": str(object),
    }
    assert mirror.stats.dropped_invalid == 0


async def test_rejected_doc_is_dropped_without_blocking_others(
    mirror: FirestoreMirror,
    reader: AsyncClient,
    settings: FirestoreSettings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mirror.submit("too-long", {"k" * 2000: 1})  # Firestore caps field paths at 1500 bytes
    mirror.submit("exec-1", {"status": "running"})
    mirror.submit("bad/id", {"status": "running"})

    assert await mirror.flush(10.0)
    assert await read(reader, settings, "exec-1") == {"status": "running"}
    assert await read(reader, settings, "too-long") is None
    assert mirror.stats.dropped_invalid == 2
    assert mirror.healthy
    warnings = mirror_records(caplog, logging.WARNING)
    assert any("too-long" in message for message in warnings)
    assert any("'bad/id'" in message for message in warnings)


async def test_outage_then_recovery(
    mirror: FirestoreMirror,
    reader: AsyncClient,
    settings: FirestoreSettings,
    firestore_emulator: FirestoreEmulator,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=_MIRROR_LOGGER)
    mirror.submit("exec-1", {"step": 0})
    assert await mirror.flush(10.0)
    await asyncio.to_thread(firestore_emulator.stop)

    began = time.perf_counter()
    for step in range(1, 101):
        mirror.submit("exec-1", {"step": step, "nodes": {f"n{step % 3}": step}})
    assert time.perf_counter() - began < 0.05

    assert not await mirror.flush(1.0)
    assert not mirror.healthy
    assert mirror.stats.failed_writes >= 2

    await asyncio.to_thread(firestore_emulator.start)  # in-memory data is gone after a restart
    assert await mirror.flush(20.0)
    assert mirror.healthy
    # The merged pending state: the latest step and every node touched while down.
    assert await read(reader, settings, "exec-1") == {
        "step": 100,
        "nodes": {"n0": 99, "n1": 100, "n2": 98},
    }
    failing = [m for m in mirror_records(caplog, logging.WARNING) if "failing" in m]
    recovered = [m for m in mirror_records(caplog, logging.INFO) if "recovered" in m]
    assert len(failing) == 1
    assert len(recovered) == 1


async def test_hung_emulator_hits_write_timeout_then_recovers(
    settings: FirestoreSettings, reader: AsyncClient, firestore_emulator: FirestoreEmulator
) -> None:
    mirror = make_mirror(settings, write_timeout=0.3)
    await mirror.start()
    try:
        mirror.submit("exec-1", {"step": 0})
        assert await mirror.flush(10.0)
        firestore_emulator.pause()
        await asyncio.sleep(0.3)  # SIGSTOP reaches a busy JVM's threads asynchronously
        mirror.submit("exec-1", {"step": 1})

        assert not await mirror.flush(1.0)
        assert not mirror.healthy
        assert mirror.stats.failed_writes >= 2  # each attempt gave up after 0.3 s

        firestore_emulator.resume()
        assert await mirror.flush(10.0)
        assert mirror.healthy
        assert await read(reader, settings, "exec-1") == {"step": 1}
    finally:
        firestore_emulator.resume()
        await mirror.stop(timeout=2.0)


@pytest.mark.parametrize("outage", ["stopped", "paused"])
async def test_stop_returns_within_timeout_while_emulator_down(
    settings: FirestoreSettings,
    firestore_emulator: FirestoreEmulator,
    caplog: pytest.LogCaptureFixture,
    outage: str,
) -> None:
    if outage == "stopped":
        await asyncio.to_thread(firestore_emulator.stop)
    else:
        firestore_emulator.pause()
    mirror = make_mirror(settings)
    await mirror.start()
    mirror.submit("exec-1", {"status": "running"})

    began = time.perf_counter()
    await mirror.stop(timeout=1.0)

    assert time.perf_counter() - began < 1.1
    assert not mirror.healthy
    assert mirror.pending_count == 1
    assert any("1 documents unwritten" in m for m in mirror_records(caplog, logging.WARNING))


async def test_pending_map_is_bounded_and_drops_oldest(
    settings: FirestoreSettings, reader: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    mirror = make_mirror(settings, max_pending=3)
    for index in range(6):
        mirror.submit(f"exec-{index}", {"index": index})
    mirror.submit("exec-5", {"index": 5, "final": True})  # an update, not a new doc: no drop

    assert mirror.pending_count == 3
    assert mirror.stats.dropped_overflow == 3
    assert len([m for m in mirror_records(caplog, logging.WARNING) if "dropping" in m]) == 1

    await mirror.start()
    try:
        assert await mirror.flush(10.0)
    finally:
        await mirror.stop(timeout=2.0)
    assert await read(reader, settings, "exec-2") is None
    assert await read(reader, settings, "exec-3") == {"index": 3}
    assert await read(reader, settings, "exec-5") == {"index": 5, "final": True}


async def test_flush_waits_only_for_earlier_submits(
    mirror: FirestoreMirror, settings: FirestoreSettings
) -> None:
    assert await mirror.flush(0.0)  # nothing submitted yet
    mirror.submit("exec-1", {"status": "running"})
    assert await mirror.flush(10.0)
    assert mirror.pending_count == 0
    assert mirror.stats.writes == 1
