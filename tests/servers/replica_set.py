"""`secantusd-py` as a single-node replica set for the session: change streams need one."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pymongo
import pytest

from tests.servers._process import ServerProcess, free_port, program


@pytest.fixture(scope="session")
def replica_set(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start secantusd-py as a replica-set primary on a free loopback port; yield its URI.

    (It advertises a single-node replica set unless `--standalone` is given; checked
    here, since a standalone server refuses change streams.)
    """
    root = tmp_path_factory.mktemp("replica-set")
    port = free_port()
    argv = [program("secantusd-py"), "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--storage-path", str(root / "data"), "--log-level", "WARNING"]
    server = ServerProcess(argv, port, root / "server.log").start()
    uri = f"mongodb://127.0.0.1:{port}/?directConnection=true"
    try:
        client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
            uri, serverSelectionTimeoutMS=10_000
        )
        with client:
            hello = client.admin.command("hello")
        if not hello.get("setName"):
            raise RuntimeError(f"secantusd-py is not a replica set: {hello}")
        yield uri
    finally:
        server.stop()
