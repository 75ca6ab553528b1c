"""Mirror execution state into Firestore: coalesced, bounded, and never in the engine's way."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

from google.api_core import exceptions as google_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud.firestore import AsyncClient

from flowboard.config import FirestoreSettings

_LOGGER = logging.getLogger(__name__)

ClientFactory = Callable[[], AsyncClient]

DEFAULT_MAX_PENDING = 10_000
_INT64_LIMIT = 2**63
_MAX_ID_BYTES = 1500
# Firestore reserves names of the form __x__ for document ids and field names.
_RESERVED = re.compile(r"^__.*__$", re.DOTALL)
# Errors that mean this document's data can never be written: retrying would only stall others.
_INVALID_DATA = (google_exceptions.InvalidArgument, ValueError, TypeError)


@dataclass
class MirrorStats:
    """Counters since the mirror was created."""

    submitted: int = 0  # submit() calls accepted
    writes: int = 0  # documents written successfully
    failed_writes: int = 0  # write attempts that failed and will be retried
    dropped_overflow: int = 0  # pending documents dropped because the pending map was full
    dropped_invalid: int = 0  # submissions Firestore rejected, or with an unusable doc id


@dataclass
class _Pending:
    """The unwritten state of one document."""

    data: dict[str, Any]  # every submission not yet written, merged like set(merge=True) would
    first_seq: int  # sequence number of the oldest submission folded into `data`


def create_client(settings: FirestoreSettings) -> AsyncClient:
    """Build an AsyncClient for the configured emulator, or for Google Cloud."""
    if not settings.emulator_host:
        return AsyncClient(project=settings.project or None)
    credentials = AnonymousCredentials()  # type: ignore[no-untyped-call]
    client = AsyncClient(project=settings.project, credentials=credentials)
    # The library only reads FIRESTORE_EMULATOR_HOST in __init__ and keeps it in this attribute,
    # which selects an insecure channel and the emulator's auth header; setting it per client
    # targets the emulator without mutating os.environ for the whole process.
    client._emulator_host = settings.emulator_host
    return client


async def close_client(client: AsyncClient) -> None:
    """Close the client's gRPC channel, if it ever opened one."""
    # AsyncClient has no public close(); its GAPIC client (and channel) is created lazily here.
    api = getattr(client, "_firestore_api_internal", None)
    if api is not None:
        await api.transport.close()


