"""Server-side state shared by every session: the checkpoints (loaded lazily, once) and a small cache of
analysis forward passes, both safe under concurrent requests."""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from contextrast.analysis.forward import ModelRun, run_model
from contextrast.engine.card import ModelCard, read_card
from contextrast.engine.checkpoint import load_checkpoint
from contextrast.engine.checkpoint_files import CARD_FILE
from contextrast.engine.inference import prepare_for_inference


def discover_checkpoints(checkpoints_dir: str | Path | None, extra: Sequence[str | Path] = ()) -> list[Path]:
    """Every sub-directory of `checkpoints_dir` holding a model card, then each of `extra` (which must
    exist). A missing `checkpoints_dir` is no error: the app starts and says there are no models."""
    found: list[Path] = []
    if checkpoints_dir is not None and Path(checkpoints_dir).is_dir():
        found += sorted(p for p in Path(checkpoints_dir).iterdir() if (p / CARD_FILE).is_file())
    for e in extra:
        p = Path(e)
        if not (p / CARD_FILE).is_file():
            raise FileNotFoundError(f"checkpoint {p} has no {CARD_FILE}; a checkpoint is a directory with "
                                    f"model.safetensors and {CARD_FILE}")
        if p.resolve() not in {f.resolve() for f in found}:
            found.append(p)
    return found


@dataclass
class LoadedModel:
    name: str
    path: Path
    card: ModelCard
    model: Any  # SCRNet, in eval mode
    lock: threading.Lock = field(default_factory=threading.Lock)  # one forward at a time per model


class LRU:
    """A tiny thread-safe least-recently-used cache."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()  # outside the lock: other keys stay served meanwhile
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return value

    def get(self, key: Hashable) -> Any | None:
        """The cached value, or None (without making one): for results that may only be stored when complete."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        return None

    def put(self, key: Hashable, value: Any) -> None:
        """Store `value` under `key`, replacing what was there."""
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def digest(array: np.ndarray | None) -> str:
    """A content key for an image or label map (shape, dtype and bytes)."""
    if array is None:
        return "-"
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{array.shape}{array.dtype}".encode())
    h.update(np.ascontiguousarray(array).tobytes())
    return h.hexdigest()


class ModelStore:
    """The lab's checkpoints by name (the directory name), loaded on first use.

    Cards are read at start-up (cheap, and a broken card is reported instead of crashing the app);
    weights load on the first request for a model, under a lock, exactly once.
    """

    def __init__(self, paths: Sequence[Path], runs_cached: int = 8) -> None:
        self.paths: dict[str, Path] = {}
        self.cards: dict[str, ModelCard] = {}
        self.problems: list[str] = []
        self._loaded: dict[str, LoadedModel] = {}
        self._load_lock = threading.Lock()
        self.runs = LRU(runs_cached)
        self.records = LRU(runs_cached)
        for p in paths:
            try:
                self.add(p)
            except (ValueError, FileNotFoundError) as e:
                self.problems.append(f"skipped checkpoint {p}: {e}")

    def add(self, path: str | Path, name: str | None = None) -> str | None:
        """List the checkpoint directory `path` (its card is read now, its weights on first use) under `name`
        (default: the directory's name, or parent/name when that is taken). Returns the name, or None when this
        directory is listed already. Raises ValueError / FileNotFoundError for a directory without a valid card."""
        path = Path(path)
        if path.resolve() in {p.resolve() for p in self.paths.values()}:
            return None
        card = read_card(path)
        name = name or path.name
        if name in self.paths:
            name = f"{path.parent.name}/{path.name}"
        with self._load_lock:
            self.cards[name] = card
            self.paths[name] = path
        return name

    def names(self) -> list[str]:
        return list(self.paths)

    def get(self, name: str | None) -> LoadedModel:
        if not self.paths:
            raise ValueError("no model is loaded: put checkpoints in checkpoints/ or pass --checkpoint DIR")
        if name not in self.paths:
            raise ValueError(f"unknown model {name!r}; available: {', '.join(self.paths)}")
        with self._load_lock:
            if name not in self._loaded:
                model, card = load_checkpoint(self.paths[name])
                model = prepare_for_inference(model)
                self._loaded[name] = LoadedModel(name, self.paths[name], card, model.eval())
            return self._loaded[name]

    def run(self, name: str, rgb: np.ndarray) -> tuple[LoadedModel, ModelRun]:
        """The model and its analysis forward pass on `rgb`, from the cache when seen before."""
        loaded = self.get(name)

        def make() -> ModelRun:
            with loaded.lock:
                return run_model(loaded.model, rgb)

        return loaded, self.runs.get_or_make((name, digest(rgb)), make)
