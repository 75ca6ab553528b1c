"""Group commit against a real secantusd-py: fewer commands, the same per-caller outcomes."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import DuplicateKeyError, InvalidOperation

from flowboard.db.database import Database

Doc = dict[str, Any]


class CommandCounter(monitoring.CommandListener):
    """Counts the commands the driver sends, by name (pymongo's command monitoring)."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.counts[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
async def counted(
    mongo_server: str, mongo_db_name: str
) -> AsyncIterator[tuple[Database, Counter[str]]]:
    counter = CommandCounter()
    client: AsyncMongoClient[Doc] = AsyncMongoClient(mongo_server, event_listeners=[counter])
    yield Database(client, client[mongo_db_name]), counter.counts
    await client.close()


async def test_concurrent_inserts_share_commands_and_all_land(
    counted: tuple[Database, Counter[str]],
) -> None:
    database, counts = counted
    batched = database.batched("things")
    await asyncio.gather(*(batched.insert({"_id": f"t{i}", "n": i}) for i in range(300)))
    stored = {d["_id"]: d["n"] async for d in database.db["things"].find({})}
    assert stored == {f"t{i}": i for i in range(300)}
    assert 1 <= counts["insert"] <= 10, counts


async def test_a_duplicate_fails_only_its_own_caller(
    counted: tuple[Database, Counter[str]],
) -> None:
    database, _ = counted
    batched = database.batched("things")
    await batched.insert({"_id": "taken"})
    outcomes = await asyncio.gather(
        *(batched.insert({"_id": i}) for i in ("a", "taken", "b")), return_exceptions=True
    )
    assert outcomes[0] is None and outcomes[2] is None
    assert isinstance(outcomes[1], DuplicateKeyError)
    assert await database.db["things"].count_documents({}) == 3


async def test_concurrent_lookups_share_commands_and_answer_each_caller(
    counted: tuple[Database, Counter[str]],
) -> None:
    database, counts = counted
    await database.db["things"].insert_many([{"_id": f"t{i}", "n": i} for i in range(100)])
    batched = database.batched("things")
    ids = [f"t{i}" for i in range(100)] + ["missing", "t7"]
    found = await asyncio.gather(*(batched.get(i) for i in ids))
    assert [d["n"] if d else None for d in found] == [*range(100), None, 7]
    assert 1 <= counts["find"] <= 5, counts


async def test_a_failed_command_reaches_every_caller(
    counted: tuple[Database, Counter[str]],
) -> None:
    database, _ = counted
    batched = database.batched("things")
    await database.client.close()
    outcomes = await asyncio.gather(
        *(batched.insert({"_id": i}) for i in range(5)),
        batched.get("x"),
        return_exceptions=True,
    )
    assert all(isinstance(o, InvalidOperation) for o in outcomes), outcomes


async def test_a_caller_that_goes_away_does_not_break_the_batch(
    counted: tuple[Database, Counter[str]],
) -> None:
    database, _ = counted
    batched = database.batched("things")
    gone = asyncio.create_task(batched.insert({"_id": "gone"}))
    stays = asyncio.create_task(batched.insert({"_id": "stays"}))
    await asyncio.sleep(0)
    gone.cancel()
    await stays
    assert await database.db["things"].find_one({"_id": "stays"}) is not None


async def test_a_replace_that_lost_to_a_writer_of_the_same_version_is_reported_lost(
    counted: tuple[Database, Counter[str]],
) -> None:
    database, _ = counted
    raw = database.db["versioned"]
    await raw.insert_many([{"_id": i, "version": 1, "owner": "us"} for i in ("a", "b")])
    # Another writer got to "b" first and wrote its own version 2.
    await raw.update_one({"_id": "b"}, {"$set": {"version": 2, "owner": "them"}})
    batched = database.batched("versioned")
    won = await asyncio.gather(
        batched.replace_if_version({"_id": "a", "version": 2, "owner": "us"}, "version"),
        batched.replace_if_version({"_id": "b", "version": 2, "owner": "us"}, "version"),
    )
    assert list(won) == [True, False]
    assert {d["_id"]: d["owner"] async for d in raw.find({})} == {"a": "us", "b": "them"}
