"""Helpers shared by the tests that launch the lab or a server: a free port and a tiny toy checkpoint."""

from __future__ import annotations

import socket
from pathlib import Path

import torch

from contextrast.data.toy import TOY
from contextrast.engine.card import ModelCard
from contextrast.engine.checkpoint import save_checkpoint
from contextrast.models import build_model


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_checkpoint(path: Path, classes: list[str] | None = None, **model) -> Path:
    """A tiny random checkpoint, toy classes unless `classes` is given (the SRM's offsets nudged off zero so
    it is not plain bilinear)."""
    torch.manual_seed(0)
    classes = list(classes or TOY.classes)
    palette = [list(c) for c in TOY.palette] if classes == list(TOY.classes) else [[i, i, i] for i in range(len(classes))]
    net = build_model({"num_classes": len(classes), "decoder_channels": 32, **model})
    if net.config.align != "bilinear":
        with torch.no_grad():
            for step in net.decoder:
                torch.nn.init.normal_(step.offset_head[-1].weight, std=0.05)
    card = ModelCard(name=path.name, model=vars(net.config), dataset="toy", classes=classes, palette=palette)
    return save_checkpoint(path, net, card)
