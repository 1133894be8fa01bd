"""On the shipped CamVid model and its val split: which precision inference defaults to, and what
`contextrast eval` costs beside the bare forward pass over the same images.

`precision` (the measurement behind `contextrast.engine.precision`): fp32 and bf16 autocast, both with
channels_last weights, over the same val images — argmax agreement, the mIoU of each, and the seconds of each;
bf16 autocast may be the CPU default only where the CPU has bf16 units and agreement ≥ 99.5 % and the mIoU
moves by ≤ 0.1 point.

`eval`: in one run, interleaved, (a) the bare forward pass over N val images held in memory (batches of
`DEFAULT_BATCH`, default precision), (b) `engine.evaluate` over the same N images (reading, decoding, batching,
confusion matrix and boundary IoU included), (c) in full mode the same with one image per forward and no
loader thread, and (d) the `contextrast eval` command end to end (process start, imports, model load).
Target: (b) ≤ 1.3 × (a).

The model is the shipped checkpoint trained on CamVid with the best reported val mIoU; its data is the spec its
model card records (a relative path is read from the repository root). Both sections say "not measured" when
the checkpoint or the data is absent.

    python -m benchmarks --only precision,eval [--quick]
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from benchmarks.inference import ROOT, shipped_checkpoints
from contextrast.engine.evaluate import DEFAULT_BATCH, _batches, evaluate, loaded_ahead
from contextrast.engine.inference import class_indices, logits_of, predict_labels, prepare_for_inference
from contextrast.engine.metrics import ConfusionMatrix
from contextrast.engine.precision import AGREEMENT_FLOOR, MIOU_TOLERANCE, autocast, cpu_bf16_units, resolve_precision

EVAL_RATIO_TARGET = 1.3
SPLIT = "val"


def camvid_subject(checkpoints_dir: str | Path = ROOT / "checkpoints") -> tuple[Path, str] | str:
    """(checkpoint, data spec) of the shipped CamVid model with the best val mIoU, or why there is none. The data
    is the card's when it names a folder, else `$CAMVID`, else `data/camvid` in the checkout."""
    from contextrast.data import build_dataset
    from contextrast.engine.checkpoint import read_card

    cards = [(p, read_card(p)) for p in shipped_checkpoints(checkpoints_dir)]
    camvid = [(p, c) for p, c in cards if str(c.dataset).split(":", 1)[0] == "camvid"]
    if not camvid:
        return f"no shipped checkpoint trained on CamVid in {checkpoints_dir}"
    path, card = max(camvid, key=lambda pc: float((pc[1].metrics or {}).get("val_miou") or 0.0))
    name, _, root = str(card.dataset).partition(":")
    if not root or root == "<root>":  # a shipped card names the dataset, not the training machine's folder
        root = os.environ.get("CAMVID") or "data/camvid"
    spec = f"{name}:{(ROOT / root) if not Path(root).is_absolute() else root}"
    try:
        build_dataset(spec, SPLIT)
    except (FileNotFoundError, ValueError) as e:
        return f"data {card.dataset} of {path.name} not found ({str(e).splitlines()[0][:120]})"
    return path, spec


def _prepared(path: Path, spec: str):
    from contextrast.data import build_dataset
    from contextrast.engine.checkpoint import load_checkpoint

    model, _ = load_checkpoint(path)
    return prepare_for_inference(model), build_dataset(spec, SPLIT)


def precision_run(quick: bool = False, checkpoints_dir: str | Path = ROOT / "checkpoints") -> dict[str, Any]:
    """fp32 vs bf16 autocast over the val split (quick: its first 16 images); see the module docstring."""
    found = camvid_subject(checkpoints_dir)
    if isinstance(found, str):
        return {"skipped": f"not measured: {found}"}
    model, data = _prepared(*found)
    count = min(len(data), 16 if quick else len(data))
    k = model.num_classes
    confusion = {p: ConfusionMatrix(k, data.info.ignore_index) for p in ("fp32", "bf16")}
    seconds = {"fp32": 0.0, "bf16": 0.0}
    same = counted = 0
    for batch in _batches(loaded_ahead(data, count), DEFAULT_BATCH):
        x = torch.stack([s["image"] for s in batch])
        masks = torch.stack([s["mask"] for s in batch])
        labels = {}
        for p in ("fp32", "bf16"):
            t0 = time.perf_counter()
            labels[p] = predict_labels(model, x, precision=p)
            seconds[p] += time.perf_counter() - t0
            confusion[p].update(labels[p], masks)
        same += int((labels["fp32"] == labels["bf16"]).sum())
        counted += labels["fp32"].numel()
    miou = {p: c.compute().miou for p, c in confusion.items()}
    agreement = same / counted
    keeps = agreement >= AGREEMENT_FLOOR and abs(miou["bf16"] - miou["fp32"]) <= MIOU_TOLERANCE
    units = cpu_bf16_units()
    return {
        "checkpoint": found[0].name, "split": SPLIT, "images": count, "whole_split": count == len(data),
        "agreement": agreement, "miou_fp32": miou["fp32"], "miou_bf16": miou["bf16"],
        "miou_delta_points": 100 * (miou["bf16"] - miou["fp32"]),
        "seconds_fp32": seconds["fp32"], "seconds_bf16": seconds["bf16"], "bf16_speedup": seconds["fp32"] / seconds["bf16"],
        "agreement_floor": AGREEMENT_FLOOR, "miou_tolerance_points": 100 * MIOU_TOLERANCE,
        "bf16_keeps_predictions": keeps, "bf16_units": units,
        "default": resolve_precision("auto", "cpu"),
        "decision": ("bf16 autocast + channels_last" if units and keeps else "fp32 + channels_last")
        + (f": the CPU has {units}" if units else ": no bf16 units (bf16 emulated)")
        + ("" if keeps else "; bf16 changes the predictions beyond the criterion"),
    }


