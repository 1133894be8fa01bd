"""Speed of the embedding view's projections (issue 7: UMAP of 10k / 30k points after warm-up ≤ 6 s / ≤ 12 s
on a 2-core CPU). Times `contextrast.analysis.embeddings.umap_project` (PCA to 32 dims, NN-descent,
init="pca", epochs by size) and `pca_project` on L2-normalised 256-D points in class clusters, like
projection-head embeddings, after the numba warm-up the app runs at start-up.

    python -m benchmarks.umap_speed [--quick]

`run(quick) -> dict` returns the numbers for the benchmark aggregator (`<name>_s` with `<name>_target_s`).
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

import numpy as np

from contextrast.analysis import embeddings

TARGETS_S = {10_000: 6.0, 30_000: 12.0}


def clustered_sample(n: int, classes: int = 11, dim: int = 256, seed: int = 0) -> embeddings.PixelSample:
    """n unit vectors around `classes` random centres (spread like a trained head's), with fake provenance."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(classes, dim))
    cls = rng.integers(0, classes, n)
    x = centres[cls] + rng.normal(scale=0.9, size=(n, dim))
    x = (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)
    anchors = centres / np.linalg.norm(centres, axis=1, keepdims=True)
    zeros = np.zeros(n, np.int64)
    return embeddings.PixelSample(layer=0, features=x, image=zeros, gy=zeros, gx=zeros, truth=cls, prediction=cls,
                                  role=zeros, grids=[(1, 1)], sizes=[(1, 1)], anchors=anchors.astype(np.float32),
                                  anchor_classes=np.arange(classes), balanced_by="ground truth", available=n)


def run(quick: bool = False) -> dict[str, Any]:
    sizes = (2_000, 10_000) if quick else (2_000, 10_000, 30_000)
    result: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_1m": os.getloadavg()[0]}
    result["warm_up_s"] = embeddings.warm_up_umap()
    print(f"numba warm-up (tiny fit): {result['warm_up_s']:.1f} s   (1-min load average {result['load_average_1m']:.1f})")
    print(f"{'points':>8}{'PCA s':>9}{'UMAP s':>9}{'target s':>10}{'epochs':>8}")
    for n in sizes:
        sample = clustered_sample(n)
        pca = embeddings.pca_project(sample)
        start = time.perf_counter()
        proj = embeddings.umap_project(sample, seed=0)
        seconds = time.perf_counter() - start
        tag = f"{n // 1000}k"
        result[f"pca_{tag}_s"] = pca.seconds
        result[f"umap_{tag}_s"] = seconds
        if n in TARGETS_S:
            result[f"umap_{tag}_target_s"] = TARGETS_S[n]
        print(f"{n:>8}{pca.seconds:>9.2f}{seconds:>9.2f}{TARGETS_S.get(n, float('nan')):>10.1f}"
              f"{proj.settings['n_epochs']:>8}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2k and 10k points only")
    run(parser.parse_args().quick)


if __name__ == "__main__":
    main()
