"""Training runs read back for the results table: each run's checkpoint evaluated on one or more splits (the first
is the one the claims read), with flip testing reported apart, what its modules do (`contextrast diagnose`), its
cost, training time and logged val curve (`RunResult`), and runs grouped by the switches they vary.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from contextrast.analysis.diagnose import diagnose
from contextrast.config import loss_config_from_card
from contextrast.engine.card import earlier_training_time_s, read_card, read_run_lineage
from contextrast.engine.checkpoint import load_checkpoint
from contextrast.engine.evaluate import evaluate
from contextrast.engine.inference import prepare_for_inference
from contextrast.models.cost import count_cost

VARIANT_KEYS = ("backbone", "align", "context", "loss")
LATE_POINTS = 4  # the late-curve readings of a run (mean, wobble) use its last this many val mIoUs


@dataclass
class RunResult:
    """One run's row of the table: its variant and seed, the evaluated numbers, cost, time and val curve."""

    run: str
    variant: dict[str, str]  # backbone, align, context, loss
    seed: int
    iterations: int
    scheduled_iterations: int
    best_iteration: int
    miou: float
    boundary_iou: float
    per_class_iou: dict[str, float | None]
    params_inference: int
    gmacs_360x480: float
    training_time_s: float
    hardware: str
    val_curve: tuple[tuple[int, float], ...] = ()  # (iteration, val mIoU) as logged during training
    # every split evaluated: {split: {miou, boundary_iou, per_class_iou, flip_miou, held_out}}; the first is the
    # one miou / boundary_iou / per_class_iou above repeat (the claims' split)
    splits: dict[str, dict[str, Any]] = field(default_factory=dict)
    train_split: str = "train"
    diagnose: dict[str, Any] | None = None  # `contextrast diagnose` on the first split (a subset of its images)
    earlier_training_time_s: float = 0.0  # the stages it was initialised from (the card's lineage)

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.variant[k] for k in VARIANT_KEYS)

    @property
    def finished(self) -> bool:
        return self.iterations >= self.scheduled_iterations

    @property
    def late_gain(self) -> float | None:
        """Val mIoU gained over the last third of the iterations run (≈ 0 once the curve has flattened)."""
        if len(self.val_curve) < 2:
            return None
        last_it, last = self.val_curve[-1]
        _, earlier = min(self.val_curve, key=lambda p: abs(p[0] - 2 * last_it / 3))
        return last - earlier

    @property
    def late_points(self) -> list[float]:
        """The last LATE_POINTS val mIoUs logged during training."""
        return [m for _, m in self.val_curve[-LATE_POINTS:]]

    @property
    def late_mean(self) -> float | None:
        """Mean of the last LATE_POINTS val mIoUs: a second reading that one lucky evaluation cannot set."""
        tail = self.late_points
        return statistics.fmean(tail) if tail else None

    @property
    def late_wobble(self) -> float | None:
        """Evaluation-to-evaluation noise of the last LATE_POINTS val mIoUs: std of their successive differences
        over √2 (for independent noise of std σ a difference has std σ√2; a steady trend drops out)."""
        tail = self.late_points
        steps = [b - a for a, b in zip(tail, tail[1:])]
        return statistics.stdev(steps) / math.sqrt(2) if len(steps) > 1 else None


