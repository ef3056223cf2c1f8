"""Manifests' `group` column: reading it, and the split that keeps each group on one side."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from models.datasets import (
    DatasetError,
    from_manifest,
    group_of,
    manifest_split,
    read_manifest,
)


def _groups(n_groups: int, per_group: int = 5) -> tuple[list[tuple[str, int]], dict[str, str]]:
    """Groups of mixed classes (a source photo's crack and clean patches), a crack share
    that varies by group from 1 in 5 to 4 in 5."""
    samples, groups = [], {}
    for g in range(n_groups):
        cracks = 1 + g % 4
        for i in range(per_group):
            path = f"/photos/src{g}_patch{i}.jpg"
            samples.append((path, int(i < cracks)))
            groups[path] = f"src{g}"
    return samples, groups


def test_read_manifest_returns_each_files_group_and_blank_is_its_own(tmp_path, make_image) -> None:
    for name in ("a.jpg", "b.jpg", "c.jpg"):
        make_image(tmp_path / name)
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label,group\na.jpg,crack,pier-1\nb.jpg,no_crack,pier-1\nc.jpg,0,\n")
    samples, groups = read_manifest(manifest)
    assert samples == from_manifest(manifest)
    assert groups[str((tmp_path / "a.jpg").resolve())] == "pier-1"
    assert groups[str((tmp_path / "b.jpg").resolve())] == "pier-1"
    assert groups[str((tmp_path / "c.jpg").resolve())] == f"file:{tmp_path / 'c.jpg'}"
    assert group_of(samples, groups) == ["pier-1", "pier-1", f"file:{tmp_path / 'c.jpg'}"]


def test_a_manifest_without_the_column_has_no_groups(tmp_path, make_image) -> None:
    make_image(tmp_path / "a.jpg")
    make_image(tmp_path / "b.jpg")
    manifest = tmp_path / "m.csv"
    manifest.write_text("path,label\na.jpg,crack\nb.jpg,no_crack\n")
    assert read_manifest(manifest)[1] == {}


@pytest.mark.parametrize("seed", [0, 1, 7])
def test_no_group_lands_on_both_sides_and_classes_stay_balanced(seed: int) -> None:
    samples, groups = _groups(60)
    train, val = manifest_split(samples, groups, 0.2, seed)
    assert sorted(train + val) == sorted(samples)
    train_groups = {groups[p] for p, _ in train}
    val_groups = {groups[p] for p, _ in val}
    assert not train_groups & val_groups
    assert 0.12 <= len(val) / len(samples) <= 0.28
    share = Counter(label for _, label in samples)[1] / len(samples)
    val_share = Counter(label for _, label in val)[1] / len(val)
    assert abs(val_share - share) < 0.1, (val_share, share)


def test_the_split_is_seeded() -> None:
    samples, groups = _groups(40)
    assert manifest_split(samples, groups, 0.25, 3) == manifest_split(samples, groups, 0.25, 3)
    assert manifest_split(samples, groups, 0.25, 3) != manifest_split(samples, groups, 0.25, 4)


def test_ungrouped_files_keep_their_file_number_groups() -> None:
    samples, groups = _groups(20)
    # a folder beside the manifest: files numbered 0..399 per class, no manifest group
    folder = [
        (f"/extra/{cls}/{i}.jpg", label) for label, cls in enumerate("NP") for i in range(400)
    ]
    train, val = manifest_split(samples + folder, groups, 0.2, 0)
    assert not {groups[p] for p, _ in train if p in groups} & {
        groups[p] for p, _ in val if p in groups
    }
    # file-number blocks of 20 (400 files // 20) are never cut in two
    block = {p: (p.split("/")[2], int(Path(p).stem) // 20) for p, _ in folder}
    assert not {block[p] for p, _ in train if p in block} & {block[p] for p, _ in val if p in block}
    assert {label for p, label in val if p in block} == {0, 1}


def test_one_group_cannot_be_split() -> None:
    samples = [(f"/p/{i}.jpg", i % 2) for i in range(10)]
    with pytest.raises(DatasetError, match="at least two"):
        manifest_split(samples, dict.fromkeys((p for p, _ in samples), "only"), 0.2)
