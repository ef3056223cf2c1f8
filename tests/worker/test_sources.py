"""Local path and file:// readers, and the scheme dispatch of read_bytes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from harness.images import jpeg
from tests.worker.reading import code_of, limits
from worker.errors import ErrorCode
from worker.settings import Settings
from worker.sources import SourceLimits, read_bytes


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """tmp/root/{a.jpg, sub/b.jpg, empty.jpg}, tmp/outside/secret.jpg, tmp/root2/c.jpg."""
    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "a.jpg").write_bytes(jpeg())
    (root / "sub" / "b.jpg").write_bytes(jpeg(32, 32))
    (root / "empty.jpg").write_bytes(b"")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret.jpg").write_bytes(b"secret")
    (tmp_path / "root2").mkdir()
    (tmp_path / "root2" / "c.jpg").write_bytes(jpeg())
    return root


def test_from_settings_copies_every_field(tmp_path: Path) -> None:
    s = Settings(
        allowed_roots=[tmp_path],
        max_image_bytes=123,
        http_timeout_s=4.5,
        allow_private_urls=True,
        s3_endpoint_url="http://minio:9000",
    )
    assert SourceLimits.from_settings(s) == SourceLimits(
        (tmp_path,), 123, 4.5, allow_private_urls=True, s3_endpoint_url="http://minio:9000"
    )


def test_local_path_and_file_urls_read_the_same_bytes(tree: Path) -> None:
    lim = limits(tree)
    want = (tree / "a.jpg").read_bytes()
    assert read_bytes(str(tree / "a.jpg"), lim) == want
    assert read_bytes((tree / "a.jpg").as_uri(), lim) == want
    assert read_bytes(f"file://localhost{tree / 'a.jpg'}", lim) == want
    assert read_bytes(str(tree / "sub" / ".." / "a.jpg"), lim) == want  # stays inside


def test_percent_encoded_file_url(tree: Path) -> None:
    (tree / "with space.jpg").write_bytes(b"xyz")
    assert read_bytes((tree / "with space.jpg").as_uri(), limits(tree)) == b"xyz"


@pytest.mark.parametrize(
    "rel",
    ["../outside/secret.jpg", "sub/../../outside/secret.jpg", "../root2/c.jpg", "../outside/nope"],
)
def test_dotdot_traversal_is_refused(tree: Path, rel: str) -> None:
    assert code_of(f"{tree}/{rel}", limits(tree)) == ErrorCode.PATH_NOT_ALLOWED


def test_encoded_traversal_in_file_url_is_refused(tree: Path) -> None:
    ref = f"file://{tree}/%2e%2e/outside/secret.jpg"
    assert code_of(ref, limits(tree)) == ErrorCode.PATH_NOT_ALLOWED


def test_symlink_escaping_the_root_is_refused(tree: Path) -> None:
    (tree / "link.jpg").symlink_to(tree.parent / "outside" / "secret.jpg")
    (tree / "linkdir").symlink_to(tree.parent / "outside")
    assert code_of(str(tree / "link.jpg"), limits(tree)) == ErrorCode.PATH_NOT_ALLOWED
    assert code_of(str(tree / "linkdir" / "secret.jpg"), limits(tree)) == ErrorCode.PATH_NOT_ALLOWED


def test_symlink_swapped_in_after_the_check_is_not_followed(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race realpath cannot close: the final component became a symlink after it ran."""
    (tree / "swapped.jpg").symlink_to(tree.parent / "outside" / "secret.jpg")
    monkeypatch.setattr(os.path, "realpath", lambda p: os.fspath(p))  # the check saw a file
    assert code_of(str(tree / "swapped.jpg"), limits(tree)) == ErrorCode.PATH_NOT_ALLOWED


def test_symlink_inside_the_root_and_symlinked_root_are_fine(tree: Path) -> None:
    (tree / "alias.jpg").symlink_to(tree / "sub" / "b.jpg")
    assert (
        read_bytes(str(tree / "alias.jpg"), limits(tree)) == (tree / "sub" / "b.jpg").read_bytes()
    )
    root_link = tree.parent / "root_link"
    root_link.symlink_to(tree)
    assert read_bytes(str(root_link / "a.jpg"), limits(root_link)) == (tree / "a.jpg").read_bytes()


