"""s3:// reader against a moto server on loopback: objects, limits, errors, the client cache."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from harness.images import jpeg
from harness.s3_server import aws_env, free_port, moto_s3
from tests.worker.reading import code_of, limits
from worker import sources
from worker.errors import ErrorCode, ImageError
from worker.sources import SourceLimits, read_bytes

BUCKET = "crackq-test"


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    """A moto S3 server on loopback with a bucket holding a small and a large object."""
    pytest.importorskip("moto")
    import boto3

    with moto_s3(BUCKET) as endpoint:
        admin = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        admin.put_object(Bucket=BUCKET, Key="photos/a b.jpg", Body=jpeg())
        admin.put_object(Bucket=BUCKET, Key="big.bin", Body=b"x" * 5000)
        admin.put_object(Bucket=BUCKET, Key="empty.jpg", Body=b"")
        yield endpoint


@pytest.fixture
def s3_limits(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SourceLimits:
    for name, value in aws_env(tmp_path).items():
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
    lim = limits(s3_endpoint_url=f"http://127.0.0.1:{free_port()}")  # nothing listens
    assert code_of(f"s3://{BUCKET}/photos/a b.jpg", lim) == ErrorCode.FETCH_FAILED


def test_s3_without_boto3_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sources, "_S3_CLIENTS", {})
    monkeypatch.setitem(sys.modules, "boto3", None)  # makes `import boto3` fail
    with pytest.raises(ImageError) as info:
        read_bytes("s3://b/k.jpg", limits())
    assert info.value.code == ErrorCode.FETCH_FAILED
    assert "crackq[s3]" in info.value.message
