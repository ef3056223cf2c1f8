"""s3:// reader against a moto server on loopback: objects, limits, errors, the client cache."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.images import jpeg
from tests.worker.reading import code_of, limits
from worker import sources
from worker.errors import ErrorCode, ImageError
from worker.sources import SourceLimits, read_bytes

BUCKET = "crackq-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback with a bucket holding a small and a large object."""
    pytest.importorskip("moto")
    import boto3
    from moto.server import ThreadedMotoServer

    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    admin = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    admin.create_bucket(Bucket=BUCKET)
    admin.put_object(Bucket=BUCKET, Key="photos/a b.jpg", Body=jpeg())
    admin.put_object(Bucket=BUCKET, Key="big.bin", Body=b"x" * 5000)
    admin.put_object(Bucket=BUCKET, Key="empty.jpg", Body=b"")
    yield endpoint
    server.stop()


@pytest.fixture
def s3_limits(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SourceLimits:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sources, "_S3_CLIENTS", {})
    return limits(max_bytes=1000, s3_endpoint_url=s3_endpoint)


def test_s3_reads_an_object(s3_limits: SourceLimits, net: Any) -> None:
    assert read_bytes(f"s3://{BUCKET}/photos/a b.jpg", s3_limits) == jpeg()
    port = int(str(s3_limits.s3_endpoint_url).rsplit(":", 1)[1])
    assert net.attempts and all(a == ("127.0.0.1", port) for a in net.attempts)


def test_s3_client_is_cached_per_endpoint(s3_limits: SourceLimits) -> None:
    read_bytes(f"s3://{BUCKET}/photos/a b.jpg", s3_limits)
    read_bytes(f"s3://{BUCKET}/photos/a b.jpg", s3_limits)
    assert len(sources._S3_CLIENTS) == 1


@pytest.mark.parametrize(
    ("key", "code"),
    [
        (f"{BUCKET}/missing.jpg", ErrorCode.NOT_FOUND),
        ("no-such-bucket-here/a.jpg", ErrorCode.NOT_FOUND),
        (f"{BUCKET}/big.bin", ErrorCode.TOO_MANY_BYTES),
        (f"{BUCKET}/empty.jpg", ErrorCode.EMPTY_FILE),
        (f"{BUCKET}/", ErrorCode.INVALID_REQUEST),
        ("", ErrorCode.INVALID_REQUEST),
    ],
)
def test_s3_errors(s3_limits: SourceLimits, key: str, code: ErrorCode) -> None:
    assert code_of(f"s3://{key}", s3_limits) == code


def test_s3_unreachable_endpoint_is_a_fetch_failure(s3_limits: SourceLimits) -> None:
    lim = limits(s3_endpoint_url=f"http://127.0.0.1:{_free_port()}")  # nothing listens
    assert code_of(f"s3://{BUCKET}/photos/a b.jpg", lim) == ErrorCode.FETCH_FAILED


def test_s3_without_boto3_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_S3_CLIENTS", {})
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    with pytest.raises(ImageError) as info:
        read_bytes("s3://b/k.jpg", limits())
    assert info.value.code == ErrorCode.FETCH_FAILED
    assert "crackq[s3]" in info.value.message
