"""Models: backbones registry, SRM, CRM, heads and SCRNet, built by `build_model(config)`."""

from __future__ import annotations

from typing import Any

from contextrast.config import ModelConfig, from_dict
from contextrast.models import crm as _crm  # noqa: F401  (registers the context modules)
from contextrast.models import srm as _srm  # noqa: F401  (registers the decoder steps)
from contextrast.models.backbones import create_backbone
from contextrast.models.crm import ContextualRefinementModule, CRMIntermediates
from contextrast.models.intervention import INTERVENTIONS, Intervention
from contextrast.models.registry import ALIGNS, BACKBONES, CHANNEL_ENERGIES, CONTEXTS, SPATIAL_ENERGIES
from contextrast.models.scrnet import SCRNet, SCRNetOutput
from contextrast.models.srm import SemanticRefinementModule, SRMIntermediates


def build_model(config: ModelConfig | dict[str, Any]) -> SCRNet:
    """SCRNet from a `ModelConfig` or a plain dict of its fields (unknown keys are refused)."""
    if isinstance(config, dict):
        config = from_dict(ModelConfig, config)
    return SCRNet(config)


__all__ = [
    "ALIGNS",
    "BACKBONES",
    "CHANNEL_ENERGIES",
    "CONTEXTS",
    "CRMIntermediates",
    "ContextualRefinementModule",
    "INTERVENTIONS",
    "Intervention",
    "SCRNet",
    "SCRNetOutput",
    "SPATIAL_ENERGIES",
    "SRMIntermediates",
    "SemanticRefinementModule",
    "build_model",
    "create_backbone",
]
