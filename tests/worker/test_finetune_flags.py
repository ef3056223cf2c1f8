"""`crackq finetune` recipe flags: --augment reaches the Recipe, and only its choices parse."""

from __future__ import annotations

import pytest

from models.recipe import Recipe
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