class FirestoreMirror:
    """Write the latest state of each document to Firestore from one background task."""

    def __init__(
        self,
        settings: FirestoreSettings,
        client_factory: ClientFactory | None = None,
        *,
        max_pending: int = DEFAULT_MAX_PENDING,
        batch_size: int = 16,
        write_timeout: float = 5.0,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
    ) -> None:
        if max_pending < 1 or batch_size < 1:
            raise ValueError("max_pending and batch_size must be at least 1")
        self._collection = settings.collection
        self._factory = client_factory or partial(create_client, settings)
        self._max_pending = max_pending
        self._batch_size = batch_size
        self._write_timeout = write_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._pending: dict[str, _Pending] = {}
        self._in_flight: dict[str, _Pending] = {}
        self._seq = 0
        self._stats = MirrorStats()
        self._wakeup = asyncio.Event()
        self._progress = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        self._client: AsyncClient | None = None
        self._failures = 0
        self._last_error: BaseException | None = None
        self._overflowing = False

    @property
    def healthy(self) -> bool:
        """True while the worker runs and its last write attempt succeeded."""
        return self._task is not None and not self._task.done() and self._failures == 0

    @property
    def stats(self) -> MirrorStats:
        """A snapshot of the counters."""
        return dataclasses.replace(self._stats)

    @property
    def pending_count(self) -> int:
        """Documents waiting to be written, including those being written now."""
        return len(self._pending) + len(self._in_flight)

    async def start(self) -> None:
        """Start the background writer."""
        if self._task is not None:
            return
        self._task = asyncio.create_task(self._run(), name="flowboard-firestore-mirror")
        self._task.add_done_callback(_log_crash)

    async def stop(self, timeout: float = 5.0) -> None:
        """Flush what can be written within `timeout`, then cancel and await the worker."""
        task = self._task
        if task is None:
            return
        # Keep a slice of the budget for the cancellation, so the whole stop fits in `timeout`.
        cancel_budget = min(0.5, timeout / 4)
        if not task.done():
            await self.flush(timeout - cancel_budget)
        task.cancel()
        done, _ = await asyncio.wait({task}, timeout=cancel_budget)
        if not done:
            _LOGGER.warning("firestore mirror: worker did not stop within %.2fs", cancel_budget)
        self._task = None
        if self.pending_count:
            _LOGGER.warning(
                "firestore mirror: stopped with %d documents unwritten", self.pending_count
            )

    def submit(self, doc_id: str, data: Mapping[str, Any]) -> None:
        """Queue the state of one document; never blocks and never raises."""
        try:
            self._submit(doc_id, data)
        except Exception:
            _LOGGER.exception("firestore mirror: could not queue doc %s", doc_id)

    async def flush(self, timeout: float) -> bool:
        """Wait until everything submitted so far is written (or dropped, which is logged)."""
        target = self._seq
        try:
            async with asyncio.timeout(max(timeout, 0)), self._progress:
                await self._progress.wait_for(lambda: self._oldest_unwritten() > target)
        except TimeoutError:
            return False
        return True

    def _submit(self, doc_id: str, data: Mapping[str, Any]) -> None:
        problem = _doc_id_problem(doc_id)
        if problem is not None:
            self._stats.dropped_invalid += 1
            _LOGGER.warning("firestore mirror: dropped doc %r: %s", doc_id, problem)
            return
        clean = _clean_map(data)
        self._seq += 1
        self._stats.submitted += 1
        entry = self._pending.get(doc_id)
        if entry is None:
            self._pending[doc_id] = _Pending(clean, self._seq)
            self._trim()
        else:
            _merge_into(entry.data, clean)
        self._wakeup.set()

    def _trim(self) -> None:
        while len(self._pending) > self._max_pending:
            doc_id = next(iter(self._pending))
            del self._pending[doc_id]
            self._stats.dropped_overflow += 1
            if not self._overflowing:
                self._overflowing = True
                _LOGGER.warning(
                    "firestore mirror: %d documents pending, dropping the oldest (first: doc %s)",
                    self._max_pending,
                    doc_id,
                )

    def _oldest_unwritten(self) -> int:
        # Pending entries are ordered by first_seq and in-flight ones precede them all.
        firsts = [entry.first_seq for entry in self._in_flight.values()]
        if self._pending:
            firsts.append(next(iter(self._pending.values())).first_seq)
        return min(firsts, default=self._seq + 1)

    async def _run(self) -> None:
        try:
            while True:  # ends when stop() cancels the task
                if not self._pending:
                    self._overflowing = False
                    self._wakeup.clear()
                    await self._wakeup.wait()
                elif not await self._write_round():
                    await asyncio.sleep(self._next_delay())
        finally:
            await self._drop_client()

    async def _write_round(self) -> bool:
        for doc_id in list(self._pending)[: self._batch_size]:
            self._in_flight[doc_id] = self._pending.pop(doc_id)
        try:
            client = await self._ensure_client()
            await asyncio.gather(*(self._write_one(client, doc_id) for doc_id in self._in_flight))
        except Exception as exc:  # the client could not be built: an outage like any other
            self._last_error = exc
            self._stats.failed_writes += len(self._in_flight)
        finally:
            ok = not self._in_flight
            self._requeue_in_flight()
        self._record(ok)
        if not ok:
            await self._drop_client()
        async with self._progress:
            self._progress.notify_all()
        return ok

    async def _write_one(self, client: AsyncClient, doc_id: str) -> None:
        entry = self._in_flight[doc_id]
        try:
            ref = client.collection(self._collection).document(doc_id)
            async with asyncio.timeout(self._write_timeout):
                await ref.set(entry.data, merge=True, retry=None, timeout=self._write_timeout)
        except _INVALID_DATA as exc:
            del self._in_flight[doc_id]
            self._stats.dropped_invalid += 1
            _LOGGER.warning("firestore mirror: Firestore rejected doc %s, dropped: %s", doc_id, exc)
        except Exception as exc:  # outages of every kind are retried by the worker
            self._last_error = exc
            self._stats.failed_writes += 1
        else:
            del self._in_flight[doc_id]
            self._stats.writes += 1

    def _requeue_in_flight(self) -> None:
        if not self._in_flight:
            return
        for doc_id, entry in self._in_flight.items():
            newer = self._pending.pop(doc_id, None)
            if newer is not None:
                _merge_into(entry.data, newer.data)
        # Failed entries are older than every pending one, so they go back in front.
        self._pending = {**self._in_flight, **self._pending}
        self._in_flight = {}
        self._trim()

    def _record(self, ok: bool) -> None:
        if ok and self._failures:
            _LOGGER.info(
                "firestore mirror: writes recovered after %d failed attempts", self._failures
            )
            self._failures = 0
        elif not ok:
            if not self._failures:
                _LOGGER.warning(
                    "firestore mirror: writes failing, retrying with backoff: %r", self._last_error
                )
            self._failures += 1

    def _next_delay(self) -> float:
        initial, ceiling = self._backoff
        delay: float = min(ceiling, initial * 2 ** min(self._failures - 1, 30))
        return random.uniform(delay / 2, delay)

    async def _ensure_client(self) -> AsyncClient:
        if self._client is None:
            # Resolving default credentials may read files or query a metadata server.
            self._client = await asyncio.to_thread(self._factory)
        return self._client

    async def _drop_client(self) -> None:
        # A fresh channel after a failure: gRPC's own reconnect backoff grows to two minutes.
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await close_client(client)
        except Exception as exc:
            _LOGGER.debug("firestore mirror: closing the client failed: %r", exc)


