"""`crackq map REQUEST_ID` as a user runs it, against a database seeded with a stored map."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from db.maps import write_maps
from db.tables import Result
from harness import images
from models.tiles import crack_map, tile_grid

pytestmark = pytest.mark.usefixtures("clean_tables")
WIDTH, HEIGHT, TILE = 3000, 2000, 227
HOT = {(4, 6): 0.97, (4, 7): 0.81, (8, 0): 0.66}  # one region of two tiles, one of a single tile


def crackq(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "worker.cli", *args], capture_output=True, text=True,
        timeout=120, env={**os.environ, **(env or {})},
    )  # fmt: skip


def _map_of(request_id: str) -> dict:
    grid = tile_grid(WIDTH, HEIGHT, TILE, 0.0)
    probs = np.full((grid.rows, grid.cols), 0.12, dtype=np.float32)
    for (r, c), p in HOT.items():
        probs[r, c] = p
    cmap = crack_map(grid, probs)
    return {
        "request_id": request_id, "model_version": "v7", "width": WIDTH, "height": HEIGHT,
        "tile": grid.tile, "stride": grid.stride, "rows": grid.rows, "cols": grid.cols,
        "probabilities": [float(p) for p in probs.ravel()],
        "regions": [{"x0": g.box[0], "y0": g.box[1], "x1": g.box[2], "y1": g.box[3],
                     "tiles": g.tiles, "max_probability": g.max_probability}
                    for g in cmap.regions],
    }  # fmt: skip


@pytest.fixture
def seeded(sessions, tmp_path: Path) -> dict:
    """A mapped photo (a grey 3000 x 2000 JPEG on disk) and a photo classified whole."""
    photo = tmp_path / "photos" / "wall.jpg"
    photo.parent.mkdir()
    photo.write_bytes(images.jpeg(WIDTH, HEIGHT, color=(128, 128, 128), quality=95))
    stored = _map_of("mapped-1")
    with sessions() as session, session.begin():
        session.add_all([
            Result(request_id="mapped-1", image_ref=str(photo), status="succeeded",
                   label="crack", confidence=0.97, crack_probability=0.97,
                   model_version="v7", mode="map", tiles=126, crack_tiles=3),
            Result(request_id="whole-1", image_ref=str(photo), status="succeeded",
                   label="no_crack", confidence=0.9, crack_probability=0.1,
                   model_version="v7", mode="patch"),
        ])  # fmt: skip
        session.flush()
        assert write_maps(session, [stored], {"mapped-1"}) == 1
    return {"map": stored, "photo": photo, "env": {"CRACKQ_ALLOWED_ROOTS": str(photo.parent)}}


def test_json_is_the_stored_map_with_exactly_the_documented_keys(seeded: dict) -> None:
    out = crackq("map", "mapped-1", "--format", "json")
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout)
    stored = seeded["map"]
    assert list(got) == ["request_id", "width", "height", "tile", "stride", "rows", "cols",
                         "probabilities", "regions", "label", "crack_probability"]  # fmt: skip
    assert (got["request_id"], got["width"], got["height"]) == ("mapped-1", WIDTH, HEIGHT)
    assert (got["tile"], got["stride"], got["rows"], got["cols"]) == (227, 227, 9, 14)
    assert np.asarray(got["probabilities"]).shape == (9, 14)
    assert np.allclose(np.ravel(got["probabilities"]), stored["probabilities"], atol=1e-6)
    assert got["regions"] == [
        {"box": [1362, 908, 1816, 1135], "tiles": 2, "max_probability": pytest.approx(0.97)},
        {"box": [0, 1773, 227, 2000], "tiles": 1, "max_probability": pytest.approx(0.66)},
    ]
    assert (got["label"], got["crack_probability"]) == ("crack", 0.97)


def test_text_and_overlay_png_show_the_crack_where_the_map_says(seeded: dict, tmp_path) -> None:
    png = tmp_path / "overlay.png"
    out = crackq("map", "mapped-1", "-o", str(png), env=seeded["env"])
    assert out.returncode == 0, out.stderr
    assert "3000 x 2000 px" in out.stdout and "9 x 14 = 126" in out.stdout
    assert "crack tiles 3 " in out.stdout and "regions     2" in out.stdout
    assert "box (1362, 908)-(1816, 1135)  2 tiles  max 0.970" in out.stdout
    assert "verdict     CRACK" in out.stdout and "......##......" in out.stdout
    with Image.open(png) as im:
        assert im.format == "PNG" and im.size == (2048, 1365)
        rgb = im.convert("RGB")
    s = 2048 / WIDTH
    r, g, b = rgb.getpixel((round((1362 + 113) * s), round((908 + 113) * s)))  # tile (4, 6)
    assert r > 180 and g < 90 and b < 90, (r, g, b)
    r, g, b = rgb.getpixel((round(300 * s), round(300 * s)))  # a clean tile: the grey photo
    assert abs(r - 128) < 6 and abs(g - 128) < 6 and abs(b - 128) < 6, (r, g, b)


def test_unknown_ids_unmapped_rows_and_unreadable_photos_are_clear_errors(seeded, tmp_path):
    out = crackq("map", "nobody")
    assert out.returncode == 1 and "no result with request id 'nobody'" in out.stderr
    out = crackq("map", "whole-1", "--format", "json")
    assert out.returncode == 1 and out.stdout == ""
    assert "classified whole" in out.stderr and "--mode map" in out.stderr
    # the photo is read with the worker's limits: outside CRACKQ_ALLOWED_ROOTS it is refused
    png = tmp_path / "refused.png"
    out = crackq(
        "map", "mapped-1", "-o", str(png), env={"CRACKQ_ALLOWED_ROOTS": str(tmp_path / "x")}
    )
    assert out.returncode == 1 and "cannot read the photo" in out.stderr and not png.exists()
    assert "Traceback" not in out.stderr
