"""The training state for resume: model, optimizer, grad scaler, iteration and RNG, saved without pickle.

A directory (written atomically, `engine/atomic.py`) of `model.safetensors`, `optimizer.safetensors` and
`training_state.json`. The optimizer's `state_dict()` is nested dicts and lists with tensors among its leaves;
`to_tensors_and_json` puts each tensor in the safetensors file under its dotted path (`state.<param>.<name>`)
and leaves `{"__tensor__": path}` in the JSON structure, tuples (Adam's betas, Python's RNG state) as
`{"__tuple__": [...]}`; `from_tensors_and_json` reverses it. Loading reads only JSON and safetensors.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from contextrast.engine.atomic import atomic_write_dir, resolve_dir
from contextrast.engine.card import ModelCard, write_card
from contextrast.engine.checkpoint import check_card_fits, load_weights
from contextrast.engine.checkpoint_files import (
    OPTIMIZER_FILE,
    STATE_FILE,
    WEIGHTS_FILE,
    read_json,
    read_tensors,
    require_file,
    write_tensors,
)

TENSOR, TUPLE = "__tensor__", "__tuple__"


def to_tensors_and_json(tree: Any) -> tuple[dict[str, Tensor], Any]:
    """Nested dicts / lists / tuples → (their tensors keyed by dotted path, a JSON-able copy of the rest with
    `{"__tensor__": path}` in each tensor's place and `{"__tuple__": [...]}` for each tuple)."""
    tensors: dict[str, Tensor] = {}

    def encode(value: Any, path: str) -> Any:
        if isinstance(value, Tensor):
            if path in tensors:
                raise ValueError(f"two tensors would be stored under the same key {path!r}")
            tensors[path] = value
            return {TENSOR: path}
        if isinstance(value, dict):
            return {str(k): encode(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list | tuple):
            items = [encode(v, f"{path}.{i}" if path else str(i)) for i, v in enumerate(value)]
            return {TUPLE: items} if isinstance(value, tuple) else items
        return value

    return tensors, encode(tree, "")


def from_tensors_and_json(tensors: dict[str, Tensor], tree: Any, source: str = OPTIMIZER_FILE) -> Any:
    """Inverse of `to_tensors_and_json` (JSON object keys come back as strings); `source` names the tensor
    file in the error when a tensor is missing."""
    if isinstance(tree, dict):
        if set(tree) == {TENSOR}:
            if tree[TENSOR] not in tensors:
                raise ValueError(f"tensor {tree[TENSOR]} is missing from {source}")
            return tensors[tree[TENSOR]]
        if set(tree) == {TUPLE}:
            return tuple(from_tensors_and_json(tensors, v, source) for v in tree[TUPLE])
        return {k: from_tensors_and_json(tensors, v, source) for k, v in tree.items()}
    if isinstance(tree, list):
        return [from_tensors_and_json(tensors, v, source) for v in tree]
    return tree


def to_json(tree: Any) -> Any:
    """`to_tensors_and_json` for state that holds no tensors (grad scaler, Python RNG)."""
    tensors, encoded = to_tensors_and_json(tree)
    if tensors:
        raise ValueError(f"tensors {sorted(tensors)[:3]} belong in a safetensors file, not the JSON structure")
    return encoded


def from_json(tree: Any) -> Any:
    return from_tensors_and_json({}, tree)


def save_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: Any | None,
    state: dict[str, Any],
    card: ModelCard | None = None,
    extra: dict[str, nn.Module] | None = None,
) -> Path:
    """Write everything needed to resume training into directory `path`, atomically, without pickle.

    `state`: iteration, elapsed time, RNG states (see `capture_rng_state`), anything JSON-able.
    `scaler`: a torch.amp.GradScaler (or None). With `card`, the directory is also a model checkpoint
    (`model_card.json` + `README.md`) that `load_checkpoint` reads, written in the same atomic swap.
    `extra`: more modules to resume (e.g. the EMA of the weights), each written as `<name>.safetensors`.
    """
    if card is not None:
        check_card_fits(model, card)
    opt_tensors, opt_structure = to_tensors_and_json(optimizer.state_dict())
    payload = {
        "state": state,
        "optimizer": opt_structure,
        "scaler": to_json(scaler.state_dict()) if scaler is not None else None,
    }
    try:
        json.dumps(payload, allow_nan=True)
    except TypeError as e:
        raise ValueError(f"training state must be JSON-serialisable: {e}") from e

    def write(d: Path) -> None:
        write_tensors(model.state_dict(), d / WEIGHTS_FILE)
        write_tensors(opt_tensors, d / OPTIMIZER_FILE)
        (d / STATE_FILE).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        for name, module in (extra or {}).items():
            write_tensors(module.state_dict(), d / f"{name}.safetensors")
        if card is not None:
            write_card(card, d, Path(path))

    return atomic_write_dir(path, write)


def load_training_state(
    path: str | Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    scaler: Any | None = None,
    extra: dict[str, nn.Module] | None = None,
) -> dict[str, Any]:
    """Restore model, optimizer, scaler and `extra` modules in place from `save_training_state`'s directory;
    return `state`. An `extra` module whose file is absent (a run that started without it) keeps its state."""
    expected = f"{WEIGHTS_FILE}, {OPTIMIZER_FILE} and {STATE_FILE}"
    d = resolve_dir(path, expected)
    payload = read_json(require_file(d, STATE_FILE))
    if not isinstance(payload, dict) or not {"state", "optimizer"} <= set(payload):
        raise ValueError(f"checkpoint {d / STATE_FILE} is corrupt or truncated: expected state and optimizer keys")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    load_weights(model, read_tensors(require_file(d, WEIGHTS_FILE), device), d / WEIGHTS_FILE)
    if optimizer is not None:
        tensors = read_tensors(require_file(d, OPTIMIZER_FILE))
        try:
            state_dict = from_tensors_and_json(tensors, payload["optimizer"])
            # JSON keys are strings, torch keys the per-parameter state by the parameter's index (and would
            # silently keep a string-keyed entry apart from its parameter)
            state_dict["state"] = {int(k): v for k, v in state_dict["state"].items()}
            optimizer.load_state_dict(state_dict)
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"optimizer state in {d} does not fit this optimizer: {e}") from e
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(from_json(payload["scaler"]))
    for name, module in (extra or {}).items():
        f = d / f"{name}.safetensors"
        if f.is_file():
            load_weights(module, read_tensors(f, device), f)
    return payload["state"]


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states as JSON-able lists."""
    import random

    import numpy as np

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    out: dict[str, Any] = {
        "python": to_json(random.getstate()),
        "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(gauss)],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        out["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return out


def restore_rng_state(rng: dict[str, Any]) -> None:
    """Inverse of `capture_rng_state`."""
    import random

    import numpy as np

    random.setstate(from_json(rng["python"]))
    name, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss)))
    torch.set_rng_state(torch.tensor(rng["torch"], dtype=torch.uint8))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in rng["cuda"]])
