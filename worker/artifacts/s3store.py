"""The S3 store (AWS, MinIO, Ceph): multipart uploads, streamed downloads; needs boto3."""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

from worker.artifacts.base import (
    CHUNK,
    ArtifactError,
    Stored,
    default_key,
    sha256_and_size,
    stream_to,
)

PART = 8 << 20  # multipart part size; S3's minimum is 5 MiB
_CLIENTS: dict[tuple[int, str | None], Any] = {}
_LOCK = threading.Lock()


def split_url(url: str) -> tuple[str, str]:
    """s3://bucket/some/key -> (bucket, "some/key")."""
    if not url.startswith("s3://"):
        raise ArtifactError(f"{url!r} is not an s3:// URL")
    bucket, _, key = url[len("s3://") :].partition("/")
    if not bucket:
        raise ArtifactError(f"{url!r}: expected s3://bucket/key")
    return bucket, key.strip("/")


class S3Store:
    """Objects under s3://bucket/prefix; the sha256 also goes into the object's metadata."""

    def __init__(self, url: str, endpoint_url: str | None = None) -> None:
        self.bucket, self.prefix = split_url(url)
        self.endpoint_url = endpoint_url

    def put(self, local_path: Path, key: str | None = None) -> Stored:
        from boto3.s3.transfer import TransferConfig
        from botocore.exceptions import BotoCoreError, ClientError

        sha256, size = sha256_and_size(Path(local_path))
        name = "/".join(p for p in (self.prefix, key or default_key(local_path, sha256)) if p)
        config = TransferConfig(
            multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=2
        )
        try:
            _client(self.endpoint_url).upload_file(
                str(local_path), self.bucket, name, Config=config,
                ExtraArgs={"Metadata": {"sha256": sha256}},
            )  # fmt: skip
        except (BotoCoreError, ClientError) as exc:
            raise ArtifactError(
                f"could not upload {local_path} to s3://{self.bucket}/{name}: {exc}"
            ) from exc
        return Stored(f"s3://{self.bucket}/{name}", sha256, size)

    def fetch(self, url: str, sha256: str, dest: Path) -> Path:
        from botocore.exceptions import BotoCoreError, ClientError

        bucket, key = split_url(url)
        try:
            body = _client(self.endpoint_url).get_object(Bucket=bucket, Key=key)["Body"]
            with body:
                stream_to(body.iter_chunks(CHUNK), dest, sha256, source=url)
        except (BotoCoreError, ClientError) as exc:
            raise ArtifactError(f"could not fetch {url}: {exc}") from exc
        return Path(dest)


def _client(endpoint_url: str | None) -> Any:
    """One client per process and endpoint; boto3 clients are thread-safe, their creation not."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ArtifactError("the s3:// artifact store needs boto3; install crackq[s3]") from exc
    key = (os.getpid(), endpoint_url)
    with _LOCK:
        if key not in _CLIENTS:
            options: dict[str, Any] = {"retries": {"max_attempts": 5, "mode": "standard"}}
            if endpoint_url:  # MinIO/Ceph hosts rarely have wildcard DNS
                options["s3"] = {"addressing_style": "path"}
            _CLIENTS[key] = boto3.session.Session().client(
                "s3", endpoint_url=endpoint_url, config=Config(**options)
            )
        return _CLIENTS[key]
