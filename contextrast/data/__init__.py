"""Data: dataset layouts behind a registry (`build_dataset("camvid:/path", split)`), the toy generator,
joint image/label transforms and palettes. Every dataset maps its void label to 255 (METHOD.md §2)."""

from __future__ import annotations

from contextrast.data.base import SegmentationDataset
from contextrast.data.build import DatasetSpec, build_dataset, parse_spec
from contextrast.data.info import DatasetInfo
from contextrast.data.palette import colorize
from contextrast.data.registry import DATASETS

__all__ = ["DATASETS", "DatasetInfo", "DatasetSpec", "SegmentationDataset", "build_dataset", "colorize", "parse_spec"]
