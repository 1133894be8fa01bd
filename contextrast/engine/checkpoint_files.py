"""What a checkpoint directory holds, and how its files are read and written: safetensors and JSON only.

A model checkpoint (e.g. `checkpoints/camvid-scrnet-ce/`) holds
  `model.safetensors`  the weights (safetensors.torch),
  `model_card.json`    a `ModelCard` (`engine/card.py`): model config (→ `build_model`), dataset, classes …,
  `README.md`          the same card, human-readable (generated, never read back).
A training state (for resume, `engine/training_state.py`) adds `optimizer.safetensors` (the optimizer's
tensors) and `training_state.json` (the optimizer's structure, grad scaler, iteration, RNG …).

Readers raise errors that name the file; nothing here ever unpickles.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
README_FILE = "README.md"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "training_state.json"


def require_file(directory: Path, name: str) -> Path:
    """`directory / name`, or FileNotFoundError naming the checkpoint and the file it lacks."""
    f = directory / name
    if not f.is_file():
        raise FileNotFoundError(f"checkpoint {directory} has no {name}")
    return f


def read_json(f: Path) -> Any:
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ValueError(f"checkpoint {f} is corrupt or truncated: {str(e)[:200]}") from None


def write_json(obj: Any, f: Path) -> None:
    f.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def read_tensors(f: Path, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    try:
        return load_file(f, device=str(device))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ValueError(f"checkpoint {f} is corrupt or truncated: {e}") from e


def write_tensors(tensors: dict[str, Tensor], f: Path, metadata: dict[str, str] | None = None) -> None:
    # clone: safetensors refuses tensors sharing storage, and needs contiguous CPU memory
    save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}, f, metadata=metadata)
