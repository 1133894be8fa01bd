"""The lab's head start: what a browser's first page needs (the default model loaded and run on the first sample, the
first set's thumbnails decoded), prepared in a background thread before Gradio is imported.

Importing Gradio and building and serving the page keep one core busy for about three seconds, in Python, while a
2-core machine's other core idles; the forward pass and the picture decoding spend most of their time outside the
interpreter's lock, so there they run nearly for free. Prepared while the page was being served instead, they took
the cores the browser needed to draw it (measured by `benchmarks.app_browser`: docs/performance.md). Free of Gradio,
so that `contextrast app` can start it first (`app.main.build_ui` starts it itself otherwise)."""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from app.inputs import model_input
from app.samples import UPLOAD, Samples
from app.state import ModelStore, discover_checkpoints
from contextrast.analysis.cards import trained_heads
from contextrast.analysis.image_io import MIN_SIDE

log = logging.getLogger("contextrast.app")


@dataclass
class FirstPage:
    """The lab's models and samples, what its page opens on, and the thread preparing that page."""

    checkpoints: list[Path]  # the checkpoint directories the store opened
    store: ModelStore
    samples: Samples
    sample: str  # the sample the page opens on (UPLOAD when there is none)
    rgb: np.ndarray | None  # its picture, for the image box
    model: str | None  # the model the page opens on (None: no model found)
    thread: threading.Thread


def _reported_val_miou(metrics: dict | None) -> float:
    value = (metrics or {}).get("val_miou")
    return float(value) if isinstance(value, (int, float)) else float("-inf")


def default_model(store: ModelStore, classes: Sequence[str] | None) -> str | None:
    """Among the models that predict `classes` (the pre-selected sample's, so the first page shows its labels
    in use), one whose projection heads were trained, so that every tab (BANE, Embeddings) draws on the first
    page; of those, the one whose card reports the highest val mIoU (then the first by name); else the first
    model."""
    names = store.names()
    matching = [n for n in names if classes is not None and list(store.cards[n].classes) == list(classes)]
    if matching:
        return max(matching, key=lambda n: (bool(trained_heads(store.cards[n])),
                                            _reported_val_miou(store.cards[n].metrics)))
    return names[0] if names else None


def use_cores() -> None:
    """One request's matmuls use this machine's cores (at most 4: a lab serves several people), no more."""
    torch.set_num_threads(max(1, min(os.cpu_count() or 1, 4)))


def prepare_first_page(checkpoints: Sequence[str | Path], data_spec: str | None = None, toy_spec: str | None = "toy",
                       max_side: int = 2048) -> FirstPage:
    """Open the checkpoints and samples, choose what the page opens on, and start preparing it in a thread.
    A bad dataset spec raises ValueError here; a failure in the thread only costs the head start (the page's own
    request reports it)."""
    checkpoints = [Path(p) for p in checkpoints]
    store = ModelStore(checkpoints)
    samples = Samples(data_spec, toy_spec)
    names = samples.names()
    sample = names[0] if names else UPLOAD
    rgb, _, info = samples.load(sample) if sample != UPLOAD else (None, None, None)
    model = default_model(store, info.classes if info else None)

    def first_run() -> None:
        loaded, lab_input = model_input(store, samples, model, sample, None, None, max_side)
        store.run(loaded.name, lab_input.rgb)

    def prepare() -> None:
        steps = [first_run] if model is not None and sample != UPLOAD else []
        steps.append(lambda: samples.thumbnails(samples.set_of(sample)))
        for step in steps:
            try:
                step()
            except Exception as e:  # noqa: BLE001 - the page's own request will show what is wrong
                log.info("not prepared ahead of the first page: %s", e)

    # not a daemon: a process that ends early (a port in use, a test) waits for it rather than cut it off inside a
    # torch op, which aborts the interpreter ("terminate called without an active exception")
    thread = threading.Thread(target=prepare, name="lab-first-page")
    thread.start()
    return FirstPage(checkpoints, store, samples, sample, rgb, model, thread)


def app_checkpoints(args: argparse.Namespace) -> list[Path]:
    """The checkpoint directories `contextrast app ARGS` loads: those in --checkpoints-dir, then each --checkpoint."""
    return discover_checkpoints(args.checkpoints_dir, args.checkpoint or [])


def check_max_side(max_side: int) -> None:
    if max_side < MIN_SIDE:
        raise ValueError(f"--max-side must be at least {MIN_SIDE} (the network's coarsest stride); got {max_side}")


def start(args: argparse.Namespace) -> FirstPage:
    """The head start of `contextrast app ARGS` (before Gradio is imported)."""
    check_max_side(args.max_side)
    use_cores()
    return prepare_first_page(app_checkpoints(args), args.data, max_side=args.max_side)

