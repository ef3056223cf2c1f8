"""Settings of crack maps: photos much larger than the model's patch, tile by tile."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class MapSettings(BaseModel):
    """Crack maps (photos much larger than the model's patch)."""

    map_min_side_factor: float = Field(
        2.0,
        gt=0,
        description="A photo in auto mode is mapped tile by tile when a side is more than "
        "this many times the model's training patch size; otherwise it is classified whole.",
    )
    map_tile: int = Field(
        0, ge=0, description="Tile side in photo pixels; 0 = the checkpoint's training patch."
    )
    map_overlap: float = Field(
        0.0,
        ge=0,
        lt=1,
        description="Fraction of a tile its neighbours overlap (0 = none, the measured best).",
    )
    map_min_region_tiles: int = Field(
        2,
        ge=1,
        description="A mapped photo is a crack when it has a region of at least this many "
        "connected crack tiles (one stray tile is not a crack).",
    )
    map_busy_batch: int = Field(
        2,
        ge=1,
        description="Largest forward pass of map tiles while photos classified whole are "
        "arriving (a photo waits for one such pass at most); the full batch size otherwise.",
    )
    map_time_budget_s: float = Field(
        300.0, gt=0, description="A photo still being mapped after this long fails (map_timeout)."
    )
    map_engine: Literal["tiles", "dense"] = Field(
        "tiles",
        description="tiles: every tile through the model on its own. dense: the network run "
        "fully convolutionally over blocks of the photo, every tile of a block at once (its "
        "stride rounded to whole 32 px cells of the network; worth it with overlap; see the "
        "README's parity figures before turning it on).",
    )
    map_dense_block: int = Field(
        448,
        ge=224,
        le=4096,
        description="Side in network pixels of one dense-map block (one forward pass): larger "
        "shares more work between tiles, smaller keeps single photos' waits short.",
    )
