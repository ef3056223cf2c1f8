"""The hostile and odd image references, each with the row it must end as."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from harness.hostile.servers import BUCKET, MAX_BYTES, Services
from worker.errors import ErrorCode as E

SUCCEEDED = "succeeded"
# A global address (so the worker's guard lets it through) that the worker's network jail
# routes to loopback: the only way to reach a redirecting or silent server on this machine
# while CRACKQ_ALLOW_PRIVATE_URLS stays false.
PUBLIC_IP = "93.184.216.34"
# fake DNS inside the worker; none of these names is ever sent to a real resolver
NAMES = {
    "images.example": PUBLIC_IP,
    "metadata.example": "169.254.169.254",
    "intranet.example": "192.168.1.10",
    "internal.example": "10.0.0.5",
}


@dataclass(frozen=True)
class Case:
    """One image reference and the row it must end as (an ErrorCode value or `succeeded`)."""

    input: str
    ref: str
    expected: E | str


def build_cases(tmp: Path, svc: Services) -> list[Case]:
    """Write the files under tmp/allowed (and a secret beside it) and list every case."""
    return file_cases(tmp) + url_cases(svc)


def file_cases(tmp: Path) -> list[Case]:
    """Odd and hostile files under tmp/allowed, a secret beside it, a symlink out and a FIFO."""
    from harness import images, raw_images

    root = tmp / "allowed"
    root.mkdir(parents=True, exist_ok=True)
    (tmp / "secret.jpg").write_bytes(images.jpeg(64, 64))
    files = {
        "not an image": ("doc.jpg", images.not_an_image(), E.NOT_AN_IMAGE),
        "truncated JPEG": ("truncated.jpg", images.truncated_jpeg(), E.TRUNCATED_IMAGE),
        "truncated PNG": ("truncated.png", images.truncated_png(), E.TRUNCATED_IMAGE),
        "zero bytes": ("empty.jpg", b"", E.EMPTY_FILE),
        "1x1 image": ("tiny.png", images.tiny_1x1(), E.IMAGE_TOO_SMALL),
        "bomb: 30000x30000 PNG header": ("bomb.png", raw_images.bomb_png(30000, 30000),
                                         E.TOO_MANY_PIXELS),
        "file over the byte limit": ("huge.jpg", images.jpeg() + b"\0" * MAX_BYTES,
                                     E.TOO_MANY_BYTES),
        "CMYK JPEG": ("cmyk.jpg", images.cmyk_jpeg(), SUCCEEDED),
        "grayscale PNG": ("grey.png", images.grayscale_png(), SUCCEEDED),
        "16-bit PNG": ("wide.png", images.png16(), SUCCEEDED),
        "palette PNG with transparency": ("palette.png", images.palette_png(transparent=True),
                                          SUCCEEDED),
        "RGBA PNG": ("rgba.png", images.rgba_png(), SUCCEEDED),
        "EXIF-rotated JPEG": ("rotated.jpg", images.exif_rotated_jpeg(), SUCCEEDED),
        "tiled TIFF bomb (146 B, 46336x46336 tiles)": ("tiles.tif", raw_images.tiled_tiff_bomb(),
                                                       E.TOO_MANY_PIXELS),
        "16-bit grey+alpha PNG": ("la16.png", raw_images.la16_png(), SUCCEEDED),
        "GIF (not a camera format by default)": ("anim.gif", images.gif(), E.NOT_AN_IMAGE),
    }  # fmt: skip
    cases = []
    for what, (name, data, expected) in files.items():
        (root / name).write_bytes(data)
        cases.append(Case(what, str(root / name), expected))
    link = root / "escape.jpg"
    if not link.is_symlink():
        link.symlink_to(tmp / "secret.jpg")
    fifo = root / "pipe.jpg"
    if not fifo.exists():
        os.mkfifo(fifo)
    return cases + [
        Case("../ traversal", f"{root}/../secret.jpg", E.PATH_NOT_ALLOWED),
        Case("file:// with encoded ../", f"file://{root}/%2e%2e/secret.jpg", E.PATH_NOT_ALLOWED),
        Case("symlink escaping the root", str(link), E.PATH_NOT_ALLOWED),
        Case("missing file", str(root / "nope.jpg"), E.NOT_FOUND),
        Case("FIFO (would block a reader)", str(fifo), E.NOT_FOUND),
    ]


def url_cases(svc: Services) -> list[Case]:
    """URLs: private addresses, redirects, silent and dripping servers, odd schemes, S3."""
    http = f"http://images.example:{svc.http_port}"
    cases = [
        Case("URL to loopback (a server is there)", f"http://127.0.0.1:{svc.http_port}/img.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("URL to localhost", f"http://localhost:{svc.http_port}/img.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("URL to 169.254.169.254", "http://169.254.169.254/latest/meta-data/",
             E.ADDRESS_NOT_ALLOWED),
        Case("URL to a private address", "http://10.0.0.5/a.jpg", E.ADDRESS_NOT_ALLOWED),
        Case("name resolving to link-local", "http://metadata.example/latest/meta-data/",
             E.ADDRESS_NOT_ALLOWED),
        Case("https name resolving to private", "https://intranet.example:8443/a.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("redirect to 169.254.169.254",
             f"{http}/to?http://169.254.169.254/latest/meta-data/", E.ADDRESS_NOT_ALLOWED),
        Case("redirect to loopback", f"{http}/to?http://127.0.0.1:{svc.http_port}/img.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("redirect to a private name", f"{http}/to?http://internal.example/a.jpg",
             E.ADDRESS_NOT_ALLOWED),
        Case("redirect to file://", f"{http}/to?file:///etc/passwd", E.UNSUPPORTED_SCHEME),
        Case("URL that never answers", f"http://images.example:{svc.silent_port}/a.jpg",
             E.FETCH_TIMEOUT),
        Case("URL dripping header lines past the deadline", f"{http}/drip", E.FETCH_TIMEOUT),
        Case("URL to 6to4 of 127.0.0.1", "http://[2002:7f00:1::]/a.jpg", E.ADDRESS_NOT_ALLOWED),
        Case("URL answering 404", f"{http}/missing", E.NOT_FOUND),
        Case("URL streaming past the byte limit", f"{http}/big", E.TOO_MANY_BYTES),
        Case("public URL (control)", f"{http}/img.png", SUCCEEDED),
        Case("redirect to a public URL (control)", f"{http}/to?{http}/img.jpg", SUCCEEDED),
        Case("unknown scheme ftp://", "ftp://images.example/a.jpg", E.UNSUPPORTED_SCHEME),
        Case("unknown scheme gopher://", "gopher://images.example/1", E.UNSUPPORTED_SCHEME),
        Case("malformed URL", "http://[::1/a.jpg", E.INVALID_REQUEST),
    ]  # fmt: skip
    if svc.s3_endpoint:
        cases += [
            Case("missing S3 key", f"s3://{BUCKET}/missing.jpg", E.NOT_FOUND),
            Case("missing S3 bucket", "s3://no-such-bucket-here/a.jpg", E.NOT_FOUND),
            Case("S3 object (control)", f"s3://{BUCKET}/good.jpg", SUCCEEDED),
        ]
    return cases


def good_cases(tmp: Path, svc: Services, n: int = 4) -> list[Case]:
    """Plain good images, submitted once every hostile case has its row."""
    from harness import images

    root = tmp / "allowed"
    cases = []
    for i in range(n):
        (root / f"good{i}.jpg").write_bytes(images.jpeg(227 + i, 227, pattern="noise"))
        cases.append(Case(f"good JPEG {i} after the hostile ones", str(root / f"good{i}.jpg"),
                          SUCCEEDED))  # fmt: skip
    cases.append(
        Case("good URL after the hostile ones", f"http://images.example:{svc.http_port}/img.jpg",
             SUCCEEDED)
    )  # fmt: skip
    return cases
