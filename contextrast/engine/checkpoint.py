"""Model checkpoints: a directory of `model.safetensors` + `model_card.json` + `README.md`, written atomically
(`engine/atomic.py`), loaded without unpickling. The file layout is in `engine/checkpoint_files.py`, the card
in `engine/card.py`, the training state for resume in `engine/training_state.py`.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from contextrast.engine.atomic import atomic_write_dir, resolve_dir
from contextrast.engine.card import ModelCard, read_card, write_card
from contextrast.engine.checkpoint_files import CARD_FILE, WEIGHTS_FILE, read_tensors, require_file, write_tensors


def check_card_fits(model: nn.Module, card: ModelCard) -> None:
    """ValueError when the card lists another number of classes than the model predicts."""
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and card.classes and len(card.classes) != num_classes:
        raise ValueError(f"model predicts {num_classes} classes but the card lists {len(card.classes)}")


def load_weights(model: nn.Module, weights: dict[str, Tensor], source: Path) -> None:
    """Strict load with a readable error: a few missing / unexpected keys and shape mismatches."""
    own = model.state_dict()
    missing = [k for k in own if k not in weights]
    unexpected = [k for k in weights if k not in own]
    shapes = [
        f"{k}: checkpoint {tuple(weights[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in weights and weights[k].shape != v.shape
    ]
    if missing or unexpected or shapes:
        parts = []
        for label, items in (("missing keys", missing), ("unexpected keys", unexpected), ("shape mismatches", shapes)):
            if items:
                more = f" (+{len(items) - 5} more)" if len(items) > 5 else ""
                parts.append(f"{label}: {', '.join(items[:5])}{more}")
        raise ValueError(f"weights in {source} do not fit the model; " + "; ".join(parts))
    model.load_state_dict(weights, strict=True)


def save_checkpoint(path: str | Path, model: nn.Module, card: ModelCard) -> Path:
    """Write `model.safetensors` + `model_card.json` + `README.md` atomically into directory `path`."""
    check_card_fits(model, card)

    def write(d: Path) -> None:
        write_tensors(model.state_dict(), d / WEIGHTS_FILE, metadata={"format": "pt", "name": card.name})
        write_card(card, d, Path(path))

    return atomic_write_dir(path, write)


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", num_classes: int | None = None):
    """Rebuild the SCRNet described by the card and load its weights → (model in eval mode, card).

    Reads only JSON and safetensors (never unpickles). `num_classes`, when given, must match the card.
    """
    from contextrast.config import model_config_from_card
    from contextrast.models import build_model

    card = read_card(path)
    d = resolve_dir(path, f"{WEIGHTS_FILE} and {CARD_FILE}")
    ckpt_classes = int(card.model.get("num_classes", len(card.classes)))
    if num_classes is not None and int(num_classes) != ckpt_classes:
        raise ValueError(f"checkpoint {path} predicts {ckpt_classes} classes but {num_classes} were expected")
    weights = read_tensors(require_file(d, WEIGHTS_FILE))
    model = build_model(model_config_from_card(card.model))
    load_weights(model, weights, d / WEIGHTS_FILE)
    return model.to(device).eval(), card
