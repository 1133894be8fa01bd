"""Batch norm folded into the convolution before it, for inference: an eval-mode BatchNorm2d is an affine map per
channel, so conv → BN equals one conv with rescaled weights and a bias (torch.nn.utils.fusion.fuse_conv_bn_eval).
It saves the BN pass over every activation map, which costs a tenth of the CPU forward at large sizes
(docs/performance.md, "Where the time goes").

Pairs are found in `nn.Sequential` containers (a Conv2d directly followed by a BatchNorm2d) and in modules that
name theirs in a `conv_bn_pairs` attribute (the ResNet blocks and stem, whose forward calls `bn(conv(x))`). The BN
is replaced by `nn.Identity`, so module names and hooks stay where they were. Only for eval mode: a folded model
must not be trained.
"""

from __future__ import annotations

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d) and bn.track_running_stats
            and bn.running_mean is not None and conv.out_channels == bn.num_features)


def fold_batch_norms(model: nn.Module) -> int:
    """Fold every conv → BN pair of `model` (in eval mode) in place; returns how many were folded."""
    if model.training:
        raise ValueError("fold_batch_norms needs a model in eval mode: a folded model has no batch norm to train")
    folded = 0
    for module in list(model.modules()):
        pairs: list[tuple[str, str]] = list(getattr(module, "conv_bn_pairs", ()))
        if isinstance(module, nn.Sequential):
            names = list(module._modules)
            pairs += [(a, b) for a, b in zip(names, names[1:])]
        for conv_name, bn_name in pairs:
            conv, bn = getattr(module, conv_name, None), getattr(module, bn_name, None)
            if _foldable(conv, bn):
                setattr(module, conv_name, fuse_conv_bn_eval(conv, bn))
                setattr(module, bn_name, nn.Identity())
                folded += 1
    return folded