def _log_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _LOGGER.error("firestore mirror: worker crashed", exc_info=task.exception())


def _doc_id_problem(doc_id: object) -> str | None:
    if not isinstance(doc_id, str) or not doc_id:
        return "document id must be a non-empty string"
    if "/" in doc_id or doc_id in {".", ".."} or _RESERVED.match(doc_id):
        return "document id is not allowed by Firestore"
    if len(doc_id.encode()) > _MAX_ID_BYTES:
        return "document id is longer than 1500 bytes"
    return None


def _merge_into(target: dict[str, Any], update: Mapping[str, Any]) -> None:
    """Apply `update` to `target` the way Firestore's set(merge=True) applies it to a document."""
    for key, value in update.items():
        current = target.get(key)
        # An empty map replaces the field in Firestore too; lists and scalars always replace.
        if isinstance(value, dict) and value and isinstance(current, dict):
            _merge_into(current, value)
        else:
            target[key] = value


def _clean_map(data: Mapping[Any, Any]) -> dict[str, Any]:
    """Copy JSON-like data into a form Firestore accepts."""
    return {_clean_key(key): _clean_value(value, in_array=False) for key, value in data.items()}


def _clean_key(key: object) -> str:
    text = key if isinstance(key, str) else str(key)
    # Empty and __reserved__ field names are rejected by Firestore.
    return f"~{text}" if not text or _RESERVED.match(text) else text


def _clean_value(value: Any, in_array: bool) -> Any:
    if value is None or isinstance(value, bool | str | float):
        return value
    if isinstance(value, int):
        return value if -_INT64_LIMIT <= value < _INT64_LIMIT else str(value)
    if isinstance(value, Mapping):
        return _clean_map(value)
    if isinstance(value, list | tuple):
        items = [_clean_value(item, in_array=True) for item in value]
        # Firestore arrays cannot hold arrays directly; wrap inner ones in a map.
        return {"values": items} if in_array else items
    return str(value)
