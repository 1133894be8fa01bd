"""Shipping a run: its evaluated checkpoint copied to `checkpoints/<name>/` with the measured metrics in its card."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from contextrast.data import parse_spec
from contextrast.engine.card import read_run_lineage
from contextrast.engine.checkpoint import load_checkpoint, save_checkpoint
from contextrast.experiments.runs import RunResult, checkpoint_of

SELECTION = {
    "final": "the checkpoint at the end of the schedule (the EMA of the weights where the run kept one): no "
             "selection among evaluations",
    "best": "the best of the run's validation evaluations",
    "last": "the latest checkpoint of an unfinished run",
}


def ship_checkpoint(run_dir: str | Path, dest: str | Path, result: RunResult, report: str | Path,
                    kind: str = "final") -> Path:
    """Copy `run_dir/<kind>` to checkpoint directory `dest` (named after it), with every split this report
    measured in its model card (`<split>_miou`, `<split>_boundary_iou`, `<split>_flip_miou`, whether the split was
    held out), so the shipped card and the results table hold the same numbers. The first split's numbers are also
    the card's `val_miou` when that split is `val`."""
    model, card = load_checkpoint(checkpoint_of(Path(run_dir), kind))
    metrics: dict = {"iteration": result.best_iteration, "selection": SELECTION[kind],
                     "note": f"{result.iterations} / {result.scheduled_iterations} scheduled iterations; measured by "
                             f"{report}"}
    splits = result.splits or {"val": {"miou": result.miou, "boundary_iou": result.boundary_iou,
                                       "per_class_iou": result.per_class_iou}}
    for split, m in splits.items():
        key = "val" if split == "val" else split.replace(":", "_").replace("=", "_").replace("+", "_")
        metrics[f"{key}_miou"] = m["miou"]
        metrics[f"{key}_boundary_iou"] = m["boundary_iou"]
        if m.get("flip_miou") is not None:
            metrics[f"{key}_flip_miou"] = m["flip_miou"]
        if m.get("held_out") is not None:
            metrics[f"{key}_held_out"] = m["held_out"]
        metrics.setdefault("per_class_iou", m["per_class_iou"])
        metrics.setdefault("split", split)
    # the dataset's root is a path on the training machine: a shipped card names the dataset and its splits only
    name = parse_spec(card.dataset).name
    train = {**card.train, "data": f"{name}:<root>" if ":" in str(card.train.get("data", "")) else name}
    if card.train.get("run_dir"):  # likewise the run directory: only its name says something to a reader
        train["run_dir"] = f"runs/{Path(card.train['run_dir']).name}"
    # a run started before cards carried their lineage has it only in its run directory
    lineage = card.lineage or read_run_lineage(run_dir)
    card = replace(card, name=Path(dest).name, dataset=name, train=train, metrics=metrics,
                   training_time_s=result.training_time_s, created="", lineage=lineage)
    return save_checkpoint(dest, model, card)
