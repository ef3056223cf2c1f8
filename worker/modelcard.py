"""A registered model's card: its data, in-domain figures, the shifts it was checked on, its limits."""

from __future__ import annotations

from typing import Any

from models.recipe import CARD, Recipe

NOT_CHECKED = (
    "Not checked on other datasets, cameras or new sites: every figure above comes from "
    "photos of the same sources as its training data, and the shifts are simulated on them. "
    "Before trusting it on a new site, label a few hundred of that site's photos "
    "(crackq label) and fine-tune with --labels."
)


def model_card(row: dict[str, Any]) -> str:
    """Plain text from a registry row's fields (db.tables.ModelVersion as a dict)."""
    metrics, data = row.get("metrics") or {}, row.get("data_summary") or {}
    parent = f", parent {row['parent_version']}" if row.get("parent_version") else ""
    lines = [f"model {row['version']} ({row.get('status', '?')}{parent})"]
    lines += _recipe(row.get("config") or {})
    lines += _data(data)
    lines += _in_domain(metrics)
    lines += groups_lines(metrics.get("groups"))
    lines += _shifts(metrics.get("shift_check"))
    return "\n".join([*lines, "", NOT_CHECKED])


def _recipe(config: dict[str, Any]) -> list[str]:
    if not config:
        return ["recipe: not recorded"]
    try:
        recipe = Recipe.from_dict(config)
    except ValueError:  # a recipe from another version of crackq
        return [f"recipe: {config}"]
    card = _card_fields_match(recipe)
    return [
        f"recipe: {'the reference card' if card else 'crackq default or custom'}; "
        f"augment {recipe.augment}, {recipe.epochs} epoch(s), batch {recipe.batch_size}, "
        f"lr {recipe.lr:g}, init {recipe.init}, {recipe.image_size} px"
    ]


def _card_fields_match(recipe: Recipe) -> bool:
    fields = ("batch_size", "epochs", "lr", "optimizer", "schedule", "weight_decay",
              "grad_clip", "init", "augment", "precise_bn_images")  # fmt: skip
    return all(getattr(recipe, f) == getattr(CARD, f) for f in fields)


def _counts(counts: dict[str, int] | None) -> str:
    if not counts:
        return "unknown"
    each = ", ".join(f"{name} {n:,}" for name, n in sorted(counts.items()))  # JSONB reorders
    return f"{sum(counts.values()):,} photos ({each})"


def _data(data: dict[str, Any]) -> list[str]:
    if not data:
        return ["data: not recorded"]
    lines = [
        f"trained on: {data.get('sources', 'unknown sources')}",
        f"  training: {_counts(data.get('train'))}",
        f"  validation: {_counts(data.get('val'))}, {data.get('split', 'split unknown')}",
    ]
    labels = data.get("labels")
    if labels:
        lines.append(
            f"  operator labels: {labels.get('used', 0):,} used of {labels.get('labelled', 0):,}"
            f" ({labels.get('from_review', 0):,} from the review queue)"
        )
    if data.get("skipped"):
        lines.append(f"  unreadable photos left out: {data['skipped']}")
    return lines


def _in_domain(m: dict[str, Any]) -> list[str]:
    if not m:
        return ["in-domain figures: not recorded"]
    auc = "-" if m.get("auc") is None else f"{m['auc']:.4f}"
    threshold = m.get("chosen_threshold")
    at = f" at threshold {threshold:.2f}" if isinstance(threshold, (int, float)) else ""
    return [
        f"in-domain (its validation photos): accuracy {_f(m.get('accuracy'))}, "
        f"F1 {_f(m.get('f1'))}, ROC AUC {auc}{at}"
    ]


def groups_lines(report: dict[str, Any] | None, shown: int = 5) -> list[str]:
    """The per-group figures (manifests' `group` column): a summary and the worst groups."""
    if not report:
        return []
    lines = [
        f"per group ({report['count']} groups, threshold {report.get('threshold', 0.5):.2f}): "
        f"worst accuracy {_f(report.get('worst_accuracy'))}, mean "
        f"{_f(report.get('mean_accuracy'))}, worst ROC AUC {_f(report.get('worst_auc'))}",
        f"  {'group':<24} {'n':>5} {'crack':>5} {'accuracy':>8} {'AUC':>6}",
    ]
    for r in (report.get("worst") or [])[:shown]:
        lines.append(
            f"  {str(r['group'])[:24]:<24} {r['n']:>5} {r['positives']:>5} "
            f"{r['accuracy']:>8.4f} {_f(r.get('auc')):>6}"
        )
    return lines


def _shifts(check: dict[str, Any] | None) -> list[str]:
    if not check or not check.get("shifts"):
        return ["shift check: not run (recipe shift_check_photos 0, or a run before it)"]
    per_class = ", ".join(f"{n} {k}" for k, n in sorted((check.get("per_class") or {}).items()))
    lines = [
        f"shift check: {check['photos']} of its validation photos ({per_class}), "
        f"threshold {check.get('threshold', 0.5):.2f}, {check.get('seconds', 0):.0f} s",
        f"  {'shift':<14} {'accuracy':>8} {'F1':>6}  simulates",
    ]
    for r in check["shifts"]:
        lines.append(
            f"  {r['shift']:<14} {r['accuracy']:>8.4f} {r['f1']:>6.4f}  {r.get('simulates', '')}"
        )
    lines.append(
        f"  mean over shifts {_f(check.get('mean_accuracy'))}, worst "
        f"{check.get('worst_shift')} {_f(check.get('worst_accuracy'))}"
    )
    return lines


def _f(x: Any) -> str:
    return f"{x:.4f}" if isinstance(x, (int, float)) else "-"
