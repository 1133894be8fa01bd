"""The embedding view's projection as a user waits for it, at 10k / 20k / 30k points: the analysis forward pass
of each image (`run_model`, embeddings included), reading the layer's pixels, the class-balanced sample, PCA
and UMAP — what the Embeddings tab computes for a new point count (its cache key includes the count) — after
the numba warm-up the app runs at start-up (timed apart). Pixels: the E2 (1/8) grid of the first 16 val images
of the shipped CamVid model's data (2 700 cells each), else 16 toy pictures at 360×480 balanced by prediction.
Targets: the embedding view's budgets of UMAP alone (10k ≤ 6 s, 30k ≤ 12 s) and the lab's 20k ≤ 5 s for the whole request.

    python -m benchmarks.umap_speed [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from contextrast.analysis import embeddings
from contextrast.analysis.forward import run_model

UMAP_TARGETS_S = {10_000: 6.0, 30_000: 12.0}  # UMAP alone (the embedding view's budget)
TOTAL_TARGETS_S = {20_000: 5.0}  # the whole request (the lab's interaction target)
IMAGES, LAYER = 16, 1


def _pictures() -> tuple[Any, list[np.ndarray], list[np.ndarray | None], str]:
    """(model, rgbs, labels, what) for the projection."""
    from benchmarks.evaluation import SPLIT, camvid_subject
    from contextrast.data import build_dataset
    from contextrast.engine.checkpoint import load_checkpoint

    found = camvid_subject()
    if not isinstance(found, str):
        model, _ = load_checkpoint(found[0])
        data = build_dataset(found[1], SPLIT)
        pairs = [data.load(i) for i in range(min(IMAGES, len(data)))]
        return model.eval(), [p[0] for p in pairs], [p[1].astype(np.int64) for p in pairs], \
            f"{found[0].name} on the first {len(pairs)} {SPLIT} images"
    from contextrast.models import build_model

    toy = build_dataset("toy:n=16,size=360x480", "val")
    return build_model({}).eval(), [toy.load(i)[0] for i in range(IMAGES)], [None] * IMAGES, \
        f"light SCRNet (random weights) on {IMAGES} toy pictures ({found})"


def run(quick: bool = False) -> dict[str, Any]:
    sizes = (10_000, 20_000) if quick else (10_000, 20_000, 30_000)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0],
                              "layer": embeddings.LAYER_NAMES[LAYER]}
    result["warm_up_s"] = embeddings.warm_up_umap()
    model, rgbs, labels, what = _pictures()
    result["pictures"] = what
    print(f"numba warm-up: {result['warm_up_s']:.1f} s; {what}")
    print(f"{'points':>8}{'forward s':>11}{'sample s':>10}{'PCA s':>8}{'UMAP s':>8}{'total s':>9}")
    for n in sizes:
        t0 = time.perf_counter()
        runs = [run_model(model, rgb) for rgb in rgbs]
        t1 = time.perf_counter()
        pixels = [embeddings.layer_pixels(r, LAYER, y) for r, y in zip(runs, labels)]
        sample = embeddings.sample_pixels(pixels, LAYER, min(n, embeddings.MAX_POINTS), 0, model.num_classes)
        t2 = time.perf_counter()
        pca = embeddings.pca_project(sample)
        proj = embeddings.umap_project(sample, seed=0)
        t3 = time.perf_counter()
        tag = f"{n // 1000}k"
        result[f"forward_{tag}_s"] = t1 - t0
        result[f"sample_{tag}_s"] = t2 - t1
        result[f"pca_{tag}_s"] = pca.seconds
        result[f"umap_{tag}_s"] = proj.seconds
        result[f"total_{tag}_s"] = t3 - t0
        result[f"points_{tag}"] = len(sample)
        if n in UMAP_TARGETS_S:
            result[f"umap_{tag}_target_s"] = UMAP_TARGETS_S[n]
        if n in TOTAL_TARGETS_S:
            result[f"total_{tag}_target_s"] = TOTAL_TARGETS_S[n]
        print(f"{len(sample):>8}{t1 - t0:>11.2f}{t2 - t1:>10.2f}{pca.seconds:>8.2f}{proj.seconds:>8.2f}{t3 - t0:>9.2f}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="10k and 20k points only")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
