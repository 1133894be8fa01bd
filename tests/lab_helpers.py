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


def png_claiming(path: Path, width: int, height: int, bit_depth: int = 8, colour_type: int = 2) -> Path:
    """A tiny PNG whose header declares `width`×`height` pixels but which holds almost no data: what a
    decompression-bomb upload looks like before anything is decoded."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))
                     + chunk(b"IEND", b""))
    return path


def is_kept(value) -> bool:
    """An output the handler left as it was (gr.skip(): the client reports a bare update)."""
    return isinstance(value, dict) and value.get("__type__") == "update" and not value.get("value") and \
        set(value) <= {"__type__", "props"}


def drawn(out) -> list:
    """A view's outputs, checked to come with an empty tab message and an empty (or untouched) input message."""
    *values, tab_message, input_message = out
    assert tab_message == "" and (input_message == "" or is_kept(input_message)), (tab_message, input_message)
    return values


def refusal(out) -> str:
    """The one message of a refused request, checked to leave every output as it was."""
    *values, tab_message, input_message = out
    assert all(is_kept(v) for v in values), values
    messages = [m for m in (tab_message, input_message) if isinstance(m, str) and m]
    assert len(messages) == 1, (tab_message, input_message)
    return messages[0]
