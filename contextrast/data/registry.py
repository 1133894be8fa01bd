"""The dataset registry: name → dataset class, filled by the layout modules as they are imported."""

from __future__ import annotations

from contextrast.data.base import SegmentationDataset
from contextrast.registry import Registry

DATASETS: Registry[SegmentationDataset] = Registry("dataset")
