"""Crack maps as plain functions: real PostgreSQL, real photo files, a model that sees brightness.

The "brightness" model calls a tile a crack exactly when it is mostly bright, so a photo
with a bright rectangle on a dark ground has a known map: the tests check the geometry,
the regions, the stored map and the row's verdict against it.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import select
from torch import nn

from db import maps
from db.tables import CrackRegionRow, Result
from harness import images
from models.formats import CAMERA_FORMATS
from models.numerics import resolve_numerics
from models.serving import Classifier
from worker.errors import ErrorCode
from worker.forward import Forward
from worker.jobs import Loaded
from worker.mapping import map_photo
from worker.pipeline import Item, MapPolicy, PipelineConfig, classify
from worker.sources import SourceLimits

pytestmark = pytest.mark.usefixtures("clean_tables")
SIZE = 32


class Brightness(nn.Module):
    """Logits from the mean normalised pixel: bright tiles are cracks, dark ones are not."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.float().mean(dim=(1, 2, 3))
        return torch.stack([-4 * m, 4 * m], dim=1)


@pytest.fixture(scope="module")
def bright() -> Classifier:
    clf = Classifier(Brightness(), resolve_numerics("cpu", "fp32", False), "bright", SIZE)
    clf.patch_size = 40  # tiles of 40 photo pixels, resized to 32
    return clf


def photo(width: int, height: int, box: tuple[int, int, int, int] | None) -> bytes:
    img = Image.new("RGB", (width, height), (10, 10, 10))
    if box is not None:
        img.paste((250, 250, 250), box)
    buf = io.BytesIO()
    img.save(buf, "PNG")
    return buf.getvalue()


@pytest.fixture
def config(tmp_path: Path) -> PipelineConfig:
    limits = SourceLimits(allowed_roots=(tmp_path,), max_bytes=10_000_000, http_timeout_s=5)
    policy = MapPolicy(overlap=0.0, min_region_tiles=2, batch=8)
    return PipelineConfig(limits, 50_000_000, CAMERA_FORMATS, "map-host", policy)


def ref(tmp_path: Path, name: str, data: bytes) -> str:
    (tmp_path / name).write_bytes(data)
    return str(tmp_path / name)


def test_a_big_photo_is_mapped_and_its_regions_cover_the_bright_block(
    sessions, bright, config, tmp_path
) -> None:
    # 400x200 photo, 40 px tiles without overlap: a 10x5 grid; the block covers tiles
    # (r 1..2, c 3..5) exactly, so the region's box is the block itself
    big = ref(tmp_path, "big.png", photo(400, 200, (120, 40, 240, 120)))
    small = ref(tmp_path, "small.png", photo(60, 60, None))
    done = classify([Item("big", big), Item("small", small)], bright, sessions, config)
    assert [r["request_id"] for r in done.rows] == ["small"]  # whole: 60 <= 2 x 40
    assert [x.item.request_id for x in done.to_map] == ["big"] and done.to_map[0].data
    row = map_photo(done.to_map[0], bright, sessions, config, Forward(8, 2))
    assert row["mode"] == "map" and row["tiles"] == 50 and row["crack_tiles"] == 6
    assert row["label"] == "crack" and row["crack_regions"] == 1
    assert row["crack_area_fraction"] == pytest.approx(120 * 80 / (400 * 200))
    with sessions() as s:
        stored = maps.read_map(s, "big")
        result = s.scalars(select(Result).where(Result.request_id == "big")).one()
    assert stored is not None and (stored["rows"], stored["cols"]) == (5, 10)
    assert (stored["tile"], stored["stride"]) == (40, 40)
    grid = np.array(stored["probabilities"])
    assert set(zip(*np.nonzero(grid >= 0.5), strict=True)) == {
        (r, c) for r in (1, 2) for c in (3, 4, 5)
    }
    [region] = stored["regions"]
    assert [region[k] for k in ("x0", "y0", "x1", "y1", "tiles")] == [120, 40, 240, 120, 6]
    assert region["max_probability"] == pytest.approx(grid.max())
    assert result.status == "succeeded" and result.crack_probability == pytest.approx(grid.max())
    assert result.mode == "map" and result.worker_host == "map-host"


