"""Training losses (METHOD.md §2): `ce`, `pixel_contrast`, `ccl`, `contextrast` (CCL + BANE), built by name."""

from contextrast.losses.bane import BaneSelection, bane_negatives
from contextrast.losses.base import LossOutput, SegmentationLoss, cross_entropy
from contextrast.losses.build import build_loss
from contextrast.losses.ccl import ContextualContrastiveLoss
from contextrast.losses.edt import distance_transform_edt, region_distance
from contextrast.losses.pixel_contrast import PixelContrastLoss
from contextrast.losses.record import LayerRecord, LossRecord, SampledPixels
from contextrast.losses.registry import LOSSES, NEGATIVES

__all__ = [
    "LOSSES",
    "NEGATIVES",
    "BaneSelection",
    "ContextualContrastiveLoss",
    "LayerRecord",
    "LossOutput",
    "LossRecord",
    "PixelContrastLoss",
    "SampledPixels",
    "SegmentationLoss",
    "bane_negatives",
    "build_loss",
    "cross_entropy",
    "distance_transform_edt",
    "region_distance",
]
