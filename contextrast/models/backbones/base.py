from __future__ import annotations

from torch import Tensor, nn


class Backbone(nn.Module):
    """Base of the 4-stage encoders: subclasses set `channels` and implement `forward_features`."""

    channels: tuple[int, int, int, int]
    strides: tuple[int, int, int, int] = (4, 8, 16, 32)
    in_channels: int = 3

    def forward(self, x: Tensor) -> list[Tensor]:
        """(B, in_channels, H, W) → [F1..F4], Fi of shape (B, channels[i], H/strides[i], W/strides[i])."""
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected a (B, {self.in_channels}, H, W) tensor; got shape {tuple(x.shape)}"
            )
        if min(x.shape[-2:]) < self.strides[-1]:
            raise ValueError(
                f"image {tuple(x.shape[-2:])} is smaller than the network's stride {self.strides[-1]}"
            )
        return self.forward_features(x)

    def forward_features(self, x: Tensor) -> list[Tensor]:
        raise NotImplementedError
