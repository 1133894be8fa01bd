"""Checkpoints as directories of safetensors + JSON, written atomically, loaded without unpickling.

A model checkpoint (e.g. `checkpoints/camvid-scrnet-ce/`) holds
  `model.safetensors`  the weights (safetensors.torch),
  `model_card.json`    a `ModelCard`: model config (→ `build_model`), dataset, classes, palette, metrics …,
  `README.md`          the same card, human-readable (generated, never read back).
A training state (for resume) holds `model.safetensors`, `optimizer.safetensors` (the optimizer's tensors
flattened) and `training_state.json` (the optimizer's structure, grad scaler, iteration, RNG …).

Atomic writes: everything goes into a temporary sibling directory, each file and the directory are fsynced,
then the old directory is renamed away, the new one renamed in, and the old one removed. A kill at any
moment leaves the complete old or the complete new directory; in the instant between the two renames the
old one sits at `.<name>.old-*`, where loading finds it and the next save puts it back. Temporary
`.<name>.tmp-*` directories left by a kill are ignored by loading and removed by a later save once an hour old.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from contextrast.config import IGNORE_INDEX

WEIGHTS_FILE = "model.safetensors"
CARD_FILE = "model_card.json"
README_FILE = "README.md"
OPTIMIZER_FILE = "optimizer.safetensors"
STATE_FILE = "training_state.json"
STALE_TMP_S = 3600.0  # a temporary directory this old was left by a killed writer


# --------------------------------------------------------------------------------------------- model card


@dataclass
class ModelCard:
    """What a checkpoint is: enough to rebuild the model, label its output, and judge it."""

    name: str
    model: dict[str, Any]  # ModelConfig fields, fed to contextrast.models.build_model
    dataset: str
    classes: list[str]
    palette: list[list[int]]  # one [r, g, b] per class
    ignore_index: int = IGNORE_INDEX
    loss: dict[str, Any] = field(default_factory=dict)  # LossConfig fields
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    metrics: dict[str, Any] = field(default_factory=dict)  # e.g. the JSON of engine.evaluate.evaluate
    iteration: int = 0
    training_time_s: float = 0.0
    hardware: str = ""
    code_version: str = ""
    created: str = ""  # ISO 8601 UTC; filled by save_checkpoint when empty

    def __post_init__(self) -> None:
        if self.palette and len(self.palette) != len(self.classes):
            raise ValueError(f"palette has {len(self.palette)} colours for {len(self.classes)} classes")
        for colour in self.palette:
            if len(colour) != 3 or not all(0 <= int(v) <= 255 for v in colour):
                raise ValueError(f"palette colours must be [r, g, b] with values 0..255; got {colour!r}")
        self.palette = [[int(v) for v in colour] for colour in self.palette]
        if "num_classes" in self.model and self.classes and int(self.model["num_classes"]) != len(self.classes):
            raise ValueError(
                f"model.num_classes={self.model['num_classes']} but the card lists {len(self.classes)} classes"
            )

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        if not isinstance(d, dict):
            raise ValueError(f"a model card must be a JSON object; got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown model card keys {unknown}; known: {known}")
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"model card lacks required keys {missing}")
        return cls(**d)



def render_readme(card: ModelCard, location: str | None = None) -> str:
    """Markdown model card generated from the JSON card (never parsed back); `location`: the checkpoint path."""
    where = location or card.name
    m = card.metrics or {}
    lines = [f"# {card.name}", "", f"SCRNet trained on **{card.dataset}** ({len(card.classes)} classes).", ""]

    def pct(v: Any) -> str:
        return f"{100 * v:.2f}" if isinstance(v, (int, float)) else "n/a"

    # scalar entries only; IoU / accuracy fractions shown in %, everything else as it is
    scalars = [(k, v) for k, v in m.items() if v is None or isinstance(v, (int, float, str, bool))]
    if scalars:
        lines += ["## Results", "", "| metric | value |", "|---|---|"]
        for k, v in scalars:
            is_fraction = isinstance(v, float) and any(t in k.lower() for t in ("iou", "acc"))
            lines.append(f"| {k} | {pct(v) + ' %' if is_fraction else v} |")
        lines.append("")
    per_class = m.get("per_class_iou")
    lines += ["## Classes", "", "| id | class | colour | IoU % |", "|---|---|---|---|"]
    for i, name in enumerate(card.classes):
        colour = "#" + "".join(f"{v:02x}" for v in card.palette[i]) if i < len(card.palette) else ""
        iou = per_class.get(name) if isinstance(per_class, dict) else None
        lines.append(f"| {i} | {name} | `{colour}` | {pct(iou)} |")
    lines += ["", f"Ignore label: {card.ignore_index}", "", "## Model", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card.model.items()]
    if card.loss:
        lines += ["", "## Loss", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in card.loss.items()]
    if card.train:
        lines += ["", "## Training", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in card.train.items()]
    lines += [
        "",
        "## Provenance",
        "",
        f"- iterations: {card.iteration}",
        f"- training time: {card.training_time_s / 3600:.2f} h ({card.training_time_s:.0f} s)",
        f"- hardware: {card.hardware or 'unknown'}",
        f"- code version: {card.code_version or 'unknown'}",
        f"- created: {card.created or 'unknown'}",
        "",
        "## Use",
        "",
        "```python",
        "from contextrast.engine.checkpoint import load_checkpoint",
        f'model, card = load_checkpoint("{where}")',
        "```",
        "",
        f"or `contextrast predict --checkpoint {where} IMAGE --out DIR`.",
        "",
        "Generated from `model_card.json`; edit that file, not this one.",
        "",
    ]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- atomic writes


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # e.g. platforms where directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for f in path.iterdir():
        if f.is_file():
            with open(f, "rb+") as fh:
                os.fsync(fh.fileno())
    _fsync_dir(path)


def _siblings(target: Path, kind: str) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.{kind}-*"))


def _recover(target: Path) -> None:
    """Finish a swap that a kill interrupted: put the old directory back if the target is missing, drop
    leftover old copies, and temporary directories older than `STALE_TMP_S` (younger ones may belong to a
    writer still at work; concurrent writers to one target are not supported anyway)."""
    if not target.exists():
        olds = _siblings(target, "old")
        if olds:
            os.replace(olds[-1], target)
    for stale in _siblings(target, "old"):
        shutil.rmtree(stale, ignore_errors=True)
    now = time.time()
    for stale in _siblings(target, "tmp"):
        try:
            if now - stale.stat().st_mtime > STALE_TMP_S:
                shutil.rmtree(stale, ignore_errors=True)
        except OSError:
            pass


def atomic_write_dir(target: str | Path, write: Callable[[Path], None]) -> Path:
    """Call `write(tmp_dir)` to fill a fresh directory, then swap it in at `target` (see module docstring)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() and not target.is_dir():
        raise ValueError(f"checkpoint path {target} exists and is not a directory")
    _recover(target)
    token = uuid.uuid4().hex[:8]
    tmp = target.parent / f".{target.name}.tmp-{token}"
    old = target.parent / f".{target.name}.old-{token}"
    tmp.mkdir()
    try:
        write(tmp)
        _fsync_tree(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not target.exists():
            os.replace(old, target)
        raise
    shutil.rmtree(old, ignore_errors=True)
    return target


def _resolve_dir(path: str | Path, expected: str) -> Path:
    """The checkpoint directory to read: `path`, or the old copy parked by an interrupted swap."""
    path = Path(path)
    if path.is_dir():
        return path
    olds = _siblings(path, "old")
    if olds:
        return olds[-1]
    if path.exists():
        raise ValueError(f"checkpoint path {path} is a file; expected a directory holding {expected}")
    raise FileNotFoundError(f"checkpoint directory {path} does not exist; expected a directory holding {expected}")


def _require_file(directory: Path, name: str) -> Path:
    f = directory / name
    if not f.is_file():
        raise FileNotFoundError(f"checkpoint {directory} has no {name}")
    return f


def _read_json(f: Path) -> Any:
    try:
        return json.loads(f.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"checkpoint {f} is corrupt or truncated: {e}") from e


def _read_tensors(f: Path, device: str | torch.device = "cpu") -> dict[str, Tensor]:
    try:
        return load_file(f, device=str(device))
    except (SafetensorError, OSError, RuntimeError, ValueError) as e:
        raise ValueError(f"checkpoint {f} is corrupt or truncated: {e}") from e


def _write_tensors(tensors: dict[str, Tensor], f: Path, metadata: dict[str, str] | None = None) -> None:
    # clone: safetensors refuses tensors sharing storage, and needs contiguous CPU memory
    save_file({k: v.detach().to("cpu", copy=True).contiguous() for k, v in tensors.items()}, f, metadata=metadata)


def _write_json(obj: Any, f: Path) -> None:
    f.write_text(json.dumps(obj, indent=2, allow_nan=False) + "\n", encoding="utf-8")


def _load_weights(model: nn.Module, weights: dict[str, Tensor], source: Path) -> None:
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


# ------------------------------------------------------------------------------------------ model checkpoint


def save_checkpoint(path: str | Path, model: nn.Module, card: ModelCard) -> Path:
    """Write `model.safetensors` + `model_card.json` + `README.md` atomically into directory `path`."""
    _check_card_fits(model, card)

    def write(d: Path) -> None:
        _write_tensors(model.state_dict(), d / WEIGHTS_FILE, metadata={"format": "pt", "name": card.name})
        _write_card(card, d, Path(path))

    return atomic_write_dir(path, write)


def _check_card_fits(model: nn.Module, card: ModelCard) -> None:
    num_classes = getattr(model, "num_classes", None)
    if num_classes is not None and card.classes and len(card.classes) != num_classes:
        raise ValueError(f"model predicts {num_classes} classes but the card lists {len(card.classes)}")


def _write_card(card: ModelCard, d: Path, location: Path) -> None:
    if not card.created:
        card.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    _write_json(card.to_dict(), d / CARD_FILE)
    (d / README_FILE).write_text(render_readme(card, str(location)), encoding="utf-8")


def read_card(path: str | Path) -> ModelCard:
    """The `ModelCard` of checkpoint directory `path` (JSON only; the weights are not read)."""
    d = _resolve_dir(path, f"{WEIGHTS_FILE} and {CARD_FILE}")
    f = _require_file(d, CARD_FILE)
    data = _read_json(f)
    try:
        return ModelCard.from_dict(data)
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {f} holds an invalid model card: {e}") from e


def load_checkpoint(path: str | Path, device: str | torch.device = "cpu", num_classes: int | None = None):
    """Rebuild the SCRNet described by the card and load its weights → (model in eval mode, card).

    Reads only JSON and safetensors (never unpickles). `num_classes`, when given, must match the card.
    """
    from contextrast.config import model_config_from_card
    from contextrast.models import build_model

    card = read_card(path)
    d = _resolve_dir(path, f"{WEIGHTS_FILE} and {CARD_FILE}")
    ckpt_classes = int(card.model.get("num_classes", len(card.classes)))
    if num_classes is not None and int(num_classes) != ckpt_classes:
        raise ValueError(f"checkpoint {path} predicts {ckpt_classes} classes but {num_classes} were expected")
    weights = _read_tensors(_require_file(d, WEIGHTS_FILE))
    model = build_model(model_config_from_card(card.model))
    _load_weights(model, weights, d / WEIGHTS_FILE)
    return model.to(device).eval(), card


# ---------------------------------------------------------------------------------------- training state


def _encode_json(value: Any) -> Any:
    """JSON form of optimizer hyper-parameters, keeping tuples (e.g. Adam betas) as tuples on the way back."""
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_json(v) for v in value]}
    if isinstance(value, list):
        return [_encode_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _encode_json(v) for k, v in value.items()}
    if isinstance(value, Tensor):
        raise ValueError("tensors belong in the safetensors file, not the JSON structure")
    return value


