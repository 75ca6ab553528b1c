"""The real Firestore emulator jar on a free port, which a test may stop and start again."""

from __future__ import annotations

import os
import shutil
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers._process import ServerProcess, free_port

JAR_ENV = "FLOWBOARD_FIRESTORE_EMULATOR_JAR"
_JAR_IN_SDK = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
DEFAULT_JAR = Path("/usr/lib/google-cloud-sdk") / _JAR_IN_SDK
_MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"


def jar_candidates() -> list[Path]:
    """Where the emulator jar may be: the env override, the default path, gcloud's SDK root."""
    candidates = [Path(os.environ[JAR_ENV])] if os.environ.get(JAR_ENV) else []
    candidates.append(DEFAULT_JAR)
    gcloud = shutil.which("gcloud")
    if gcloud is not None:
        # gcloud lives in <sdk root>/bin, often behind a symlink from /usr/bin.
        candidates.append(Path(gcloud).resolve().parent.parent / _JAR_IN_SDK)
    return candidates


@dataclass
class FirestoreEmulator:
    """One emulator port; start() and stop() may be called repeatedly."""

    java: str
    jar: Path
    port: int
    log_path: Path
    start_seconds: list[float] = field(default_factory=list)
    _server: ServerProcess | None = None

    @property
    def host(self) -> str:
        """The host:port for FirestoreSettings.emulator_host."""
        return f"127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        """True while the emulator process is alive."""
        process = self._server.process if self._server else None
        return process is not None and process.poll() is None

    def start(self) -> None:
        """Start the emulator and wait until its port accepts connections."""
        if self.running:
            return
        began = time.monotonic()
        argv = [
            self.java,
            "-cp",
            str(self.jar),
            _MAIN_CLASS,
            "start",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]
        self._server = ServerProcess(argv, self.port, self.log_path).start(timeout=60.0)
        self.start_seconds.append(time.monotonic() - began)

    def stop(self) -> None:
        """Stop the emulator; its (in-memory) data is lost."""
        if self._server is not None:
            self.resume()  # a stopped (SIGSTOP) process would not act on SIGTERM
            self._server.stop()
            self._server = None

    def pause(self) -> None:
        """Freeze the emulator: connections are accepted but nothing is answered."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        """Let a paused emulator run again."""
        self._signal(signal.SIGCONT)

    def _signal(self, signum: int) -> None:
        process = self._server.process if self._server else None
        if process is not None and process.poll() is None:
            os.killpg(process.pid, signum)


@pytest.fixture(scope="module")
def firestore_emulator_server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[FirestoreEmulator]:
    """Start the emulator once per test module; skip when java or the jar is missing."""
    java = shutil.which("java")
    if java is None:
        pytest.skip("java is not on PATH; the Firestore emulator needs a Java 11+ runtime")
    jar = next((path for path in jar_candidates() if path.is_file()), None)
    if jar is None:
        searched = ", ".join(str(path) for path in jar_candidates())
        pytest.skip(f"Firestore emulator jar not found (set {JAR_ENV}); searched: {searched}")
    root = tmp_path_factory.mktemp("firestore")
    emulator = FirestoreEmulator(java, jar, free_port(), root / "emulator.log")
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def firestore_emulator(firestore_emulator_server: FirestoreEmulator) -> FirestoreEmulator:
    """The module's emulator, running when the test begins (restarted if a test stopped it)."""
    firestore_emulator_server.resume()
    firestore_emulator_server.start()
    return firestore_emulator_server
