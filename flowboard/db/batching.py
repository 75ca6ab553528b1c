"""Group commit: concurrent single-document inserts and id lookups share round trips.

Every request of the run path writes or reads one small document. Sent one by one, the
database's per-command cost dominates under load; gathered while the previous batch is
in flight, a burst of requests costs a few commands. Alone, a call still goes out at
once (the batch of one leaves on the next turn of the event loop).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

from pymongo import ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.errors import BulkWriteError, ConnectionFailure, DuplicateKeyError, WriteError

Document = dict[str, Any]
Item = TypeVar("Item")
Result = TypeVar("Result")
DUPLICATE_KEY = 11000
MAX_BATCH = 500


@dataclass
class _Batcher(Generic[Item, Result]):
    """Queue items; one flush in flight at a time takes everything queued meanwhile."""

    flush: Callable[[list[Item]], Awaitable[list[Result | BaseException]]]
    _queue: list[tuple[Item, asyncio.Future[Result]]] = field(default_factory=list)
    _flusher: asyncio.Task[None] | None = None

    async def submit(self, item: Item) -> Result:
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._queue.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._drain(), name="flowboard.db.batch")
        return await future

    async def _drain(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            try:
                outcomes = await self.flush([item for item, _ in batch])
            except Exception as exc:  # the whole command failed: every caller gets it
                if isinstance(exc, ConnectionFailure):
                    # The server is dead or hung: what queued meanwhile would only wait
                    # out the same timeouts again, so it fails now as well.
                    batch, self._queue = batch + self._queue, []
                outcomes = [exc] * len(batch)
            for (_, future), outcome in zip(batch, outcomes, strict=True):
                if future.done():
                    continue  # its caller went away
                if isinstance(outcome, BaseException):
                    future.set_exception(outcome)
                else:
                    future.set_result(outcome)


def _insert_outcomes(count: int, error: BulkWriteError | None) -> list[BaseException | None]:
    outcomes: list[BaseException | None] = [None] * count
    for failed in error.details.get("writeErrors", []) if error else []:
        code, message = failed.get("code"), failed.get("errmsg", "write failed")
        kind = DuplicateKeyError if code == DUPLICATE_KEY else WriteError
        outcomes[failed["index"]] = kind(message, code, failed)
    return outcomes


@dataclass
class BatchedCollection:
    """One collection's batched insert and lookup by `_id`."""

    collection: AsyncCollection[Document]
    _inserts: _Batcher[Document, None] = field(init=False)
    _lookups: _Batcher[Any, Document | None] = field(init=False)
    _updates: _Batcher[tuple[Document, Document], None] = field(init=False)
    _replaces: _Batcher[tuple[Document, str], bool] = field(init=False)

    def __post_init__(self) -> None:
        self._inserts = _Batcher(self._insert_many)
        self._lookups = _Batcher(self._find_many)
        self._updates = _Batcher(self._update_many)
        self._replaces = _Batcher(self._replace_many)

    async def insert(self, doc: Document) -> None:
        """Insert one document; DuplicateKeyError as insert_one would raise it."""
        await self._inserts.submit(doc)

    async def get(self, doc_id: Any) -> Document | None:
        """The document with this `_id`, or None."""
        return await self._lookups.submit(doc_id)

    async def update(self, query: Document, update: Document) -> None:
        """update_one for a write whose caller need not learn whether it matched.

        (The batch reports how many matched in all, not which.)
        """
        await self._updates.submit((query, update))

    async def replace_if_version(self, doc: Document, field_name: str) -> bool:
        """Replace the document if its stored `field_name` is one less than `doc`'s."""
        return await self._replaces.submit((doc, field_name))

    async def _insert_many(self, docs: list[Document]) -> list[BaseException | None]:
        try:
            await self.collection.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            return _insert_outcomes(len(docs), exc)
        return _insert_outcomes(len(docs), None)

    async def get_in_org(self, doc_id: Any, org_id: str) -> Document | None:
        """The document with this `_id` if it belongs to the organisation, else None."""
        doc = await self.get(doc_id)
        return doc if doc is not None and doc.get("orgId") == org_id else None

    async def _by_ids(self, ids: list[Any]) -> dict[Any, Document]:
        return {d["_id"]: d async for d in self.collection.find({"_id": {"$in": ids}})}

    async def _find_many(self, ids: list[Any]) -> list[Document | BaseException | None]:
        found = await self._by_ids(ids)
        return [found.get(doc_id) for doc_id in ids]

    async def _update_many(
        self, ops: list[tuple[Document, Document]]
    ) -> list[BaseException | None]:
        await self.collection.bulk_write([UpdateOne(q, u) for q, u in ops], ordered=False)
        return [None] * len(ops)

    async def _replace_many(self, ops: list[tuple[Document, str]]) -> list[bool | BaseException]:
        requests = [ReplaceOne({"_id": doc["_id"], name: doc[name] - 1}, doc) for doc, name in ops]
        result = await self.collection.bulk_write(requests, ordered=False)
        if result.matched_count == len(ops):
            return [True] * len(ops)
        # Which ones missed is not reported: the ones that hit now hold exactly our document.
        # (Not just our version number: a writer that beat us wrote that same number.)
        stored = await self._by_ids([doc["_id"] for doc, _ in ops])
        return [_as_stored(stored.get(doc["_id"])) == _as_stored(doc) for doc, _ in ops]


def _as_stored(value: Any) -> Any:
    """A value as the database keeps it: datetimes in UTC, to the millisecond."""
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
        return value.replace(tzinfo=None, microsecond=value.microsecond // 1000 * 1000)
    if isinstance(value, dict):
        return {key: _as_stored(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_as_stored(item) for item in value]
    return value
