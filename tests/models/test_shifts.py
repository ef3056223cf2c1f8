"""The robustness shifts: size and mode kept, seeded, and each changes what it claims to."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from models.shifts import CLEAN, SHIFTS, rng_for, surface_texture

W, H = 96, 64  # not square, so a shift that mixes up width and height shows
RANDOM = {"noise", "texture"}  # the shifts that draw from the generator


def photo(seed: int = 0) -> Image.Image:
    """A grey gradient with per-channel grain and a dark vertical 'crack' 3 px wide."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:H, 0:W]
    pixels = (110 + 40 * x / W + 20 * y / H)[..., None] + rng.normal(0, 12, (H, W, 3))
    pixels[:, W // 2 - 2 : W // 2 + 1] = 35
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def shifted(name: str, image: Image.Image | None = None, index: int = 0) -> np.ndarray:
    out = SHIFTS[name](image or photo(), rng_for(0, name, index))
    assert out.mode == "RGB"
    return np.asarray(out, dtype=np.float64)


def detail(pixels: np.ndarray) -> float:
    """Mean absolute difference of horizontal neighbours: fine detail and noise."""
    return float(np.abs(np.diff(pixels.mean(axis=-1), axis=1)).mean())


CLEAN_PIXELS = np.asarray(photo(), dtype=np.float64)


def test_registry_names_and_descriptions() -> None:
    assert len(SHIFTS) == 10 and CLEAN.name not in SHIFTS
    for name, shift in SHIFTS.items():
        assert shift.name == name
        assert shift.simulates and "\n" not in shift.simulates


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_keeps_size_and_mode_and_changes_pixels(name: str) -> None:
    out = shifted(name)
    expected = (W, H) if name == "rot90" else (H, W)  # a turned camera swaps the sides
    assert out.shape == (*expected, 3)
    if name != "rot90":
        change = np.abs(out - CLEAN_PIXELS).mean()
        assert 3.0 < change < 60.0, change  # visibly changed, yet the same photo
    square = Image.new("RGB", (50, 50), (90, 120, 150))
    assert SHIFTS[name](square, rng_for(0, name, 0)).size == (50, 50)


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_deterministic_for_a_seed(name: str) -> None:
    assert np.array_equal(shifted(name, index=3), shifted(name, index=3))
    # Only the random shifts differ between photos; the rest are fixed transforms.
    assert np.array_equal(shifted(name, index=3), shifted(name, index=4)) == (name not in RANDOM)


def test_accepts_other_modes() -> None:
    grey = photo().convert("L")
    assert SHIFTS["blur"](grey, rng_for(0, "blur", 0)).mode == "RGB"


@pytest.mark.parametrize("name", ["blur", "half_scale", "jpeg"])
def test_detail_losing_shifts_lose_detail(name: str) -> None:
    assert detail(shifted(name)) < 0.6 * detail(CLEAN_PIXELS)


def test_noise_adds_grain_not_brightness() -> None:
    out = shifted("noise")
    assert detail(out) > 1.3 * detail(CLEAN_PIXELS)
    assert abs(out.mean() - CLEAN_PIXELS.mean()) < 2.0


def test_low_contrast_shrinks_the_spread_around_the_mean() -> None:
    out = shifted("low_contrast")
    assert 0.3 < out.std() / CLEAN_PIXELS.std() < 0.5
    assert abs(out.mean() - CLEAN_PIXELS.mean()) < 3.0


def test_colour_cast_warms_the_photo() -> None:
    r, g, b = shifted("colour_cast").reshape(-1, 3).mean(axis=0)
    r0, g0, b0 = CLEAN_PIXELS.reshape(-1, 3).mean(axis=0)
    assert r / g > 1.1 * r0 / g0 and b / g < 0.85 * b0 / g0


def test_greyscale_has_equal_channels() -> None:
    out = shifted("greyscale")
    assert np.array_equal(out[..., 0], out[..., 1]) and np.array_equal(out[..., 1], out[..., 2])


def test_rot90_turns_the_pixels() -> None:
    assert np.array_equal(shifted("rot90"), np.rot90(CLEAN_PIXELS))


def dark_columns(pixels: np.ndarray) -> int:
    return int((pixels.mean(axis=(0, 2)) < 70).sum())


def test_double_scale_widens_the_crack_and_half_scale_keeps_its_place() -> None:
    assert dark_columns(CLEAN_PIXELS) == 3
    assert 5 <= dark_columns(shifted("double_scale")) <= 7
    centre = shifted("half_scale").mean(axis=(0, 2))
    assert W // 2 - 3 <= int(np.argmin(centre)) <= W // 2 + 1


def test_texture_changes_the_surface_but_keeps_the_crack() -> None:
    out = shifted("texture")
    columns = out.mean(axis=(0, 2))
    crack, surface = (
        columns[W // 2 - 2 : W // 2 + 1].mean(),
        np.delete(columns, range(W // 2 - 3, W // 2 + 2)),
    )
    assert crack < surface.mean() - 30  # still a dark line on a lighter surface
    # the blotches are low-frequency: neighbouring pixels of the texture alone stay close
    tex = np.asarray(surface_texture((W, H), np.random.default_rng(0)), dtype=np.float64)
    assert tex.std() > 10 and detail(tex) < tex.std()
