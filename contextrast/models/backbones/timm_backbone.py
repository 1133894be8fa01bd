"""Any timm model as a 4-stage encoder (`timm:<name>`), through `features_only=True`."""

from __future__ import annotations

from torch import Tensor

from contextrast.models.backbones.base import Backbone


class TimmBackbone(Backbone):
    """Picks the timm feature levels at reductions 4, 8, 16, 32. Needs `pip install timm`."""

    def __init__(self, name: str, in_channels: int = 3):
        super().__init__()
        try:
            import timm
        except ImportError as e:  # optional dependency
            raise ValueError(f"backbone 'timm:{name}' needs timm: pip install timm") from e
        if name not in timm.list_models():
            raise ValueError(f"timm has no model {name!r} (see timm.list_models())")
        probe = timm.create_model(name, pretrained=False, features_only=True, in_chans=in_channels)
        reductions = probe.feature_info.reduction()
        try:
            indices = tuple(reductions.index(r) for r in (4, 8, 16, 32))
        except ValueError:
            raise ValueError(f"timm:{name} has feature reductions {reductions}; need 4, 8, 16, 32") from None
        self.body = timm.create_model(
            name, pretrained=False, features_only=True, out_indices=indices, in_chans=in_channels
        )
        self.channels = tuple(self.body.feature_info.channels())  # type: ignore[assignment]
        self.in_channels = in_channels

    def forward_features(self, x: Tensor) -> list[Tensor]:
        return list(self.body(x))
