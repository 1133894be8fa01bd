"""The optimiser side of training: parameter groups, the learning-rate schedule and the EMA of the weights."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from contextrast.config import ExperimentConfig


def poly_lr(base_lr: float, power: float, total: int, warmup: int = 0) -> Callable[[int], float]:
    """Poly decay base·(1 − it/total)^power, after a linear warm-up from 0 over the first `warmup` iterations."""

    def lr_at(it: int) -> float:
        ramp = min(1.0, (it + 1) / warmup) if warmup > 0 else 1.0
        return ramp * base_lr * (1 - min(it, total) / total) ** power

    return lr_at


def build_optimizer(model: nn.Module, cfg: ExperimentConfig) -> torch.optim.Optimizer:
    """SGD or AdamW over three groups: weights with decay; norms, biases and CRM's γ without (standard practice,
    and γ must be free to grow); SRM's offset heads at lr × `offset_lr_scale` (each group's `lr_scale`)."""
    t = cfg.train
    groups: dict[str, list[nn.Parameter]] = {"decay": [], "no_decay": [], "offset": []}
    for name, p in model.named_parameters():
        if ".offset_head." in f".{name}":
            groups["offset"].append(p)
        else:
            groups["no_decay" if p.ndim <= 1 or name.endswith("gamma") else "decay"].append(p)
    params = [
        {"params": groups["decay"], "weight_decay": t.weight_decay, "lr_scale": 1.0},
        {"params": groups["no_decay"], "weight_decay": 0.0, "lr_scale": 1.0},
        {"params": groups["offset"], "weight_decay": t.weight_decay, "lr_scale": t.offset_lr_scale},
    ]
    params = [g for g in params if g["params"]]
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum)
    return torch.optim.AdamW(params, lr=t.lr)


def weight_average(model: nn.Module, decay: float) -> AveragedModel | None:
    """The EMA of the weights and BN statistics (torch's AveragedModel), or None when `decay` is 0."""
    if decay <= 0:
        return None
    return AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)