def read_val_curve(run_dir: str | Path) -> tuple[tuple[int, float], ...]:
    """(iteration, val mIoU) pairs from run_dir/metrics.jsonl; a resumed run's repeated points keep the last."""
    path = Path(run_dir) / "metrics.jsonl"
    points: dict[int, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if isinstance(row.get("val"), dict) and "miou" in row["val"]:
                points[int(row["iter"])] = float(row["val"]["miou"])
    return tuple(sorted(points.items()))


def checkpoint_of(run_dir: Path, kind: str) -> Path:
    """The checkpoint directory `run_dir/<kind>` (or `run_dir` itself when it is one)."""
    for candidate in (run_dir / kind, run_dir):
        if (candidate / "model_card.json").is_file():
            return candidate
    raise FileNotFoundError(f"{run_dir} has no {kind}/ checkpoint (model.safetensors + model_card.json)")


def held_out(dataset, data: str, train_split: str) -> bool | None:
    """Whether no image of `dataset` shares a group (CamVid's sequence, Cityscapes' city: `sample_group`) with
    the run's training split: frames of a sequence the model trained on are not a street it never saw. None when
    that split cannot be listed here (another machine's path, a generated dataset)."""
    from contextrast.data import build_dataset
    from contextrast.data.splits import sample_group

    try:
        seen = {sample_group(n) for n in build_dataset(data, train_split).names}
    except (ValueError, FileNotFoundError):
        return None
    return not (seen & {sample_group(n) for n in dataset.names})


def summarise_run(run_dir: str | Path, datasets: Mapping[str, Any], data: str = "", device: str = "cpu",
                  kind: str = "final", flip: bool = False, diagnose_images: int = 0,
                  progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Evaluate `run_dir/<kind>` on each of `datasets` ({split: dataset}; the first is the claims' split): mIoU,
    per-class IoU, boundary IoU, and with `flip` the flip-tested mIoU apart; with `diagnose_images` > 0, what its
    modules do on that many images of the first split. Reads cost and training time (the final or last card holds
    the whole run's time)."""
    run_dir = Path(run_dir)
    path = checkpoint_of(run_dir, kind)
    first = next(iter(datasets.values()))
    model, card = load_checkpoint(path, device=device, num_classes=first.info.num_classes)
    model = prepare_for_inference(model)
    train_split = str(card.train.get("train_split", "train"))
    splits: dict[str, dict[str, Any]] = {}
    for split, dataset in datasets.items():
        metrics = evaluate(model, dataset, device=device, boundary=True, progress=progress)
        bi = metrics["boundary_iou"]
        splits[split] = {
            "miou": float(metrics["miou"]), "boundary_iou": float(bi["mean"] if isinstance(bi, dict) else bi),
            "per_class_iou": metrics["per_class_iou"],
            "flip_miou": float(evaluate(model, dataset, device=device, boundary=False, flip=True)["miou"]) if flip else None,
            "held_out": held_out(dataset, data, train_split) if data else None,
        }
    diag = None
    if diagnose_images > 0:
        diag = diagnose(model, first, loss_config_from_card(card.loss or {}), max_images=diagnose_images)
    cost = count_cost(model.cpu(), (360, 480), model.config.in_channels)
    whole = next((read_card(p) for p in (run_dir / "final", run_dir / "last") if (p / "model_card.json").is_file()), card)
    main = next(iter(splits.values()))
    return RunResult(
        run=run_dir.name,
        variant={"backbone": card.model["backbone"], "align": card.model["align"], "context": card.model["context"],
                 "loss": card.loss.get("name", "ce")},
        seed=int(card.train.get("seed", 0)),
        iterations=int(whole.iteration),
        scheduled_iterations=int(whole.train.get("iterations", whole.iteration)),
        best_iteration=int(card.iteration),
        miou=main["miou"],
        boundary_iou=main["boundary_iou"],
        per_class_iou=main["per_class_iou"],
        params_inference=cost.params_inference,
        gmacs_360x480=round(cost.gmacs, 2),
        training_time_s=float(whole.training_time_s),
        hardware=whole.hardware,
        earlier_training_time_s=earlier_training_time_s(whole.lineage or read_run_lineage(run_dir)),
        val_curve=read_val_curve(run_dir),
        splits=splits,
        train_split=train_split,
        diagnose=diag,
    )


def group_by_variant(results: Sequence[RunResult]) -> dict[tuple[str, ...], list[RunResult]]:
    """Runs keyed by (backbone, align, context, loss): the runs of one key differ only in seed."""
    groups: dict[tuple[str, ...], list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.key, []).append(r)
    return groups
