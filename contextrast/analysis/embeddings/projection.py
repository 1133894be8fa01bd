"""The sampled points and their anchors projected to one plane: PCA (instant) or UMAP (umap-learn), and the
warm-up that compiles UMAP's kernels in the background at app start-up.
"""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from contextrast.analysis.embeddings.sampling import PixelSample

UMAP_NEIGHBOURS = 10
PCA_DIMS = 32  # UMAP runs on the top principal components: same neighbours, a fraction of the distance cost


@dataclass
class Projection:
    """coords (N, 2) of the points and anchor_coords (A, 2) of the anchors, in one plane."""

    method: str
    coords: np.ndarray
    anchor_coords: np.ndarray
    seconds: float
    settings: dict[str, object] = field(default_factory=dict)


def _stacked(sample: PixelSample) -> np.ndarray:
    return np.concatenate([sample.features, sample.anchors]).astype(np.float32)


def pca_project(sample: PixelSample) -> Projection:
    """The top two principal components (scikit-learn PCA, exact covariance solver: deterministic)."""
    from sklearn.decomposition import PCA

    start = time.perf_counter()
    x = _stacked(sample)
    z = PCA(2, svd_solver="covariance_eigh").fit_transform(x).astype(np.float32)
    n = len(sample)
    return Projection("PCA", z[:n], z[n:], time.perf_counter() - start)


def umap_epochs(n: int) -> int:
    """Fewer epochs for bigger samples: each epoch costs ~n·n_neighbours updates, and large maps settle sooner."""
    return 200 if n <= 5_000 else 100 if n <= 12_000 else 80


def umap_project(sample: PixelSample, seed: int = 0, n_epochs: int | None = None, n_neighbors: int = UMAP_NEIGHBOURS,
                 show_epochs: bool = False) -> Projection:
    """UMAP (umap-learn) of the points and anchors.

    Speed choices (benchmarks/umap_speed.py): the features are first reduced to PCA_DIMS principal
    components; init="pca" (deterministic, far cheaper than the spectral init); low_memory NN-descent;
    n_neighbors 10; epochs from `umap_epochs`. umap's `random_state` would force a single thread, so it
    is left unset and the global NumPy generator is seeded instead: the initialisation is fixed, the
    parallel SGD may still vary slightly between runs (the app caches each layout per seed).
    `show_epochs` turns on umap's own tqdm epoch bar (written to a sink) so a caller can track it.
    """
    import umap
    from sklearn.decomposition import PCA

    start = time.perf_counter()
    x = _stacked(sample)
    if x.shape[0] < 3:
        raise ValueError("UMAP needs at least 3 points")
    dims = min(PCA_DIMS, x.shape[1], x.shape[0])
    z = PCA(dims, svd_solver="covariance_eigh").fit_transform(x).astype(np.float32)
    epochs = int(n_epochs) if n_epochs is not None else umap_epochs(x.shape[0])
    np.random.seed(int(seed) % 2**32)
    reducer = umap.UMAP(n_components=2, n_neighbors=min(int(n_neighbors), x.shape[0] - 1), n_epochs=epochs,
                        init="pca", low_memory=True, n_jobs=-1, force_approximation_algorithm=True,
                        tqdm_kwds={"disable": not show_epochs, "file": io.StringIO()})
    coords = reducer.fit_transform(z).astype(np.float32)
    n = len(sample)
    return Projection("UMAP", coords[:n], coords[n:], time.perf_counter() - start,
                      dict(n_epochs=epochs, n_neighbors=reducer.n_neighbors, pca_dims=dims))


_warm = threading.Event()


def warm_up_umap() -> float:
    """Compile umap's numba kernels (NN-descent, fuzzy set, SGD) on a tiny random fit; returns seconds.
    The same code path as `umap_project`, so a later real call finds everything compiled."""
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    n, d = 300, 16
    fake = PixelSample(layer=0, features=rng.normal(size=(n, d)).astype(np.float32), image=np.zeros(n, np.int64),
                       gy=np.zeros(n, np.int64), gx=np.zeros(n, np.int64), truth=np.zeros(n, np.int64),
                       prediction=np.zeros(n, np.int64), role=np.zeros(n, np.int64), grids=[(1, 1)], sizes=[(1, 1)],
                       anchors=np.zeros((0, d), np.float32), anchor_classes=np.zeros(0, np.int64),
                       balanced_by="prediction", available=n)
    umap_project(fake, n_epochs=5)
    _warm.set()
    return time.perf_counter() - start


def umap_is_warm() -> bool:
    return _warm.is_set()