def _bare_forward(model: torch.nn.Module, images: list[torch.Tensor], precision: str) -> tuple[float, int]:
    """(seconds, images run) of the model alone over `images` in batches of `DEFAULT_BATCH` (nothing read,
    nothing counted)."""
    done = 0
    t0 = time.perf_counter()
    with torch.inference_mode(), autocast(precision, "cpu"):
        for i in range(0, len(images), DEFAULT_BATCH):
            batch = torch.stack(images[i : i + DEFAULT_BATCH])
            class_indices(logits_of(model(batch)))
            done += batch.shape[0]
    return time.perf_counter() - t0, done


def _cli_eval(path: Path, spec: str, count: int) -> dict[str, Any]:
    script = Path(sys.executable).with_name("contextrast")
    prefix = [str(script)] if script.is_file() else [sys.executable, "-m", "contextrast.cli"]
    command = [*prefix, "eval", "--checkpoint", str(path), "--data", spec, "--split", SPLIT,
               "--max-images", str(count), "--no-progress"]
    t0 = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1800, env=os.environ.copy())
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        return {"error": f"contextrast eval exited with {done.returncode}: {done.stderr.strip()[-300:]}"}
    return {"wall_s": seconds, "command": "contextrast eval --checkpoint " + path.name + f" --split {SPLIT} "
            f"--max-images {count}"}


def eval_run(quick: bool = False, checkpoints_dir: str | Path = ROOT / "checkpoints", images: int | None = None,
             cli: bool = True) -> dict[str, Any]:
    """See the module docstring. `images`: how many val images (default: 24 in quick mode, else all);
    `cli`: also time the `contextrast eval` command."""
    found = camvid_subject(checkpoints_dir)
    if isinstance(found, str):
        return {"skipped": f"not measured: {found}"}
    model, data = _prepared(*found)
    count = min(len(data), images or (24 if quick else len(data)))
    precision = resolve_precision("auto", "cpu")
    pictures = [data[i]["image"] for i in range(count)]
    _bare_forward(model, pictures[:DEFAULT_BATCH], precision)  # warm-up
    forward, evaluated, per_image = [], [], []
    for _ in range(1 if quick else 2):  # interleaved rounds: load changes hit both alike
        seconds, forwarded = _bare_forward(model, pictures, precision)
        forward.append(seconds)
        t0 = time.perf_counter()
        metrics = evaluate(model, data, max_images=count, precision=precision)
        evaluated.append(time.perf_counter() - t0)
        if not quick:
            t0 = time.perf_counter()
            evaluate(model, data, max_images=count, precision=precision, batch_size=1, workers=0)
            per_image.append(time.perf_counter() - t0)
    result: dict[str, Any] = {
        "checkpoint": found[0].name, "split": SPLIT, "images": count, "precision": precision,
        "batch_size": DEFAULT_BATCH, "forward_s": min(forward), "evaluate_s": min(evaluated),
        "ratio": min(evaluated) / min(forward), "ratio_target": EVAL_RATIO_TARGET,
        "forward_ms_per_image": 1e3 * min(forward) / count, "evaluate_ms_per_image": 1e3 * min(evaluated) / count,
        "miou": metrics["miou"], "forward_images": forwarded, "evaluate_images": metrics["images"],
    }
    if per_image:
        result["evaluate_batch1_no_loader_s"] = min(per_image)
    if cli:
        result["cli"] = _cli_eval(found[0], found[1], count)
    return result
