"""Stream a large generated payload through a storage backend and watch this process's RSS.

Run: .venv/bin/python bench/storage_stream.py --backend s3 --size-mb 500
For s3 a private moto_server is started on a free port (it keeps the object in its own
memory, which is a separate process and not measured).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aioboto3
import psutil
from _util import RssSampler

from flowboard.config import StorageSettings
from flowboard.storage.base import Storage, StoredObject
from flowboard.storage.local import LocalStorage
from flowboard.storage.s3 import SHA256_METADATA, S3Storage

MiB = 1 << 20
TARGET_RISE_MIB = 64
KEY = "bench/payload.bin"


async def payload(size: int, chunk: int, seed: int) -> AsyncIterator[bytes]:
    """Yield `size` pseudo-random bytes in chunks; never more than one chunk alive."""
    rng = random.Random(seed)
    left = size
    while left > 0:
        n = min(chunk, left)
        left -= n
        yield rng.randbytes(n)
        # Let other tasks (and the sampler's GIL share) run between chunks.
        await asyncio.sleep(0)


def expected_sha256(size: int, chunk: int, seed: int) -> str:
    """Regenerate the payload outside the timed section and hash it."""
    rng = random.Random(seed)
    digest = hashlib.sha256()
    left = size
    while left > 0:
        n = min(chunk, left)
        left -= n
        digest.update(rng.randbytes(n))
    return digest.hexdigest()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    """Run moto_server on a free loopback port; yield its endpoint URL."""
    beside = Path(sys.executable).parent / "moto_server"
    program = str(beside) if beside.exists() else (shutil.which("moto_server") or "moto_server")
    port = _free_port()
    proc = subprocess.Popen(
        [program, "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("moto_server did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(10)


@contextlib.asynccontextmanager
async def open_backend(backend: str, part_mb: int) -> AsyncIterator[Storage]:
    """Yield the chosen storage, with its server or directory, cleaned up afterwards."""
    if backend == "local":
        with tempfile.TemporaryDirectory(prefix="flowboard-bench-") as root:
            yield LocalStorage(Path(root), "")
        return
    with moto_server() as endpoint:
        settings = StorageSettings(
            backend="s3",
            s3_bucket="bench",
            s3_endpoint_url=endpoint,
            s3_region="us-east-1",
            s3_access_key_id="bench",
            s3_secret_access_key="bench",
            s3_part_bytes=part_mb * MiB,
        )
        async with S3Storage(settings) as storage:
            await storage.ensure_bucket()
            yield storage


async def stored_digest(storage: Storage, stored: StoredObject) -> str:
    """Return the digest the backend recorded (S3 metadata, read by a separate client)."""
    if isinstance(storage, S3Storage):
        cfg = storage.settings
        async with aioboto3.Session().client(
            "s3",
            endpoint_url=cfg.s3_endpoint_url,
            region_name=cfg.s3_region,
            aws_access_key_id=cfg.s3_access_key_id,
            aws_secret_access_key=cfg.s3_secret_access_key,
        ) as client:
            head = await client.head_object(Bucket=storage.bucket, Key=stored.key)
        return str(head["Metadata"].get(SHA256_METADATA, ""))
    digest = hashlib.sha256()
    async for chunk in storage.get_stream(stored.key, MiB):
        digest.update(chunk)
    return digest.hexdigest()


async def run(args: argparse.Namespace) -> bool:
    """Upload the payload once and print the figures; return whether the target was met."""
    size = args.size_mb * MiB
    chunk = args.chunk_kb * 1024
    async with open_backend(args.backend, args.part_mb) as storage:
        # Warm up imports, connection pool and thread pool before taking the baseline.
        await storage.put_stream("bench/warmup", payload(64 * 1024, chunk, 1), "application/x")
        gc.collect()
        baseline = psutil.Process().memory_info().rss
        started = time.perf_counter()
        with RssSampler(interval=0.002) as sampler:
            stored = await storage.put_stream(
                KEY, payload(size, chunk, args.seed), "application/octet-stream"
            )
        elapsed = time.perf_counter() - started
        recorded = await stored_digest(storage, stored)
    expected = expected_sha256(size, chunk, args.seed)
    rise = (sampler.peak - baseline) / MiB
    ok_size = stored.size == size
    ok_hash = stored.sha256 == expected == recorded
    passed = rise < TARGET_RISE_MIB and ok_size and ok_hash
    part = f" part={args.part_mb} MiB" if args.backend == "s3" else ""
    print(f"backend={args.backend} size={args.size_mb} MiB chunk={args.chunk_kb} KiB{part}")
    print(f"baseline RSS: {baseline / MiB:.1f} MiB")
    print(f"peak RSS:     {sampler.peak / MiB:.1f} MiB ({sampler.samples} samples)")
    print(f"RSS rise:     {rise:.1f} MiB")
    print(f"throughput:   {args.size_mb / elapsed:.1f} MiB/s ({elapsed:.2f} s)")
    print(f"size ok: {ok_size}; sha256 ok (streamed == regenerated == stored): {ok_hash}")
    print(f"{'PASS' if passed else 'FAIL'}: target RSS rise < {TARGET_RISE_MIB} MiB")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["s3", "local"], default="s3")
    parser.add_argument("--size-mb", type=int, default=500, help="payload size in MiB")
    parser.add_argument("--chunk-kb", type=int, default=1024, help="producer chunk size in KiB")
    parser.add_argument(
        "--part-mb", type=int, default=StorageSettings().s3_part_bytes // MiB, help="S3 part MiB"
    )
    parser.add_argument("--seed", type=int, default=20240611)
    args = parser.parse_args()
    sys.exit(0 if asyncio.run(run(args)) else 1)


if __name__ == "__main__":
    main()
