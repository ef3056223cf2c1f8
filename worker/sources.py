"""Image reference readers: local path, file://, http(s):// and s3:// -> bytes, within limits."""

from __future__ import annotations

import errno
import os
import stat
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

from worker.errors import ErrorCode, ImageError
from worker.netguard import fetch_http

if TYPE_CHECKING:
    from worker.settings import Settings

CHUNK = 64 * 1024


@dataclass(frozen=True)
class SourceLimits:
    """What a reader may touch and how much it may read."""

    allowed_roots: tuple[Path, ...]
    max_bytes: int
    http_timeout_s: float
    allow_private_urls: bool = False
    s3_endpoint_url: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> SourceLimits:
        return cls(
            allowed_roots=tuple(settings.allowed_roots),
            max_bytes=settings.max_image_bytes,
            http_timeout_s=settings.http_timeout_s,
            allow_private_urls=settings.allow_private_urls,
            s3_endpoint_url=settings.s3_endpoint_url,
        )


def read_bytes(ref: str, limits: SourceLimits) -> bytes:
    """The bytes `ref` names, or ImageError with the reason it cannot be read."""
    path = local_path(ref)
    if path is not None:
        data = _read_local(ref, path, limits)
    elif urlsplit(ref).scheme.lower() == "s3":
        data = _read_s3(ref, limits)
    else:
        data = fetch_http(ref, limits.max_bytes, limits.http_timeout_s, limits.allow_private_urls)
    if not data:
        raise ImageError(ErrorCode.EMPTY_FILE, f"{ref}: zero bytes")
    return data


def local_path(ref: str) -> str | None:
    """The filesystem path a plain or `file://` reference names; None for http(s) and s3.

    Raises ImageError for a malformed reference or a scheme crackq does not read.
    """
    try:
        parts = urlsplit(ref)
    except ValueError as exc:  # e.g. a malformed IPv6 netloc
        raise ImageError(ErrorCode.INVALID_REQUEST, f"{ref}: not a valid reference") from exc
    scheme = parts.scheme.lower()
    if scheme == "":
        return ref
    if scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise ImageError(ErrorCode.UNSUPPORTED_SCHEME, f"{ref}: file:// on a remote host")
        return unquote(parts.path)
    if scheme in ("http", "https", "s3"):
        return None
    raise ImageError(ErrorCode.UNSUPPORTED_SCHEME, f"{ref}: unsupported scheme {scheme!r}")


def allowed_root(ref: str, path: str, roots: Sequence[Path]) -> tuple[Path, Path]:
    """(root, real path) when `path` lies under one of `roots`; else ImageError.

    realpath follows every symlink and folds `..`, so the test judges where the bytes
    really are, not what the reference spells. Nothing about the file is looked at.
    """
    try:
        real = Path(os.path.realpath(path))
    except (ValueError, OSError) as exc:  # NUL bytes, symlink loops
        raise ImageError(ErrorCode.PATH_NOT_ALLOWED, f"{ref}: {exc}") from exc
    for root in roots:
        resolved = Path(os.path.realpath(root))
        if real.is_relative_to(resolved):
            return resolved, real
    raise ImageError(ErrorCode.PATH_NOT_ALLOWED, f"{ref}: outside the allowed roots")


def _read_capped(read: Callable[[int], bytes], max_bytes: int, ref: str) -> bytes:
    """Read to EOF, but never hold more than max_bytes + 1 bytes."""
    chunks: list[bytes] = []
    total = 0
    while chunk := read(min(CHUNK, max_bytes + 1 - total)):
        chunks.append(chunk)
        total += len(chunk)
        if total > max_bytes:
            raise ImageError(ErrorCode.TOO_MANY_BYTES, f"{ref}: more than {max_bytes} bytes")
    return b"".join(chunks)


# --- local paths ------------------------------------------------------------------------


