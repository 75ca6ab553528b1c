"""Storage backends against a real moto_server process and a temporary directory."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aioboto3
import aiohttp
import pytest
from botocore.exceptions import ClientError

from flowboard.config import Settings, StorageSettings
from flowboard.storage.base import (
    InvalidKey,
    ObjectNotFound,
    Storage,
    StorageBackend,
    StorageError,
    StoredObject,
    validate_key,
)
from flowboard.storage.factory import open_storage
from flowboard.storage.local import LocalStorage
from flowboard.storage.s3 import S3Storage

MiB = 1 << 20
S3_LOGGER = "flowboard.storage.s3"


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def _failing(data: bytes, size: int) -> AsyncIterator[bytes]:
    async for chunk in _chunks(data, size):
        yield chunk
    raise RuntimeError("source broke")


async def _collect(stream: AsyncIterator[bytes]) -> bytes:
    return b"".join([chunk async for chunk in stream])


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def _expect(obj: StoredObject, data: bytes) -> None:
    assert obj.size == len(data)
    assert obj.sha256 == hashlib.sha256(data).hexdigest()


@pytest.fixture
def local(tmp_path: Path) -> LocalStorage:
    return LocalStorage(tmp_path / "media", "https://cdn.example/")


@pytest.fixture
def s3_settings(moto_server: str) -> StorageSettings:
    """Settings for a bucket of this test's own."""
    return StorageSettings(
        backend="s3",
        s3_bucket=f"t-{uuid.uuid4().hex[:16]}",
        s3_endpoint_url=moto_server,
        # moto refuses CreateBucket without a LocationConstraint for region "auto".
        s3_region="us-east-1",
        s3_access_key_id="testing",
        s3_secret_access_key="testing",
        s3_part_bytes=5 * MiB,
    )


@pytest.fixture
async def s3(s3_settings: StorageSettings) -> AsyncIterator[S3Storage]:
    async with S3Storage(s3_settings) as storage:
        await storage.ensure_bucket()
        yield storage


@pytest.fixture
async def admin(moto_server: str) -> AsyncIterator[Any]:
    """A separate client to inspect the bucket behind the storage's back."""
    session = aioboto3.Session()
    async with session.client(
        "s3",
        endpoint_url=moto_server,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        yield client


# --- keys and records ---------------------------------------------------------------


@pytest.mark.parametrize("key", ["a", "videos/2024/clip-01.mp4", "x_y.Z", "a" * 512, ".hidden"])
def test_validate_key_accepts_safe_relative_paths(key: str) -> None:
    assert validate_key(key) == key


@pytest.mark.parametrize(
    "key",
    [
        "",
        "/etc/passwd",
        "../x",
        "a/../../x",
        "..",
        "a//b",
        "a/./b",
        "a/",
        "a b",
        "a\\b",
        "é.mp4",
        "a?b",
        "a" * 513,
    ],
)
def test_validate_key_refuses_unsafe_keys(key: str) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key)


def test_stored_object_to_json_is_camel_case() -> None:
    obj = StoredObject(StorageBackend.S3, "b", "k.mp4", "video/mp4", 3, "ab")
    assert obj.to_json() == {
        "backend": "s3",
        "bucket": "b",
        "key": "k.mp4",
        "contentType": "video/mp4",
        "size": 3,
        "sha256": "ab",
    }


# --- local ---------------------------------------------------------------------------


async def test_local_round_trip_is_atomic_and_hashed(local: LocalStorage) -> None:
    data = os.urandom(3 * MiB + 12345)
    obj = await local.put_stream("flows/f1/out.mp4", _chunks(data, 100_003), "video/mp4")
    _expect(obj, data)
    assert (obj.backend, obj.bucket, obj.key) == (StorageBackend.LOCAL, None, "flows/f1/out.mp4")
    assert _files(local.root) == ["flows/f1/out.mp4"]
    assert local.path_for("flows/f1/out.mp4").read_bytes() == data
    assert await _collect(local.get_stream("flows/f1/out.mp4", chunk_size=70_000)) == data
    assert await local.exists("flows/f1/out.mp4")
    await local.delete("flows/f1/out.mp4")
    await local.delete("flows/f1/out.mp4")
    assert not await local.exists("flows/f1/out.mp4")
    with pytest.raises(ObjectNotFound):
        await _collect(local.get_stream("flows/f1/out.mp4"))


async def test_local_failed_stream_keeps_old_version(local: LocalStorage) -> None:
    await local.put_stream("clip.mp4", _chunks(b"old", 3), "video/mp4")
    with pytest.raises(RuntimeError, match="source broke"):
        await local.put_stream("clip.mp4", _failing(os.urandom(MiB), 65536), "video/mp4")
    assert _files(local.root) == ["clip.mp4"]
    assert local.path_for("clip.mp4").read_bytes() == b"old"