def _decode_json(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(_decode_json(v) for v in value["__tuple__"])
        return {k: _decode_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_decode_json(v) for v in value]
    return value


def flatten_optimizer_state(state_dict: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Optimizer state dict → (tensors keyed `state.<param>.<name>`, JSON-able structure)."""
    tensors: dict[str, Tensor] = {}
    state: dict[str, dict[str, Any]] = {}
    for pid, entries in state_dict["state"].items():
        slot: dict[str, Any] = {}
        for name, value in entries.items():
            if isinstance(value, Tensor):
                key = f"state.{pid}.{name}"
                tensors[key] = value
                slot[name] = {"__tensor__": key}
            else:
                slot[name] = _encode_json(value)
        state[str(pid)] = slot
    structure = {"state": state, "param_groups": _encode_json(state_dict["param_groups"])}
    return tensors, structure


def unflatten_optimizer_state(tensors: dict[str, Tensor], structure: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for pid, slot in structure["state"].items():
        entries = {}
        for name, value in slot.items():
            if isinstance(value, dict) and set(value) == {"__tensor__"}:
                if value["__tensor__"] not in tensors:
                    raise ValueError(f"optimizer tensor {value['__tensor__']} is missing from {OPTIMIZER_FILE}")
                entries[name] = tensors[value["__tensor__"]]
            else:
                entries[name] = _decode_json(value)
        state[int(pid)] = entries
    return {"state": state, "param_groups": _decode_json(structure["param_groups"])}


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
        _check_card_fits(model, card)
    opt_tensors, opt_structure = flatten_optimizer_state(optimizer.state_dict())
    payload = {
        "state": state,
        "optimizer": opt_structure,
        "scaler": _encode_json(scaler.state_dict()) if scaler is not None else None,
    }
    try:
        json.dumps(payload, allow_nan=True)
    except TypeError as e:
        raise ValueError(f"training state must be JSON-serialisable: {e}") from e

    def write(d: Path) -> None:
        _write_tensors(model.state_dict(), d / WEIGHTS_FILE)
        _write_tensors(opt_tensors, d / OPTIMIZER_FILE)
        (d / STATE_FILE).write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        for name, module in (extra or {}).items():
            _write_tensors(module.state_dict(), d / f"{name}.safetensors")
        if card is not None:
            _write_card(card, d, Path(path))

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
    d = _resolve_dir(path, expected)
    payload = _read_json(_require_file(d, STATE_FILE))
    if not isinstance(payload, dict) or not {"state", "optimizer"} <= set(payload):
        raise ValueError(f"checkpoint {d / STATE_FILE} is corrupt or truncated: expected state and optimizer keys")
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    _load_weights(model, _read_tensors(_require_file(d, WEIGHTS_FILE), device), d / WEIGHTS_FILE)
    if optimizer is not None:
        tensors = _read_tensors(_require_file(d, OPTIMIZER_FILE))
        try:
            optimizer.load_state_dict(unflatten_optimizer_state(tensors, payload["optimizer"]))
        except (KeyError, ValueError, TypeError) as e:
            raise ValueError(f"optimizer state in {d} does not fit this optimizer: {e}") from e
    if scaler is not None and payload.get("scaler"):
        scaler.load_state_dict(_decode_json(payload["scaler"]))
    for name, module in (extra or {}).items():
        f = d / f"{name}.safetensors"
        if f.is_file():
            _load_weights(module, _read_tensors(f, device), f)
    return payload["state"]


def capture_rng_state() -> dict[str, Any]:
    """Python, NumPy and torch (CPU and CUDA) RNG states as JSON-able lists."""
    import random

    import numpy as np

    name, keys, pos, has_gauss, gauss = np.random.get_state()
    out: dict[str, Any] = {
        "python": _encode_json(random.getstate()),
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

    random.setstate(_decode_json(rng["python"]))
    name, keys, pos, has_gauss, gauss = rng["numpy"]
    np.random.set_state((name, np.asarray(keys, dtype=np.uint32), int(pos), int(has_gauss), float(gauss)))
    torch.set_rng_state(torch.tensor(rng["torch"], dtype=torch.uint8))
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in rng["cuda"]])


# -------------------------------------------------------------------------------------------- provenance


def code_version() -> str:
    """Package version, plus `+g<short hash>` (and `-dirty`) when the package sits in a git work tree."""
    from contextrast import __version__

    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, timeout=5
        )
        if commit.returncode != 0 or not commit.stdout.strip():
            return __version__
        version = f"{__version__}+g{commit.stdout.strip()}"
        status = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=10,
        )
        if status.returncode == 0 and status.stdout.strip():
            version += "-dirty"
        return version
    except (OSError, subprocess.SubprocessError):
        return __version__


def hardware_string() -> str:
    """GPU name(s) when CUDA is available, else the CPU model and core count."""
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"{len(names)}× {names[0]}" if len(set(names)) == 1 and len(names) > 1 else ", ".join(names)
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cpu = cpu or platform.processor() or platform.machine() or "unknown CPU"
    return f"{cpu} ({os.cpu_count()} cores)"
