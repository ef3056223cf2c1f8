"""Error codes recorded on failed result rows; each is part of the public results schema."""

from __future__ import annotations

from enum import Enum


class ErrorCode(str, Enum):
    """Why an image reference could not be classified (results.error_code)."""

    INVALID_REQUEST = "invalid_request"  # message arguments missing or of the wrong type
    UNSUPPORTED_SCHEME = "unsupported_scheme"  # not a path, file://, http(s):// or s3://
    PATH_NOT_ALLOWED = "path_not_allowed"  # outside CRACKQ_ALLOWED_ROOTS (incl. ../, symlinks)
    NOT_FOUND = "not_found"  # missing file, HTTP 404, missing S3 key
    ADDRESS_NOT_ALLOWED = "address_not_allowed"  # URL resolves to loopback/private/link-local
    FETCH_TIMEOUT = "fetch_timeout"  # http(s)/s3 did not answer in CRACKQ_HTTP_TIMEOUT_S
    FETCH_FAILED = "fetch_failed"  # any other transport error (HTTP 5xx, refused, TLS...)
    EMPTY_FILE = "empty_file"  # zero bytes
    TOO_MANY_BYTES = "too_many_bytes"  # over CRACKQ_MAX_IMAGE_BYTES
    NOT_AN_IMAGE = "not_an_image"  # bytes no decoder recognises
    TRUNCATED_IMAGE = "truncated_image"  # recognised but cut short / corrupt
    TOO_MANY_PIXELS = "too_many_pixels"  # over CRACKQ_MAX_IMAGE_PIXELS (decompression bomb)
    IMAGE_TOO_SMALL = "image_too_small"  # smaller than MIN_IMAGE_SIDE on a side
    MAP_TIMEOUT = "map_timeout"  # a crack map took longer than CRACKQ_MAP_TIME_BUDGET_S
    INTERNAL_ERROR = "internal_error"  # a bug: reported, never silently retried


class ImageError(Exception):
    """An image reference that cannot be classified, with its recorded error code."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message
