"""Server-side state shared by every session: the checkpoints (loaded lazily, once) and a small cache of
analysis forward passes, both safe under concurrent requests."""

from __future__ import annotations

import dataclasses
import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from contextrast import limits
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


def nbytes_of(value: Any, seen: set[int] | None = None) -> int:
    """Bytes held by the arrays and tensors inside `value` (dataclasses, lists, tuples, dicts walked;
    a tensor storage shared by several views counted once)."""
    seen = set() if seen is None else seen
    if isinstance(value, torch.Tensor):
        storage = value.untyped_storage()
        key = storage.data_ptr()
        if key in seen:
            return 0
        seen.add(key)
        return storage.nbytes()
    if isinstance(value, np.ndarray):
        base = value if value.base is None else value.base
        if id(base) in seen:
            return 0
        seen.add(id(base))
        return int(getattr(base, "nbytes", value.nbytes))
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return sum(nbytes_of(getattr(value, f.name), seen) for f in dataclasses.fields(value))
    if isinstance(value, (list, tuple)):
        return sum(nbytes_of(v, seen) for v in value)
    if isinstance(value, dict):
        return sum(nbytes_of(v, seen) for v in value.values())
    return 0


class LRU:
    """A tiny thread-safe least-recently-used cache of at most `capacity` entries and, when `max_bytes`
    is given, at most that many bytes of arrays and tensors (a value bigger than that is returned but
    not kept)."""

    def __init__(self, capacity: int, max_bytes: int | None = None) -> None:
        self.capacity = capacity
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}
        self._lock = threading.Lock()
        self._pending: dict[Hashable, Future] = {}  # keys being made, and what their waiters get

    @property
    def nbytes(self) -> int:
        return sum(self._sizes.values())

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The cached value of `key`, else `make()`'s, stored. A request for a key another thread is making waits
        for that one instead of making it again (the head start, `app.first_page`, and the first page's request ask for
        the same forward pass at once), and gets its exception if it fails. `make` must not wait on this cache's key itself
        or on a lock its waiters hold."""
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            pending = self._pending.get(key)
            making = pending is None
            if making:
                pending = self._pending[key] = Future()
        if not making:
            return pending.result()
        try:
            value = make()  # outside the lock: other keys stay served meanwhile
            size = nbytes_of(value) if self.max_bytes is not None else 0
        except BaseException as e:
            with self._lock:
                del self._pending[key]
            pending.set_exception(e)
            raise
        with self._lock:
            del self._pending[key]
            if self.max_bytes is None or size <= self.max_bytes:
                self._items[key] = value
                self._sizes[key] = size
                self._items.move_to_end(key)
                while len(self._items) > self.capacity or (self.max_bytes is not None and self.nbytes > self.max_bytes):
                    old, _ = self._items.popitem(last=False)
                    self._sizes.pop(old, None)
        pending.set_result(value)
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


# forward passes kept: the Embeddings tab's 16 images of two checkpoints and the other tabs' inputs, so a new seed
# or point count reuses them (with 8, 16 images evicted each other and every projection re-ran 16 forward passes,
# 2.6 s of a 4.3 s UMAP of 20k points). Memory is bounded by the byte budget (CONTEXTRAST_APP_CACHE_MB), not this.
RUNS_CACHED = 40


class ModelStore:
    """The lab's checkpoints by name (the directory name), loaded on first use.

    Cards are read at start-up (cheap, and a broken card is reported instead of crashing the app);
    weights load on the first request for a model, under a lock, exactly once.
    """

    def __init__(self, paths: Sequence[Path], runs_cached: int = RUNS_CACHED, cache_bytes: int | None = None) -> None:
        self.paths: dict[str, Path] = {}
        self.cards: dict[str, ModelCard] = {}
        self.problems: list[str] = []
        self._loaded: dict[str, LoadedModel] = {}
        self._load_lock = threading.Lock()
        # forward passes of big images weigh up to a GB each: the cache is bounded in bytes, not only entries
        budget = limits.current().app_cache_bytes if cache_bytes is None else cache_bytes
        self.runs = LRU(runs_cached, max_bytes=budget * 3 // 4)
        self.records = LRU(runs_cached, max_bytes=budget // 4)
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
