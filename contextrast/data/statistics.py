"""Label statistics of a split: class frequencies and the class weights derived from them (METHOD.md §2)."""

from __future__ import annotations

import numpy as np

from contextrast.data.base import SegmentationDataset


def class_frequencies(dataset: SegmentationDataset) -> np.ndarray:
    """(K,) float64: each class's share of the labelled (non-ignored) pixels over the whole split."""
    k = dataset.info.num_classes
    counts = np.zeros(k + 1, np.int64)
    for i in range(len(dataset)):
        _, mask = dataset.load(i)
        counts += np.bincount(np.minimum(mask.ravel(), k), minlength=k + 1)[: k + 1]
    return counts[:k] / max(int(counts[:k].sum()), 1)


def log_frequency_weights(dataset: SegmentationDataset, c: float = 1.02) -> np.ndarray:
    """ENet's class weights 1 / ln(c + p_class) (Paszke et al. 2016): (K,) float64, bounded by 1/ln(c) ≈ 50.5 for an
    absent class, so thin classes (poles, signs, cyclists) weigh more without one rare class dominating."""
    return 1.0 / np.log(c + class_frequencies(dataset))
