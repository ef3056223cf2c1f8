"""`crackq finetune` recipe flags: --augment reaches the Recipe, and only its choices parse."""

from __future__ import annotations

import pytest

from models.recipe import CARD, RECIPES, Recipe
from worker.cli.finetune import recipe_from_args
from worker.cli.main import build_parser


@pytest.mark.parametrize("augment", ["card", "robust"])
def test_augment_flag_sets_the_recipe_field(augment: str) -> None:
    args = build_parser().parse_args(["finetune", "--data", "d", "--augment", augment])
    assert recipe_from_args(args).augment == augment


def test_without_the_flag_the_recipe_keeps_its_default() -> None:
    args = build_parser().parse_args(["finetune", "--data", "d", "--epochs", "2"])
    recipe = recipe_from_args(args)
    assert (recipe.epochs, recipe.augment) == (2, Recipe().augment)


def test_an_unknown_augment_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["finetune", "--augment", "heavy"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'heavy'" in capsys.readouterr().err


def test_recipe_card_is_the_reference_card() -> None:
    args = build_parser().parse_args(["finetune", "--data", "d", "--recipe", "card"])
    recipe = recipe_from_args(args)
    assert recipe == CARD
    card = (recipe.batch_size, recipe.epochs, recipe.lr, recipe.optimizer, recipe.schedule)
    assert card == (32, 5, 1e-3, "adamw", "cosine")
    assert (recipe.weight_decay, recipe.grad_clip, recipe.init) == (0.0, None, "auto")
    assert (recipe.augment, recipe.precise_bn_images) == ("card", 0)


def test_flags_override_the_named_recipe() -> None:
    argv = ["finetune", "--data", "d", "--recipe", "card", "--epochs", "1", "--augment", "robust"]
    recipe = recipe_from_args(build_parser().parse_args(argv))
    assert (recipe.epochs, recipe.augment, recipe.precise_bn_images) == (1, "robust", 0)


def test_without_recipe_the_default_recipe_is_used() -> None:
    recipe = recipe_from_args(build_parser().parse_args(["finetune", "--data", "d"]))
    assert recipe == Recipe() == RECIPES["default"]
