"""A real `moto_server` (S3 and friends) for the whole test session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.servers._process import ServerProcess, free_port, program


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start moto_server on a free loopback port; yield its endpoint URL."""
    root = tmp_path_factory.mktemp("moto")
    port = free_port()
    server = ServerProcess(
        [program("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        port,
        root / "server.log",
    ).start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