async def test_local_write_error_is_storage_error(local: LocalStorage) -> None:
    (local.root / "taken" / "inner").mkdir(parents=True)
    with pytest.raises(StorageError, match="cannot write"):
        await local.put_stream("taken", _chunks(b"data", 2), "text/plain")
    await local.put_stream("file", _chunks(b"data", 2), "text/plain")
    with pytest.raises(StorageError, match="cannot write"):
        await local.put_stream("file/below", _chunks(b"data", 2), "text/plain")
    assert _files(local.root) == ["file"]


async def test_local_put_file_streams_the_file(local: LocalStorage, tmp_path: Path) -> None:
    source = tmp_path / "render.mp4"
    data = os.urandom(2 * MiB + 1)
    source.write_bytes(data)
    obj = await local.put_file("r/render.mp4", source, "video/mp4")
    _expect(obj, data)
    assert local.path_for("r/render.mp4").read_bytes() == data


async def test_local_refuses_traversal(local: LocalStorage, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    local.root.mkdir(parents=True)
    (local.root / "link").symlink_to(outside, target_is_directory=True)
    for key in ("../outside/secret", "/etc/passwd", "link/secret"):
        with pytest.raises(InvalidKey):
            local.path_for(key)
    with pytest.raises(InvalidKey):
        await _collect(local.get_stream("link/secret"))
    with pytest.raises(InvalidKey):
        await local.put_stream("link/evil", _chunks(b"x", 1), "text/plain")
    assert _files(outside) == ["secret"]


async def test_local_url_for(tmp_path: Path, local: LocalStorage) -> None:
    assert await local.url_for("a/b.mp4") == "https://cdn.example/media/a/b.mp4"
    assert await LocalStorage(tmp_path, "").url_for("a/b.mp4") == "/media/a/b.mp4"


async def test_open_storage_local_uses_data_dir(tmp_path: Path) -> None:
    async with open_storage(Settings(data_dir=str(tmp_path))) as storage:
        assert isinstance(storage, LocalStorage)
        await storage.put_stream("k", _chunks(b"hello", 2), "text/plain")
    assert (tmp_path / "media" / "k").read_bytes() == b"hello"


# --- S3 ------------------------------------------------------------------------------


async def _head(admin: Any, bucket: str, key: str) -> dict[str, Any]:
    result: dict[str, Any] = await admin.head_object(Bucket=bucket, Key=key)
    return result


async def _pending_uploads(admin: Any, bucket: str) -> list[Any]:
    listed = await admin.list_multipart_uploads(Bucket=bucket)
    return list(listed.get("Uploads", []))


async def test_s3_small_object_uses_one_put(
    s3: S3Storage, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=S3_LOGGER)
    data = os.urandom(300_000)
    obj = await s3.put_stream("v/small.mp4", _chunks(data, 65536), "video/mp4")
    _expect(obj, data)
    assert (obj.backend, obj.bucket) == (StorageBackend.S3, s3.bucket)
    head = await _head(admin, s3.bucket, "v/small.mp4")
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "video/mp4"
    assert head["Metadata"] == {"sha256": obj.sha256}
    assert "multipart upload started" not in caplog.text
    assert await _collect(s3.get_stream("v/small.mp4")) == data


async def test_s3_multipart_object(
    s3: S3Storage, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=S3_LOGGER)
    data = os.urandom(12 * MiB)
    obj = await s3.put_stream("v/big.mp4", _chunks(data, 777_777), "video/mp4")
    _expect(obj, data)
    assert "stored key=v/big.mp4 size=12582912 parts=3" in caplog.text
    head = await _head(admin, s3.bucket, "v/big.mp4")
    assert head["ContentLength"] == len(data)
    assert head["ContentType"] == "video/mp4"
    assert head["Metadata"] == {"sha256": obj.sha256}
    assert await _pending_uploads(admin, s3.bucket) == []
    got = hashlib.sha256()
    async for chunk in s3.get_stream("v/big.mp4", chunk_size=MiB):
        got.update(chunk)
    assert got.hexdigest() == obj.sha256


async def test_s3_put_file(s3: S3Storage, admin: Any, tmp_path: Path) -> None:
    source = tmp_path / "render.mp4"
    data = os.urandom(6 * MiB)
    source.write_bytes(data)
    obj = await s3.put_file("r.mp4", source, "video/mp4")
    _expect(obj, data)
    assert (await _head(admin, s3.bucket, "r.mp4"))["ContentLength"] == len(data)


async def test_s3_failing_stream_aborts_multipart(
    s3: S3Storage, admin: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger=S3_LOGGER)
    with pytest.raises(RuntimeError, match="source broke"):
        await s3.put_stream("v/broken.mp4", _failing(os.urandom(11 * MiB), MiB), "video/mp4")
    assert "multipart upload started key=v/broken.mp4" in caplog.text
    assert "aborted multipart upload key=v/broken.mp4" in caplog.text
    assert await _pending_uploads(admin, s3.bucket) == []
    assert not await s3.exists("v/broken.mp4")


async def test_s3_cancelled_upload_aborts_multipart(s3: S3Storage, admin: Any) -> None:
    first_part_sent = asyncio.Event()

    async def stalled() -> AsyncIterator[bytes]:
        yield os.urandom(5 * MiB)
        # put_stream asks for more only after the full part went out.
        first_part_sent.set()
        await asyncio.Event().wait()
        yield b""

    task = asyncio.create_task(s3.put_stream("v/stalled.mp4", stalled(), "video/mp4"))
    await first_part_sent.wait()
    assert len(await _pending_uploads(admin, s3.bucket)) == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await _pending_uploads(admin, s3.bucket) == []
    assert not await s3.exists("v/stalled.mp4")


async def test_s3_missing_object(s3: S3Storage) -> None:
    assert not await s3.exists("nope.mp4")
    with pytest.raises(ObjectNotFound):
        await _collect(s3.get_stream("nope.mp4"))
    await s3.delete("nope.mp4")
    with pytest.raises(InvalidKey):
        await s3.exists("../nope.mp4")


async def test_s3_delete(s3: S3Storage) -> None:
    await s3.put_stream("d.txt", _chunks(b"bye", 3), "text/plain")
    assert await s3.exists("d.txt")
    await s3.delete("d.txt")
    assert not await s3.exists("d.txt")


async def test_s3_presigned_url_serves_the_bytes(s3: S3Storage) -> None:
    data = os.urandom(200_000)
    await s3.put_stream("p/clip.mp4", _chunks(data, 65536), "video/mp4")
    url = await s3.url_for("p/clip.mp4")
    assert "X-Amz-Signature=" in url
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "video/mp4"
        assert await response.read() == data


async def test_s3_objects_answer_with_type_and_disposition(s3: S3Storage, admin: Any) -> None:
    """The bucket serves what /media/ would: images/videos inline, anything else attached.

    Stored with each object (single PUT, multipart and its digest copy) and signed into
    presigned URLs; nosniff and a CSP need a CDN in front (S3 keeps no such header).
    """
    cases = [
        ("a/small.png", b"\x89PNG" + os.urandom(1000), "image/png", 'inline; filename="small.png"'),
        ("a/big.mp4", os.urandom(6 * MiB), "video/mp4", 'inline; filename="big.mp4"'),
        ("a/page.html", b"<script>1</script>", "text/html", 'attachment; filename="page.html"'),
    ]
    for key, data, content_type, disposition in cases:
        await s3.put_stream(key, _chunks(data, MiB), content_type)
        head = await admin.head_object(Bucket=s3.bucket, Key=key)
        assert head["ContentType"] == content_type
        assert head["ContentDisposition"] == disposition
        assert head["Metadata"]["sha256"] == hashlib.sha256(data).hexdigest()
        url = await s3.url_for(key)
        async with aiohttp.ClientSession() as http, http.get(url) as response:
            assert response.status == 200
            assert response.headers["Content-Type"] == content_type
            assert response.headers["Content-Disposition"] == disposition


async def test_s3_url_forms(s3_settings: StorageSettings, moto_server: str) -> None:
    public = s3_settings.model_copy(update={"public_base_url": "https://media.example/"})
    assert await S3Storage(public).url_for("a/b.mp4") == "https://media.example/a/b.mp4"
    plain = s3_settings.model_copy(update={"s3_presign": False})
    async with S3Storage(plain) as storage:
        url = await storage.url_for("a/b.mp4")
    assert url == f"{moto_server}/{s3_settings.s3_bucket}/a/b.mp4"


async def test_s3_ensure_bucket_names_region(s3_settings: StorageSettings, admin: Any) -> None:
    settings = s3_settings.model_copy(update={"s3_region": "eu-west-1"})
    async with S3Storage(settings) as storage:
        await storage.ensure_bucket()
        await storage.ensure_bucket()
    location = await admin.get_bucket_location(Bucket=settings.s3_bucket)
    assert location["LocationConstraint"] == "eu-west-1"


async def test_s3_storage_refuses_use_when_closed(s3_settings: StorageSettings) -> None:
    storage = S3Storage(s3_settings)
    with pytest.raises(StorageError, match="not open"):
        await storage.exists("k")


async def test_open_storage_s3_creates_bucket(
    s3_settings: StorageSettings, admin: Any, tmp_path: Path
) -> None:
    settings = Settings(data_dir=str(tmp_path), storage=s3_settings)
    async with open_storage(settings) as storage:
        assert storage.backend is StorageBackend.S3
        await storage.put_stream("k", _chunks(b"hello", 2), "text/plain")
    await admin.head_bucket(Bucket=s3_settings.s3_bucket)
    assert (await _head(admin, s3_settings.s3_bucket, "k"))["ContentLength"] == 5
    with pytest.raises(ClientError):
        await _head(admin, s3_settings.s3_bucket, "missing")


def test_backends_satisfy_the_protocol(local: LocalStorage, s3_settings: StorageSettings) -> None:
    backends: list[Storage] = [local, S3Storage(s3_settings)]
    assert [b.backend for b in backends] == [StorageBackend.LOCAL, StorageBackend.S3]
