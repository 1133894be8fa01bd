"""What every tab shares: the server state, the input components, and one request's analysis context."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import gradio as gr

from app.inputs import LabInput, resolve_input
from app.samples import Samples
from app.state import LoadedModel, ModelStore
from contextrast import limits
from contextrast.analysis.forward import ModelRun
from contextrast.data import SegmentationDataset, build_dataset
from contextrast.paths import PathPolicy

log = logging.getLogger("contextrast.app")

MODEL_EVENTS = "model"  # concurrency group of every event that runs a model: one at a time on a small CPU


@dataclass
class Context:
    """One request: the model, the decoded input and its (cached) analysis forward pass."""

    loaded: LoadedModel
    input: LabInput
    run: ModelRun

    @property
    def classes(self) -> list[str]:
        return list(self.loaded.card.classes)

    @property
    def palette(self) -> list[list[int]]:
        return self.loaded.card.palette


@dataclass
class Lab:
    store: ModelStore
    samples: Samples
    max_side: int = 2048
    concurrency: int = 1
    components: dict[str, Any] = field(default_factory=dict)  # model, sample, image, label
    default_model: str | None = None  # the model the page opens on
    paths: PathPolicy = field(default_factory=PathPolicy)  # the folders a client may name

    def default_classes(self) -> list[str]:
        """Class names of the model the page opens on (class pickers start with these)."""
        name = self.default_model or next(iter(self.store.names()), None)
        return list(self.store.cards[name].classes) if name else []

    @property
    def inputs(self) -> list[Any]:
        return [self.components[k] for k in ("model", "sample", "image", "label")]

    def context(self, model: str | None, sample: str | None, image: str | None, label: str | None) -> Context:
        loaded = self.store.get(model)
        lab_input = resolve_input(self.samples, loaded.card, sample, image, label, self.max_side)
        _, run = self.store.run(loaded.name, lab_input.rgb)
        return Context(loaded, lab_input, run)

    def open_dataset(self, spec: str, split: str) -> SegmentationDataset:
        """A dataset a client named, evaluated in this process: its folder must be allowed, and its
        pictures at most `max_side`² pixels (the first one is checked from its header)."""
        dataset = build_dataset(self.paths.data_spec(spec), split)
        if len(dataset):
            h, w = dataset.image_size(0)
            limits.check_image_size(w, h, f"a picture of {spec!r}", limit=self.max_side ** 2,
                                    why="the lab evaluates (--max-side squared; `contextrast eval` has no such bound)")
        return dataset

    def model_event(self, **kwargs: Any) -> dict[str, Any]:
        """Keyword arguments shared by every event that runs a model (concurrency group)."""
        return dict(concurrency_limit=self.concurrency, concurrency_id=MODEL_EVENTS, **kwargs)


_message_filter: list[Callable[[str], str]] = [lambda text: text]


def set_message_filter(fn: Callable[[str], str]) -> None:
    """How messages are rewritten before a client sees them (server paths made relative)."""
    _message_filter[0] = fn


def _as_user_error(fn: Callable[..., Any], e: Exception) -> gr.Error:
    if isinstance(e, gr.Error):
        return e
    if isinstance(e, (ValueError, FileNotFoundError)):
        return gr.Error(_message_filter[0](str(e)), print_exception=False)
    log.exception("handler %s failed", fn.__name__)  # a bug must not take the app down; the log keeps the trace
    return gr.Error(_message_filter[0](f"Something went wrong ({type(e).__name__}: {e}); the app is still running."))


def user_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn the library's ValueError/FileNotFoundError into a visible `gr.Error` with its message;
    anything else is logged and reported briefly, and the app keeps serving. Works for plain and
    generator (streaming) handlers alike."""

    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001
                raise _as_user_error(fn, e) from None

        return stream

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            raise _as_user_error(fn, e) from None

    return wrapper


def image_panel(label: str, caption: str, **kwargs: Any) -> gr.Image:
    """An output picture with its one-sentence caption underneath, in a column of its own."""
    with gr.Column(min_width=220):
        kwargs.setdefault("height", 240)
        image = gr.Image(label=label, interactive=False, format="png", **kwargs)
        gr.Markdown(caption)
    return image


def status(*lines: str) -> str:
    return "\n\n".join(line for line in lines if line)


def notices_md(notices: list[str]) -> str:
    return "\n".join(f"> ⚠️ {n}" for n in notices)
