"""Shipping a run: its evaluated checkpoint copied to `checkpoints/<name>/` with the measured metrics in its card."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from contextrast.engine.checkpoint import load_checkpoint, save_checkpoint
from contextrast.experiments.runs import RunResult, checkpoint_of


def ship_checkpoint(run_dir: str | Path, dest: str | Path, result: RunResult, split: str, report: str | Path,
                    kind: str = "best") -> Path:
    """Copy `run_dir/<kind>` to checkpoint directory `dest` (named after it), with the metrics this report
    measured in its model card, so the shipped card and the results table hold the same numbers."""
    model, card = load_checkpoint(checkpoint_of(Path(run_dir), kind))
    metrics = {
        f"{split}_miou": result.miou, f"{split}_boundary_iou": result.boundary_iou,
        "per_class_iou": result.per_class_iou, "split": split, "iteration": result.best_iteration,
        "note": f"best-on-val checkpoint (iteration {result.best_iteration}) of a run of {result.iterations} / "
                f"{result.scheduled_iterations} scheduled iterations; measured by {report}",
    }
    card = replace(card, name=Path(dest).name, metrics=metrics, training_time_s=result.training_time_s, created="")
    return save_checkpoint(dest, model, card)
