"""A real `secantusd-py` server for the whole test session; each test gets its own database."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.servers._process import ServerProcess, free_port, program


@pytest.fixture(scope="session")
def mongo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start secantusd-py on a free loopback port; yield its URI."""
    root = tmp_path_factory.mktemp("secantus")
    port = free_port()
    server = ServerProcess(
        [
            program("secantusd-py"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--storage-path",
            str(root / "data"),
            "--log-level",
            "WARNING",
        ],
        port,
        root / "server.log",
    ).start()
    yield f"mongodb://127.0.0.1:{port}/?directConnection=true"
    server.stop()


@pytest.fixture
def mongo_db_name() -> str:
    """A database name of this test's own."""
    return f"t_{uuid.uuid4().hex[:12]}"
