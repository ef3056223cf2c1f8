"""The fine-tuning recipe: the reference card, crackq's defaults, validation, JSON round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest

from models.recipe import CARD, RECIPES, Recipe

REFERENCE_CARD = {
    "batch_size": 32,
    "epochs": 5,
    "lr": 1e-3,
    "optimizer": "adamw",
    "schedule": "cosine",
    "weight_decay": 0.0,
    "grad_clip": None,
    "seed": 0,
    "init": "auto",
    "precision": "auto",
    "channels_last": True,
    "num_workers": 2,
    "image_size": 224,
    "val_fraction": 0.2,
    "max_train_images": None,
    "time_limit_s": None,
    "precise_bn_images": 0,  # the card had no BatchNorm recomputation
    "augment": "card",  # the card's flips, turns and mild jitter (models.augment)
    "shift_check_photos": 100,  # reporting only: the run's shift check, no weight changes
}
# crackq's defaults differ from the card only where a measurement chose (README "Fine-tuning")
DEFAULTS = {**REFERENCE_CARD, "precise_bn_images": 1024}


def test_the_card_recipe_is_the_reference_card() -> None:
    assert CARD.to_dict() == REFERENCE_CARD
    assert RECIPES["card"] is CARD


def test_defaults_differ_from_the_card_only_where_measured() -> None:
    assert Recipe().to_dict() == DEFAULTS
    assert RECIPES["default"] == Recipe()


def test_json_round_trip_gives_an_equal_recipe() -> None:
    recipe = Recipe(
        batch_size=16, epochs=2, lr=3e-4, grad_clip=1.0, seed=7, init="random",
        precision="fp32", channels_last=False, num_workers=0, image_size=64,
        max_train_images=100, time_limit_s=30.0, augment="robust",
    )  # fmt: skip
    assert Recipe.from_dict(json.loads(json.dumps(recipe.to_dict()))) == recipe


def test_from_dict_coerces_json_numbers_and_fills_defaults() -> None:
    recipe = Recipe.from_dict({"lr": 1, "grad_clip": 2, "epochs": 3.0})
    assert (recipe.lr, recipe.grad_clip, recipe.epochs) == (1.0, 2.0, 3)
    assert isinstance(recipe.lr, float) and isinstance(recipe.epochs, int)
    assert recipe.batch_size == 32


def test_a_recipe_stored_before_augment_existed_loads_with_the_default() -> None:
    stored = {k: v for k, v in DEFAULTS.items() if k not in ("augment", "shift_check_photos")}
    assert Recipe.from_dict(stored) == Recipe()


@pytest.mark.parametrize(
    "bad",
    [
        {"optimizer": "sgd"},
        {"init": "pretrained"},
        {"precision": "fp8"},
        {"batch_size": 0},
        {"lr": -1.0},
        {"val_fraction": 1.0},
        {"grad_clip": 0.0},
        {"epochs": 2.5},
        {"channels_last": "yes"},
        {"augment": "heavy"},
        {"augment": "Card"},
        {"shift_check_photos": -1},
        {"learning_rate": 0.1},
    ],
)
def test_invalid_recipes_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        Recipe.from_dict(bad)


def test_recipe_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Recipe().lr = 0.1  # type: ignore[misc]
