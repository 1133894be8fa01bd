"""Speed of the lab's analysis (the lab's target: all four views of one 360×480 image in ≤ 1.5 s on a 2-core
CPU after warm-up).

Times what the app's "Analyse" event computes for a new image (no cache): the analysis forward
pass, the Predict view, one SRM step's view, the CRM views (one spatial row and the channel
figure) and the BANE view (the Contextrast loss with its record, then the drawing), each image a
different toy picture so nothing is reused. Model: `--checkpoint DIR`, else the light SCRNet
(`build_model({})`, random weights; speed does not depend on them).

    python -m benchmarks.app_speed [--quick] [--checkpoint DIR]

`run(quick) -> dict` returns the numbers for the benchmark aggregator.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import torch

from contextrast.analysis import attention, bane, offsets, predict
from contextrast.analysis.forward import run_model
from contextrast.data import build_dataset
from contextrast.models import build_model

SIZE = (360, 480)
TARGET_S = 1.5


def load_model(checkpoint: str | None):
    if checkpoint:
        from contextrast.engine.checkpoint import load_checkpoint

        model, card = load_checkpoint(checkpoint)
        return model, list(card.classes), card.palette
    model = build_model({}).eval()
    k = model.num_classes
    return model, [f"class {i}" for i in range(k)], [[(37 * i) % 256, (91 * i) % 256, (53 * i) % 256] for i in range(k)]


def analyse_once(model, classes, palette, rgb, labels) -> dict[str, float]:
    """Seconds spent in each view for one new image, as the app's analyse event computes them."""
    times: dict[str, float] = {}
    t0 = time.perf_counter()
    run = run_model(model, rgb)
    t1 = time.perf_counter()
    maps = predict.prediction_maps(run.logits)
    predict.overlay(rgb, maps.labels, palette, 0.5)
    predict.confidence_rgb(maps), predict.entropy_rgb(maps), predict.legend(maps.labels, classes, palette)
    predict.colorize(labels, palette), predict.colorize(maps.labels, palette)
    t2 = time.perf_counter()
    offsets.render(run, 2)
    t3 = time.perf_counter()
    attention.render_spatial(run, SIZE[0] / 2, SIZE[1] / 2)
    attention.render_channels(run, model)
    t4 = time.perf_counter()
    record = bane.run_loss(run, labels, len(classes))
    bane.render(record, rgb, 1, 1, classes)
    t5 = time.perf_counter()
    times.update(forward=t1 - t0, predict=t2 - t1, srm=t3 - t2, crm=t4 - t3, bane=t5 - t4, total=t5 - t0)
    return times


def run(quick: bool = False, checkpoint: str | None = None) -> dict[str, Any]:
    repeats = 3 if quick else 8
    model, classes, palette = load_model(checkpoint)
    toy = build_dataset(f"toy:n={repeats + 1},size={SIZE[0]}x{SIZE[1]}", "val")
    samples = [toy.load(i) for i in range(repeats + 1)]
    analyse_once(model, classes, palette, samples[0][0], samples[0][1].astype("int64"))  # warm-up
    rows = [analyse_once(model, classes, palette, rgb, mask.astype("int64")) for rgb, mask in samples[1:]]
    median = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
    result = {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "input": [1, 3, *SIZE],
        "model": checkpoint or "build_model({}) (light SCRNet, random weights)",
        "repeats": repeats,
        **{f"{k}_s": v for k, v in median.items()},
        "total_max_s": max(r["total"] for r in rows),
        "target_s": TARGET_S,
    }
    print(f"lab analysis speed, CPU ({result['threads']} threads), one {SIZE[0]}×{SIZE[1]} image, "
          f"median of {repeats} after warm-up")
    print(f"{'view':<30}{'seconds':>10}")
    for k, v in median.items():
        print(f"{k:<30}{v:>10.3f}")
    print(f"{'total, worst':<30}{result['total_max_s']:>10.3f}   (target ≤ {TARGET_S})")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 images instead of 8")
    parser.add_argument("--checkpoint", help="a checkpoint directory (default: the light SCRNet, random weights)")
    args = parser.parse_args()
    run(args.quick, args.checkpoint)


if __name__ == "__main__":
    main()
