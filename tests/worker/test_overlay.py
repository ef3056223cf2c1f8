"""Crack-map overlays and the `crackq map` output formats, as plain functions (no database)."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.tiles import crack_map, tile_grid
from worker.cli.maps import as_json, as_text
from worker.overlay import canvas_size, colour_ramp, heat_canvas, render_overlay

GREY = (128, 128, 128)


def stored(width: int, height: int, tile: int, overlap: float, hot: dict[tuple[int, int], float]):
    """A map as db.maps.read_map returns it: 0.1 everywhere but the `hot` tiles."""
    grid = tile_grid(width, height, tile, overlap)
    probs = np.full((grid.rows, grid.cols), 0.1, dtype=np.float32)
    for (r, c), p in hot.items():
        probs[r, c] = p
    cmap = crack_map(grid, probs)
    regions = [
        {"x0": g.box[0], "y0": g.box[1], "x1": g.box[2], "y1": g.box[3], "tiles": g.tiles,
         "max_probability": g.max_probability}
        for g in cmap.regions
    ]  # fmt: skip
    return {
        "request_id": "r1", "image_ref": "/photos/r1.jpg", "model_version": "v1",
        "width": width, "height": height, "tile": grid.tile, "stride": grid.stride,
        "rows": grid.rows, "cols": grid.cols, "probabilities": probs.tolist(),
        "regions": regions, "label": "crack" if regions else "no_crack",
        "crack_probability": cmap.crack_probability(1),
    }  # fmt: skip


def _is_red(pixel: tuple[int, ...]) -> bool:
    r, g, b = pixel[:3]
    return r > 180 and g < 90 and b < 90


def test_canvas_is_downscaled_to_the_long_side_never_enlarged() -> None:
    assert canvas_size(4000, 3000, 2048) == (2048, 1536)
    assert canvas_size(1000, 3000, 2048) == (683, 2048)
    assert canvas_size(800, 600, 2048) == (800, 600)


def test_overlay_is_red_over_a_crack_tile_and_untouched_over_clean_ones() -> None:
    m = stored(3000, 2000, 227, 0.0, {(4, 6): 0.97})
    out = render_overlay(Image.new("RGB", (3000, 2000), GREY), m)
    assert out.size == (2048, 1365) and out.mode == "RGB"
    s = 2048 / 3000
    box = m["regions"][0]
    x0, y0, x1, y1 = box["x0"] * s, box["y0"] * s, box["x1"] * s, box["y1"] * s
    assert _is_red(out.getpixel((int((x0 + x1) / 2), int((y0 + y1) / 2))))
    assert out.getpixel((100, 1300)) == GREY  # p = 0.1: below 0.3, transparent
    assert out.getpixel((int(x1) + 40, int((y0 + y1) / 2))) == GREY  # the next tile is clean
    assert out.getpixel((round(x0) + 1, round(y1) - 20)) == (255, 0, 0)  # the region's outline


def test_overlay_accepts_a_reduced_decode_and_keeps_boxes_in_place() -> None:
    m = stored(1600, 1200, 200, 0.0, {(0, 0): 0.9, (5, 7): 0.8})
    small = Image.new("RGB", (400, 300), GREY)  # a JPEG decoded at 1/4 scale
    out = render_overlay(small, m, max_side=800)
    assert out.size == (800, 600)
    assert _is_red(out.getpixel((50, 80)))  # tile (0, 0), 0.9
    r, g, b = out.getpixel((750, 550))  # tile (5, 7), 0.8: orange-red
    assert r > 180 and b < 90 and g < r - 60
    assert out.getpixel((400, 300)) == GREY


def test_heat_is_the_max_of_overlapping_tiles() -> None:
    m = stored(400, 200, 200, 0.5, {(0, 1): 0.6, (0, 2): 0.9})  # tiles at x = 0, 100, 200
    heat = heat_canvas(m, (400, 200), (1.0, 1.0))
    assert heat[100, 50] == pytest.approx(0.1)
    assert heat[100, 150] == pytest.approx(0.6)  # tiles 0 and 1
    assert heat[100, 250] == pytest.approx(0.9)  # tiles 1 and 2: the larger
    assert heat[100, 399] == pytest.approx(0.9)


def test_colour_ramp_is_clear_below_0_3_then_yellow_to_red() -> None:
    rgba = colour_ramp(np.array([[0.0, 0.29, 0.3, 0.65, 1.0]], dtype=np.float32))[0]
    assert rgba[0, 3] == 0 and rgba[1, 3] == 0
    assert tuple(rgba[2, :3]) == (255, 255, 0) and rgba[2, 3] > 0  # yellow from 0.3
    assert tuple(rgba[4, :3]) == (255, 0, 0)  # red at 1.0
    assert rgba[2, 3] < rgba[3, 3] < rgba[4, 3]  # surer tiles cover more of the photo
    assert 0 < rgba[3, 1] < 255


def test_a_map_whose_probabilities_do_not_fit_its_grid_is_refused() -> None:
    m = stored(400, 200, 200, 0.0, {})
    m["probabilities"] = [[0.1, 0.2, 0.3]]
    with pytest.raises(ValueError, match="1 x 2 tiles"):
        render_overlay(Image.new("RGB", (400, 200)), m)


def test_json_has_exactly_the_documented_keys_and_boxes() -> None:
    m = stored(1000, 700, 200, 0.5, {(2, 4): 0.9, (2, 5): 0.95, (0, 0): 0.7})
    out = as_json(m)
    assert list(out) == ["request_id", "width", "height", "tile", "stride", "rows", "cols",
                         "probabilities", "regions", "label", "crack_probability"]  # fmt: skip
    assert out["probabilities"] == m["probabilities"]
    assert out["regions"][0] == {"box": [400, 200, 700, 400], "tiles": 2,
                                 "max_probability": m["regions"][0]["max_probability"]}  # fmt: skip
    assert [set(r) for r in out["regions"]] == [{"box", "tiles", "max_probability"}] * 2


def test_text_summary_says_size_tiles_regions_verdict_and_draws_small_grids() -> None:
    m = stored(1000, 700, 200, 0.5, {(2, 4): 0.9, (2, 5): 0.95, (1, 1): 0.4})
    text = as_text(m)
    assert "1000 x 700 px" in text and f"{m['rows']} x {m['cols']} = " in text
    assert "crack tiles 2 " in text and "regions     1" in text
    assert "box (400, 200)-(700, 400)  2 tiles  max 0.950" in text
    assert "verdict     CRACK (crack probability 0.950)" in text
    grid = text.splitlines()[-m["rows"] :]
    assert m["cols"] == 9 and grid[2].strip() == "....##..." and grid[1].strip() == ".+......."
    big = stored(30000, 3000, 200, 0.0, {})
    assert "grid" not in as_text(big) and "NO_CRACK" in as_text(big)