def _read_local(ref: str, path: str, limits: SourceLimits) -> bytes:
    # checked before existence so refused paths reveal nothing about the filesystem
    root, real = allowed_root(ref, path, limits.allowed_roots)
    try:
        fd = _open_beneath(root, real.relative_to(root).parts)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
        raise ImageError(ErrorCode.NOT_FOUND, f"{ref}: no such file") from exc
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # lost a race with a symlink swap: still refused
            raise ImageError(ErrorCode.PATH_NOT_ALLOWED, f"{ref}: is a symlink") from exc
        raise ImageError(ErrorCode.FETCH_FAILED, f"{ref}: cannot open: {exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):  # directories, FIFOs, devices
        os.close(fd)
        raise ImageError(ErrorCode.NOT_FOUND, f"{ref}: not a regular file")
    with os.fdopen(fd, "rb") as f:
        if info.st_size == 0:
            raise ImageError(ErrorCode.EMPTY_FILE, f"{ref}: zero bytes")
        if info.st_size > limits.max_bytes:
            raise ImageError(
                ErrorCode.TOO_MANY_BYTES, f"{ref}: {info.st_size} bytes > {limits.max_bytes}"
            )
        try:
            return _read_capped(f.read, limits.max_bytes, ref)  # the file may have grown
        except OSError as exc:
            raise ImageError(ErrorCode.FETCH_FAILED, f"{ref}: read failed: {exc}") from exc


def _open_beneath(root: Path, parts: tuple[str, ...]) -> int:
    """Open root/parts one component at a time, following no symlink on the way.

    realpath already resolved every link, so a symlink met here was swapped in after the
    check (a race): O_NOFOLLOW at every step refuses it with ELOOP instead of leaving the
    root (openat2's RESOLVE_BENEATH, which Python does not expose, done by hand).
    """
    if not parts:
        raise IsADirectoryError(str(root))
    # no O_DIRECTORY: with it Linux reports a symlink as ENOTDIR instead of ELOOP
    walk = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for name in parts[:-1]:
            child = os.open(name, walk, dir_fd=fd)
            os.close(fd)
            fd = child
        # O_NONBLOCK: a FIFO must not hang the open
        return os.open(
            parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=fd
        )
    finally:
        os.close(fd)


# --- s3 ---------------------------------------------------------------------------------

_S3_CLIENTS: dict[tuple[int, str | None, float], Any] = {}
_S3_LOCK = threading.Lock()


def _s3_client(limits: SourceLimits, ref: str) -> Any:
    """One client per process and endpoint; boto3 clients are thread-safe, their creation not."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:
        raise ImageError(
            ErrorCode.FETCH_FAILED, f"{ref}: reading s3:// needs boto3; install crackq[s3]"
        ) from exc
    # the pid is in the key because a client inherited across fork shares its sockets
    key = (os.getpid(), limits.s3_endpoint_url, limits.http_timeout_s)
    with _S3_LOCK:
        client = _S3_CLIENTS.get(key)
        if client is None:
            options: dict[str, Any] = {
                "connect_timeout": limits.http_timeout_s,
                "read_timeout": limits.http_timeout_s,
                "retries": {"max_attempts": 3, "mode": "standard"},
            }
            if limits.s3_endpoint_url:  # MinIO/Ceph hosts rarely have wildcard DNS
                options["s3"] = {"addressing_style": "path"}
            client = boto3.session.Session().client(
                "s3", endpoint_url=limits.s3_endpoint_url, config=Config(**options)
            )
            _S3_CLIENTS[key] = client
    return client


def _read_s3(ref: str, limits: SourceLimits) -> bytes:
    bucket, _, key = ref[len("s3://") :].partition("/")
    if not bucket or not key:
        raise ImageError(ErrorCode.INVALID_REQUEST, f"{ref}: expected s3://bucket/key")
    client = _s3_client(limits, ref)
    from botocore.exceptions import BotoCoreError, ClientError, ConnectTimeoutError
    from botocore.exceptions import ReadTimeoutError as S3ReadTimeout

    try:
        obj = client.get_object(Bucket=bucket, Key=key)
        body = obj["Body"]
        try:
            size = int(obj.get("ContentLength") or 0)
            if size > limits.max_bytes:
                raise ImageError(
                    ErrorCode.TOO_MANY_BYTES, f"{ref}: {size} bytes > {limits.max_bytes}"
                )
            return _read_capped(body.read, limits.max_bytes, ref)
        finally:
            body.close()
    except ClientError as exc:
        error = exc.response.get("Error", {})
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or error.get("Code") in ("NoSuchKey", "NoSuchBucket", "NotFound"):
            raise ImageError(ErrorCode.NOT_FOUND, f"{ref}: no such object") from exc
        raise ImageError(ErrorCode.FETCH_FAILED, f"{ref}: {exc}") from exc
    except (ConnectTimeoutError, S3ReadTimeout) as exc:
        raise ImageError(ErrorCode.FETCH_TIMEOUT, f"{ref}: {exc}") from exc
    except (BotoCoreError, OSError) as exc:
        raise ImageError(ErrorCode.FETCH_FAILED, f"{ref}: {exc}") from exc