def test_sibling_with_common_prefix_is_not_inside(tree: Path) -> None:
    # /x/root2 starts with the characters of /x/root but is not under it
    assert code_of(str(tree.parent / "root2" / "c.jpg"), limits(tree)) == ErrorCode.PATH_NOT_ALLOWED


def test_no_roots_means_no_local_reads(tree: Path) -> None:
    assert code_of(str(tree / "a.jpg"), limits()) == ErrorCode.PATH_NOT_ALLOWED


def test_missing_empty_directory_and_fifo(tree: Path) -> None:
    lim = limits(tree)
    assert code_of(str(tree / "nope.jpg"), lim) == ErrorCode.NOT_FOUND
    assert code_of(str(tree / "a.jpg" / "x.jpg"), lim) == ErrorCode.NOT_FOUND
    assert code_of(str(tree / "empty.jpg"), lim) == ErrorCode.EMPTY_FILE
    assert code_of(str(tree / "sub"), lim) == ErrorCode.NOT_FOUND
    os.mkfifo(tree / "pipe.jpg")  # must be refused, not block on open or read
    assert code_of(str(tree / "pipe.jpg"), lim) == ErrorCode.NOT_FOUND


def test_missing_file_outside_roots_does_not_reveal_existence(tree: Path) -> None:
    assert (
        code_of(str(tree.parent / "outside" / "nope"), limits(tree)) == ErrorCode.PATH_NOT_ALLOWED
    )


def test_oversize_by_stat(tree: Path) -> None:
    size = (tree / "a.jpg").stat().st_size
    assert read_bytes(str(tree / "a.jpg"), limits(tree, max_bytes=size)) != b""
    assert (
        code_of(str(tree / "a.jpg"), limits(tree, max_bytes=size - 1)) == ErrorCode.TOO_MANY_BYTES
    )


def test_oversize_by_bounded_read_when_the_file_grew(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """stat said small, the read finds more (a file still being written): still refused."""
    real_fstat = os.fstat

    def stale_fstat(fd: int) -> os.stat_result:
        st = list(real_fstat(fd))
        st[6] = 10  # st_size as it was "before the writer appended"
        return os.stat_result(st)

    monkeypatch.setattr(os, "fstat", stale_fstat)
    assert code_of(str(tree / "a.jpg"), limits(tree, max_bytes=100)) == ErrorCode.TOO_MANY_BYTES


@pytest.mark.parametrize(
    "ref",
    [
        "ftp://example.com/a.jpg",
        "gopher://x/1",
        "data:image/png;base64,AAAA",
        "file://otherhost/etc/passwd",
    ],
)
def test_unsupported_schemes(ref: str, net: Any) -> None:
    assert code_of(ref, limits()) == ErrorCode.UNSUPPORTED_SCHEME
    assert net.attempts == []


def test_nul_byte_in_path_is_refused(tree: Path) -> None:
    assert code_of(f"{tree}/a.jpg\x00.png", limits(tree)) == ErrorCode.PATH_NOT_ALLOWED


def test_directory_swapped_for_a_symlink_after_the_check_is_not_followed(
    tree: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same race one level up: `sub/` became a link out of the root after realpath ran."""
    (tree.parent / "outside" / "b.jpg").write_bytes(jpeg(40, 40))
    real_realpath = os.path.realpath

    def realpath_then_swap(path: Any) -> str:
        resolved = real_realpath(path)
        if os.fspath(path).endswith("b.jpg") and not (tree / "sub").is_symlink():
            (tree / "sub").rename(tree / "sub-moved")
            (tree / "sub").symlink_to(tree.parent / "outside")
        return resolved

    monkeypatch.setattr(os.path, "realpath", realpath_then_swap)
    assert code_of(str(tree / "sub" / "b.jpg"), limits(tree)) == ErrorCode.PATH_NOT_ALLOWED