def test_one_stray_tile_is_not_a_crack_and_a_clean_photo_has_no_region(
    sessions, bright, config, tmp_path
) -> None:
    refs = {
        "stray": ref(tmp_path, "stray.png", photo(400, 200, (0, 0, 40, 40))),
        "clean": ref(tmp_path, "clean.png", photo(400, 200, None)),
    }
    done = classify([Item(k, v) for k, v in refs.items()], bright, sessions, config)
    rows = {x.item.request_id: map_photo(x, bright, sessions, config) for x in done.to_map}
    assert rows["stray"]["crack_tiles"] == 1 and rows["stray"]["label"] == "no_crack"
    assert rows["stray"]["crack_probability"] < 0.5 and rows["stray"]["crack_regions"] == 0
    assert rows["clean"]["crack_tiles"] == 0 and rows["clean"]["label"] == "no_crack"
    with sessions() as s:
        assert s.scalars(select(CrackRegionRow.request_id)).all() == []  # below 2 tiles
        assert maps.read_map(s, "stray")["probabilities"][0][0] >= 0.5  # type: ignore[index]


def test_the_mode_forces_either_path(sessions, bright, config, tmp_path) -> None:
    big = ref(tmp_path, "big.png", photo(400, 200, (120, 40, 240, 120)))
    small = ref(tmp_path, "small.png", photo(60, 60, (0, 0, 60, 60)))
    items = [Item("big-whole", big, mode="patch"), Item("small-map", small, mode="map")]
    done = classify(items, bright, sessions, config)
    assert [r["request_id"] for r in done.rows] == ["big-whole"]
    assert done.rows[0]["mode"] == "patch"
    row = map_photo(done.to_map[0], bright, sessions, config)
    assert row["tiles"] == 4 and row["label"] == "crack"  # 60 px: 2x2 tiles of 40, at the border


def test_bad_big_photos_and_the_time_budget_become_failed_rows(
    sessions, bright, config, tmp_path
) -> None:
    whole = images.jpeg(800, 600, pattern="noise")
    cut = ref(tmp_path, "cut.jpg", whole[: len(whole) // 2])
    slow = ref(tmp_path, "slow.png", photo(400, 200, None))
    done = classify([Item("cut", cut), Item("slow", slow)], bright, sessions, config)
    by_id = {x.item.request_id: x for x in done.to_map}
    row = map_photo(by_id["cut"], bright, sessions, config)
    assert row["status"] == "failed" and row["error_code"] == ErrorCode.TRUNCATED_IMAGE.value
    hurried = PipelineConfig(
        config.limits, config.max_pixels, config.formats, "h", MapPolicy(time_budget_s=1e-9)
    )
    row = map_photo(by_id["slow"], bright, sessions, hurried)
    assert row["status"] == "failed" and row["error_code"] == ErrorCode.MAP_TIMEOUT.value
    with sessions() as s:
        assert maps.read_map(s, "slow") is None and maps.read_map(s, "cut") is None


def test_a_second_map_of_a_final_photo_changes_nothing(sessions, bright, config, tmp_path) -> None:
    big = ref(tmp_path, "big.png", photo(400, 200, (120, 40, 240, 120)))
    first = classify([Item("again", big)], bright, sessions, config).to_map[0]
    map_photo(first, bright, sessions, config)
    assert classify([Item("again", big)], bright, sessions, config).to_map == []
    redelivered = Loaded(first.item, None, None, 0.0, data=photo(400, 200, None))
    assert map_photo(redelivered, bright, sessions, config)["label"] == "no_crack"
    with sessions() as s:
        stored = maps.read_map(s, "again")
    assert stored is not None and stored["label"] == "crack" and len(stored["regions"]) == 1
