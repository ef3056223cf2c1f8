"""`crackq models show V`: the model card says what data and shifts a model was checked on."""

from __future__ import annotations

from typing import Any

from models.recipe import CARD, Recipe
from worker.modelcard import NOT_CHECKED, model_card

SHIFT_CHECK = {
    "photos": 200,
    "per_class": {"no_crack": 100, "crack": 100},
    "threshold": 0.5,
    "seconds": 41.2,
    "shifts": [
        {"shift": "clean", "simulates": "as they are", "accuracy": 0.995, "f1": 0.995},
        {"shift": "low_contrast", "simulates": "flat light", "accuracy": 0.81, "f1": 0.77},
        {"shift": "blur", "simulates": "soft camera", "accuracy": 0.99, "f1": 0.99},
    ],
    "mean_accuracy": 0.9,
    "worst_shift": "low_contrast",
    "worst_accuracy": 0.81,
}


def row(**changes: Any) -> dict[str, Any]:
    base = {
        "version": "20261207-v1",
        "parent_version": None,
        "status": "promoted",
        "config": Recipe(augment="robust").to_dict(),
        "metrics": {"accuracy": 0.9966, "f1": 0.9965, "auc": 0.9999, "chosen_threshold": 0.5,
                    "shift_check": SHIFT_CHECK},
        "data_summary": {"sources": "folder /data/ozgenel", "train": {"no_crack": 6400,
                         "crack": 6400}, "val": {"no_crack": 1600, "crack": 1600},
                         "split": "grouped by file-number ranges", "skipped": 0},
    }  # fmt: skip
    return {**base, **changes}


def test_the_card_names_data_figures_shifts_and_what_was_not_checked() -> None:
    card = model_card(row())
    assert "folder /data/ozgenel" in card
    assert "training: 12,800 photos (crack 6,400, no_crack 6,400)" in card
    assert "validation: 3,200 photos" in card and "grouped by file-number ranges" in card
    assert "accuracy 0.9966" in card and "ROC AUC 0.9999" in card
    assert "200 of its validation photos (100 crack, 100 no_crack)" in card
    assert "low_contrast" in card and "0.8100" in card
    assert "worst low_contrast 0.8100" in card
    assert "augment robust" in card and "the reference card" not in card.split("\n")[1]
    assert card.endswith(NOT_CHECKED) and "other datasets" in NOT_CHECKED


def test_a_model_without_a_shift_check_says_so() -> None:
    card = model_card(row(metrics={"accuracy": 0.99}, config=CARD.to_dict()))
    assert "shift check: not run" in card
    assert "recipe: the reference card" in card
    assert card.endswith(NOT_CHECKED)


def test_an_old_row_without_data_or_recipe_still_renders() -> None:
    card = model_card(row(metrics=None, data_summary=None, config={"nonsense": 1}))
    assert "data: not recorded" in card and "in-domain figures: not recorded" in card
    assert "recipe: {'nonsense': 1}" in card
