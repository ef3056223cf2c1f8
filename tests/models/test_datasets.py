"""Dataset sources, grouped and explicit splits."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest

from models.datasets import (
    DatasetError,
    combine,
    explicit_split,
    from_folder,
    from_manifest,
    group_keys,
    grouped_split,
)
from tests.conftest import real_data_or_skip


def test_from_folder_reads_either_naming_in_any_case(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "a" / "POSITIVE" / "1.jpg")
    make_image(tmp_path / "a" / "Positive" / "nested" / "2.png")
    make_image(tmp_path / "a" / "negative" / "3.jpg")
    (tmp_path / "a" / "negative" / "notes.txt").write_text("not an image")
    make_image(tmp_path / "b" / "Crack" / "1.jpg")
    make_image(tmp_path / "b" / "no_crack" / "2.jpg")
    a = from_folder(tmp_path / "a")
    assert sorted((Path(p).name, y) for p, y in a) == [("1.jpg", 1), ("2.png", 1), ("3.jpg", 0)]
    assert sorted(y for _, y in from_folder(tmp_path / "b")) == [0, 1]


def test_from_folder_refuses_an_empty_class(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "Positive" / "1.jpg")
    (tmp_path / "Negative").mkdir()
    with pytest.raises(DatasetError, match="no_crack.*no images"):
        from_folder(tmp_path)


def test_from_folder_without_class_folders_says_what_it_expects(tmp_path: Path) -> None:
    (tmp_path / "photos").mkdir()
    with pytest.raises(DatasetError, match="Positive/Negative"):
        from_folder(tmp_path)
    with pytest.raises(DatasetError, match="does not exist"):
        from_folder(tmp_path / "nowhere")


def test_from_manifest_resolves_relative_paths_and_label_spellings(tmp_path, make_image) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg", "d.jpg"):
        make_image(tmp_path / "imgs" / name)
    absolute = make_image(tmp_path / "elsewhere" / "e.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text(
        "path,label,sha256\nimgs/a.jpg,crack,x\nimgs/b.jpg,Negative,x\nimgs/c.jpg,1,x\n"
        f"imgs/d.jpg,no_crack,x\n{absolute},POSITIVE,x\n"
    )
    samples = from_manifest(manifest)
    assert [y for _, y in samples] == [1, 0, 1, 0, 1]
    assert samples[0][0] == str(tmp_path / "imgs" / "a.jpg")
    assert samples[4][0] == absolute


def test_from_manifest_errors_are_clear(tmp_path: Path, make_image) -> None:
    make_image(tmp_path / "a.jpg")
    bad_label = tmp_path / "bad_label.csv"
    bad_label.write_text("path,label\na.jpg,maybe\n")
    with pytest.raises(DatasetError, match="line 2.*'maybe'"):
        from_manifest(bad_label)
    missing = tmp_path / "missing.csv"
    missing.write_text("path,label\na.jpg,crack\ngone.jpg,crack\n")
    with pytest.raises(DatasetError, match="1 listed file.*gone.jpg"):
        from_manifest(missing)
    no_header = tmp_path / "no_header.csv"
    no_header.write_text("file,class\na.jpg,crack\n")
    with pytest.raises(DatasetError, match="path,label"):
        from_manifest(no_header)
    with pytest.raises(DatasetError, match="cannot be read"):
        from_manifest(tmp_path / "absent.csv")


def test_combine_drops_repeats_and_refuses_conflicting_labels(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")
    assert combine([(a, 1), (b, 0)], [(a, 1)]) == [(a, 1), (b, 0)]
    with pytest.raises(DatasetError, match="labelled both"):
        combine([(a, 1)], [(a, 0)])


def _numbered(n: int, folder: str, label: int) -> list[tuple[str, int]]:
    return [(f"/data/{folder}/{i:05d}.jpg", label) for i in range(1, n + 1)]


def _number(path: str) -> int:
    return int(Path(path).stem)


def test_grouped_split_keeps_each_200_number_block_on_one_side() -> None:
    samples = _numbered(8000, "Positive", 1) + _numbered(8000, "Negative", 0)
    train, val = grouped_split(samples, 0.2, seed=0)
    assert len(train) + len(val) == len(samples)
    sides: dict[tuple[int, int], set[str]] = defaultdict(set)
    for side, part in (("train", train), ("val", val)):
        for path, label in part:
            sides[(label, (_number(path) - 1) // 200)].add(side)
    assert all(len(s) == 1 for s in sides.values())
    for label in (0, 1):
        share = sum(1 for _, y in val if y == label) / 8000
        assert 0.17 <= share <= 0.23


def test_grouped_split_is_seeded_and_no_group_straddles_on_a_subsample() -> None:
    rng = np.random.default_rng(0)
    full = _numbered(8000, "Positive", 1) + _numbered(8000, "Negative", 0)
    samples = [full[i] for i in sorted(rng.choice(len(full), 2000, replace=False))]
    a, b = grouped_split(samples, 0.3, seed=5), grouped_split(samples, 0.3, seed=5)
    assert a == b and grouped_split(samples, 0.3, seed=6).val != a.val
    keys = dict(zip(samples, group_keys(samples), strict=True))
    assert not {keys[s] for s in a.train} & {keys[s] for s in a.val}
    assert 0.25 <= len(a.val) / len(samples) <= 0.35
    # Ranges stay contiguous: validation crack numbers form few runs, not scattered files.
    val_crack = sorted(_number(p) for p, y in a.val if y == 1)
    train_crack = sorted(_number(p) for p, y in a.train if y == 1)
    boundaries = sum(
        1 for lo, hi in zip(val_crack, val_crack[1:], strict=False)
        if any(lo < t < hi for t in train_crack)
    )  # fmt: skip
    assert boundaries < 20


def test_grouped_split_small_set_still_has_both_classes_on_both_sides() -> None:
    samples = _numbered(20, "Positive", 1) + [(f"/x/Negative/img_{c}.jpg", 0) for c in "abcdefgh"]
    train, val = grouped_split(samples, 0.25, seed=0)
    assert {y for _, y in train} == {0, 1} and {y for _, y in val} == {0, 1}


def test_explicit_split_refuses_overlap(tmp_path: Path) -> None:
    a, b = str(tmp_path / "a.jpg"), str(tmp_path / "b.jpg")
    assert explicit_split([(a, 1)], [(b, 0)]) == ([(a, 1)], [(b, 0)])
    with pytest.raises(DatasetError, match="also in the training set"):
        explicit_split([(a, 1), (b, 0)], [(b, 0)])


@pytest.mark.realdata
def test_real_manifest_loads_and_splits_by_number_ranges() -> None:
    data = real_data_or_skip()
    samples = from_manifest(data / "manifest.csv")
    assert len(samples) == 16000 and sum(y for _, y in samples) == 8000
    train, val = grouped_split(samples, 0.2, seed=0)
    val_crack = {(_number(p) - 1) // 200 for p, y in val if y == 1}
    train_crack = {(_number(p) - 1) // 200 for p, y in train if y == 1}
    assert val_crack and not val_crack & train_crack


def test_combine_keeps_paths_as_given(tmp_path: Path) -> None:
    a = str(tmp_path / "sub" / ".." / "a.jpg")
    assert combine([(a, 1)], [(str(tmp_path / "a.jpg"), 1)]) == [(a, 1)]
