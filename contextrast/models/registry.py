"""The model's registries (METHOD.md §1): `BACKBONES` (4-stage encoders), `ALIGNS` (one decoder step: SRM
variants or bilinear), `CONTEXTS` (the module on top of the encoder), and CRM's energy scalings
`CHANNEL_ENERGIES` / `SPATIAL_ENERGIES`. Filled by the modules that define
the variants (`backbones/`, `srm.py`, `crm.py`) when `contextrast.models` is imported."""

from __future__ import annotations

from torch import nn

from contextrast.registry import Registry

BACKBONES: Registry[nn.Module] = Registry("backbone")
ALIGNS: Registry[nn.Module] = Registry("align")
CONTEXTS: Registry[nn.Module] = Registry("context")
CHANNEL_ENERGIES: Registry[object] = Registry("channel energy")
SPATIAL_ENERGIES: Registry[object] = Registry("spatial energy")
