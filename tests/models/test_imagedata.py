"""The skip-bad ImageDataset, load_rgb and the training preset."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from harness import images
from models.imagedata import ImageDataset, collate_skip_bad, load_rgb
from models.transforms import EvalPreset, TrainPreset


def test_bad_images_are_skipped_and_counted_across_worker_processes(tmp_path, make_image) -> None:
    good = [(make_image(tmp_path / f"g{i}.png", 40 * i), i % 2) for i in range(5)]
    broken = {
        "truncated.jpg": images.truncated_jpeg(),
        "document.jpg": images.not_an_image(),
    }
    bad = []
    for name, data in broken.items():
        (tmp_path / name).write_bytes(data)
        bad.append((str(tmp_path / name), 1))
    bad.append((str(tmp_path / "vanished.jpg"), 0))
    samples = good[:2] + bad + good[2:]
    loader = DataLoader(
        ImageDataset(samples, EvalPreset(32)), batch_size=3, num_workers=1,
        collate_fn=collate_skip_bad,
    )  # fmt: skip
    batches = list(loader)
    assert sum(len(b.labels) for b in batches) == 5
    assert sorted(i for b in batches for i in b.indices.tolist()) == [0, 1, 5, 6, 7]
    skipped = [x for b in batches for x in b.bad]
    assert sorted(x.path for x in skipped) == sorted(p for p, _ in bad)
    assert all(x.reason for x in skipped)
    assert batches[0].images.shape == (2, 32, 32, 3) and batches[0].images.dtype == torch.uint8


def test_a_batch_of_only_bad_images_is_empty_not_an_error(tmp_path: Path) -> None:
    ds = ImageDataset([(str(tmp_path / "none.jpg"), 0)], EvalPreset(32))
    batch = collate_skip_bad([ds[0]])
    assert len(batch.labels) == 0 and len(batch.bad) == 1


def test_load_rgb_applies_exif_orientation(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    path.write_bytes(images.exif_rotated_jpeg(48, 64))
    img = load_rgb(str(path), 32)
    assert img.size == (48, 64) and img.mode == "RGB"
    arr = np.asarray(img)
    assert arr[:16].mean() > 200 and arr[-16:].mean() < 50  # bright half on top


def test_load_rgb_converts_cmyk(tmp_path: Path) -> None:
    path = tmp_path / "cmyk.jpg"
    path.write_bytes(images.cmyk_jpeg())
    assert load_rgb(str(path), 32).mode == "RGB"


def test_train_preset_augments_but_keeps_shape_and_content() -> None:
    arr = np.zeros((64, 64, 3), dtype=np.uint8)
    arr[:8, :8] = 255  # a bright corner that flips and turns must move around
    img = Image.fromarray(arr)
    preset = TrainPreset(64)
    torch.manual_seed(0)
    outs = [preset(img) for _ in range(24)]
    assert all(o.shape == (64, 64, 3) and o.dtype == np.uint8 for o in outs)
    assert all(o.flags.c_contiguous for o in outs)
    corners = {
        tuple(int(o[r, c].mean() > 128) for r, c in ((0, 0), (0, 63), (63, 0), (63, 63)))
        for o in outs
    }
    assert len(corners) == 4  # the bright corner visited every corner
    torch.manual_seed(0)
    assert all(np.array_equal(a, preset(img)) for a in outs)  # seeded -> repeatable


class Refused(Exception):
    pass


def refuse_some(ref: str, size: int, refused_prefix: str) -> Image.Image:
    """A loader as worker/ builds one: it decides what may be read, then decodes."""
    if Path(ref).name.startswith(refused_prefix):
        raise Refused(f"{ref}: not allowed")
    return Image.new("RGB", (size, size), (200, 10, 10))


def test_image_dataset_reads_through_the_loader_it_is_given_in_worker_processes(
    tmp_path: Path, make_image
) -> None:
    samples = [(make_image(tmp_path / f"{name}.png"), 1) for name in ("a", "deny-b", "c")]
    samples.append((str(tmp_path / "never-written.jpg"), 0))  # the loader does not touch disk
    loader = functools.partial(refuse_some, refused_prefix="deny-")
    batches = list(
        DataLoader(
            ImageDataset(samples, EvalPreset(32), load=loader), batch_size=4, num_workers=1,
            collate_fn=collate_skip_bad,
        )
    )  # fmt: skip
    (batch,) = batches
    assert batch.indices.tolist() == [0, 2, 3]
    assert batch.images[:, :, :, 0].float().mean() == 200  # the loader's pixels, not the file's
    (bad,) = batch.bad
    assert (
        bad.path == samples[1][0]
        and bad.reason.startswith("Refused: ")
        and "not allowed" in bad.reason
    )


def test_load_rgb_refuses_formats_beyond_photos_and_images_over_its_pixel_limit(
    tmp_path: Path, make_image
) -> None:
    ppm = tmp_path / "disguised.jpg"  # a format no camera writes, under a photo's name
    Image.new("RGB", (40, 40), (1, 2, 3)).save(ppm, format="PPM")
    with pytest.raises(Exception, match="cannot identify|not a photo"):
        load_rgb(str(ppm), 32)
    path = make_image(tmp_path / "big.png", size=(64, 64))
    assert load_rgb(path, 32, max_pixels=64 * 64).size == (64, 64)
    with pytest.raises(ValueError, match="64x64.*over 4095 pixels"):
        load_rgb(path, 32, max_pixels=64 * 64 - 1)
