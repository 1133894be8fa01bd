"""What every tab shares: the server state, the input components, one request's analysis context, and the way a
tab registers its events.

A handler's expected failure (bad input, an impossible choice) never wipes the page: its outputs are left as they
were (`gr.skip()`) and one message appears beside the control that caused it, the tab's own message box or, for the
image, label map and model, the one under the inputs. Nothing is raised to Gradio, so no output shows an "Error"
badge and no toast repeats."""

from __future__ import annotations

import functools
import inspect
import logging
import time
import typing
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import gradio as gr
from gradio import utils as gradio_utils

from app.display import Picture
from app.inputs import LabInput, model_input
from app.samples import Samples
from app.state import LRU, LoadedModel, ModelStore
from contextrast import limits
from contextrast.analysis.colormaps import Scale
from contextrast.analysis.forward import ModelRun
from contextrast.data import SegmentationDataset, build_dataset
from contextrast.paths import PathPolicy

log = logging.getLogger("contextrast.app")

MODEL_EVENTS = "model"  # concurrency group of every event that runs a model: one at a time on a small CPU
# events the page fires on its own (a tab opened, the redraw after a new input, the watchers, the menus of a new
# model): left off the API page and out of /gradio_api/info, which list what a client asks for (the views, the
# actions); gradio_client still calls them by name, with every argument by position (it has no parameter list). They were 39 of its 73 endpoints and two thirds of its 929 KB,
# which every gradio_client fetches (and the server builds) before its first call.
PAGE_EVENT = dict(api_visibility="undocumented")


class InputError(ValueError):
    """A problem with the shared inputs (model, image, label map): shown under them, not in the tab."""


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

    def class_index(self, name: str | None, any_class: str) -> int | None:
        """A class menu's choice → the class id, or None for `any_class` (the menu's "all"/"auto" entry)."""
        if name in (None, "", any_class):
            return None
        if name not in self.classes:
            raise ValueError(f"unknown class {name!r}; this model's classes: {', '.join(self.classes)}")
        return self.classes.index(name)

    def status(self, *lines: str) -> str:
        """A view's text: the input's notices, which image and model it shows, then `lines`."""
        return status(notices_md(self.input.notices), f"**{self.input.name}** · model `{self.loaded.name}`", *lines)


@dataclass
class Page:
    """A tab that draws the current input: `view` holds its guarded view function, inputs and outputs (the tab's
    message and the input message last)."""

    label: str
    tab: gr.Tab
    view: dict[str, Any] | None = None


AFTER_FIRST_VIEW_S = 4.0
# the page's JavaScript before a page load that waits for the first view: Gradio hands it the inputs' values, awaits it,
# then calls the server with what it returns (a lone input's value bare). Texts are read from their Markdown's prose:
# while an event is pending, Gradio's timer ("0.1s") is part of the element's text
AFTER_FIRST_VIEW_JS = """async (...inputs) => {
  const text = (e) => (e?.querySelector('.prose')?.innerText || '').trim();  // not the pending timer beside it
  const drawn = () => text(document.getElementById('%(id)s')) !== ''
    || [...document.querySelectorAll('.lab-message')].some((e) => e.offsetParent !== null && text(e) !== '');
  for (const start = Date.now(); !drawn() && Date.now() - start < %(wait_ms)d; ) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return inputs.length === 1 ? inputs[0] : inputs;
}"""


@dataclass
class Lab:
    store: ModelStore
    samples: Samples
    max_side: int = 2048
    concurrency: int = 1
    components: dict[str, Any] = field(default_factory=dict)  # model, sample, image, label, input_message, lock
    default_model: str | None = None  # the model the page opens on
    paths: PathPolicy = field(default_factory=PathPolicy)  # the folders a client may name
    pages: list[Page] = field(default_factory=list)
    model_menus: list[dict[str, Any]] = field(default_factory=list)  # event kwargs run when the model changes
    input_watchers: list[dict[str, Any]] = field(default_factory=list)  # event kwargs run for any new input
    page_loads: list[dict[str, Any]] = field(default_factory=list)  # event kwargs run when a browser opens the page
    first_view_id: str | None = None  # elem_id of the text the page's first view writes (page loads may wait for it)
    scale_memory: LRU = field(default_factory=lambda: LRU(256))  # session → {quantity: Scale} (keep one scale)
    last_view: float | None = None  # time.monotonic() of the latest view request (None: none yet)

    def default_classes(self) -> list[str]:
        """Class names of the model the page opens on (class pickers start with these)."""
        name = self.default_model or next(iter(self.store.names()), None)
        return list(self.store.cards[name].classes) if name else []

    @property
    def inputs(self) -> list[Any]:
        return [self.components[k] for k in ("model", "sample", "image", "label")]

    def context(self, model: str | None, sample: str | None, image: str | None, label: str | None) -> Context:
        """The request's model, input and forward pass; marks the lab in use (`last_view`)."""
        self.last_view = time.monotonic()
        try:
            loaded, lab_input = model_input(self.store, self.samples, model, sample, image, label, self.max_side)
        except (ValueError, FileNotFoundError) as e:
            raise InputError(str(e)) from None
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

    # ------------------------------------------------------------------------------------------- registration

    def page(self, label: str) -> gr.Tab:
        """Open a tab (use as `with lab.page("Predict"):`); the lab remembers it as the current tab when selected
        (`current_tab`: a new input redraws that tab only, and none while a tab without such a view is open)."""
        tab = gr.Tab(label)
        self.pages.append(Page(label, tab))
        if "current_tab" in self.components:
            tab.select(lambda: label, None, self.components["current_tab"], queue=False,
                       api_name=f"in_view_{label.lower().replace(' ', '_')}", **PAGE_EVENT)
        return tab

    def on(self, triggers: Any, fn: Callable[..., Any], inputs: Sequence[Any], outputs: Sequence[Any],
           message: Any, *, heavy: bool = True, **kwargs: Any) -> Any:
        """Wire `fn` to `triggers` with the lab's error handling (`guarded`): the outputs get `message` and the
        input message appended (cleared on success only by events that read the image or label map, so a timer or
        another tab's button never hides what is wrong with the input). Heavy events join the model's concurrency
        group and mark the lab in use as they end (`_marks_in_use`). Returns the event."""
        extra = self.model_event(**kwargs) if heavy else kwargs
        shared = [self.components[k] for k in ("sample", "image", "label") if k in self.components]
        reads_input = any(c is i for c in inputs for i in shared)
        handler = guarded(fn, len(outputs), reads_input)
        return gr.on(triggers, self._marks_in_use(handler) if heavy else handler, inputs=list(inputs),
                     outputs=[*outputs, message, self.components["input_message"]], **extra)

    def draws_input(self, fn: Callable[..., Any], inputs: Sequence[Any], outputs: Sequence[Any], message: Any,
                    api_name: str) -> None:
        """Register the open tab's view of the current input: drawn when the tab is opened (`{api_name}_shown`), and
        again after a new image, label map or model while the tab is the one in view (`view_event`, wired by
        app.main)."""
        page = self.pages[-1]
        fn = self._marks_in_use(guarded(fn, len(outputs)))
        all_outputs = [*outputs, message, self.components["input_message"]]
        page.tab.select(fn, list(inputs), all_outputs, **self.model_event(api_name=f"{api_name}_shown", **PAGE_EVENT))
        page.view = dict(fn=fn, inputs=list(inputs), outputs=all_outputs, api_name=api_name)

    def _marks_in_use(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        """`fn`, setting `last_view` when it returns too (`context` sets it as a view starts): the UMAP warm-up
        waits for a quiet moment after the first page is drawn, not after its forward pass. A generator function
        stays one (Gradio streams its updates)."""
        if inspect.isgeneratorfunction(fn):

            @functools.wraps(fn)
            def stream(*args: Any, **kwargs: Any) -> Iterator[Any]:
                try:
                    yield from fn(*args, **kwargs)
                finally:
                    self.last_view = time.monotonic()

            return stream

        @functools.wraps(fn)
        def view(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            finally:
                self.last_view = time.monotonic()

        return view

    def view_event(self) -> dict[str, Any] | None:
        """One event (fn, inputs, outputs) that redraws the tab in view, whichever it is; the others keep their
        pictures until opened. One event rather than one per tab: each tab's event, even one that only skipped,
        was a round trip through the queue and a preprocessing of its inputs (40-90 ms on the server on 2 cores),
        queued before or after the tab in view."""
        pages = [p for p in self.pages if p.view is not None]
        if not pages:
            return None
        inputs = _unique([self.components["current_tab"], *(c for p in pages for c in p.view["inputs"])])
        outputs = _unique([c for p in pages for c in p.view["outputs"]])
        position = {id(c): i for i, c in enumerate(inputs)}
        slot = {id(c): i for i, c in enumerate(outputs)}
        plans = {p.label: _ViewPlan(p.view["fn"], [position[id(c)] for c in p.view["inputs"]],
                                    [slot[id(c)] for c in p.view["outputs"]], _request_parameter(p.view["fn"]))
                 for p in pages}
        names: dict[int, str] = {id(self.components["current_tab"]): "current_tab"}
        for p in pages:  # each input is named as the first view that reads it names it (the API shows these names)
            own = [n for n in inspect.signature(p.view["fn"]).parameters if n != plans[p.label].request_name]
            for c, name in zip(p.view["inputs"], own, strict=True):
                names.setdefault(id(c), name if name not in names.values() else f"{p.view['api_name']}_{name}")

        def view(*values: Any) -> list[Any]:
            *values, request = values  # Gradio passes the request last: the signature below puts it there
            shown = [gr.skip()] * len(outputs)
            plan = plans.get(values[0])
            if plan is None:
                return shown
            kwargs = {plan.request_name: request} if plan.request_name else {}
            drawn = plan.fn(*(values[i] for i in plan.inputs), **kwargs)
            for i, value in zip(plan.outputs, drawn, strict=True):
                shown[i] = value
            return shown

        parameter = functools.partial(inspect.Parameter, kind=inspect.Parameter.POSITIONAL_OR_KEYWORD)
        view.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [*(parameter(names[id(c)]) for c in inputs), parameter("request", annotation=gr.Request)])
        view.__annotations__ = {"request": gr.Request}
        return dict(fn=view, inputs=inputs, outputs=outputs)

    def on_model_change(self, fn: Callable[[str | None], Any], outputs: Sequence[Any]) -> None:
        """`fn(model_name)` updates menus (class pickers, second-model lists) before the views redraw."""
        self.model_menus.append(dict(fn=fn, inputs=[self.components["model"]], outputs=list(outputs)))

    def model_menus_event(self) -> dict[str, Any] | None:
        """One event (fn, inputs, outputs) that updates every tab's menus for a new model: one round trip instead of
        one per tab (each a few tenths of a second in the browser, chained)."""
        menus = list(self.model_menus)
        if not menus:
            return None

        def update_menus(model_name: str | None) -> list[Any]:
            values: list[Any] = []
            for menu in menus:
                value = menu["fn"](model_name)
                values.extend(value if len(menu["outputs"]) > 1 else [value])
            return values

        return dict(fn=update_menus, inputs=[self.components["model"]],
                    outputs=[o for menu in menus for o in menu["outputs"]])

    def on_new_input(self, fn: Callable[..., Any], inputs: Sequence[Any], outputs: Sequence[Any]) -> None:
        """`fn` runs after every new image, label map or model (e.g. to clear a view the input made outdated)."""
        self.input_watchers.append(dict(fn=fn, inputs=list(inputs), outputs=list(outputs)))

    def on_page_load(self, fn: Callable[..., Any], inputs: Sequence[Any], outputs: Sequence[Any],
                     after_first_view: bool = False) -> None:
        """`fn` when a browser opens the page; `after_first_view`: once the page's first view has been drawn (its
        text `first_view_id` written, or a message shown; at most AFTER_FIRST_VIEW_S), so that what it shows
        (sixty thumbnails) does not hold up the first prediction in the browser."""
        self.page_loads.append(dict(fn=fn, inputs=list(inputs), outputs=list(outputs),
                                    after_first_view=after_first_view))

    def page_load_events(self) -> list[dict[str, Any]]:
        """The page loads as event kwargs (fn, inputs, outputs, js), once every tab is built (`first_view_id` set)."""
        events = []
        for load in self.page_loads:
            event = {k: v for k, v in load.items() if k != "after_first_view"}
            if load["after_first_view"] and self.first_view_id is not None:
                event["js"] = AFTER_FIRST_VIEW_JS % dict(id=self.first_view_id, wait_ms=int(AFTER_FIRST_VIEW_S * 1000))
            events.append(event)
        return events

    # ------------------------------------------------------------------------------------------- colour scales

    def kept_scales(self, request: gr.Request | None, keep: bool, view: str) -> dict[str, Scale]:
        """With `keep`, the scales this browser session last drew `view`'s maps with (so images, layers and models
        compare on one scale); otherwise none (each map gets its own)."""
        if not keep:
            return {}
        return dict(self.scale_memory.get(((getattr(request, "session_hash", None) or "-"), view)) or {})

    def remember_scales(self, request: gr.Request | None, view: str, scales: dict[str, Scale]) -> None:
        self.scale_memory.put(((getattr(request, "session_hash", None) or "-"), view), dict(scales))


class _ViewPlan(NamedTuple):
    """How the one view event calls a tab's view: its function, the positions of its inputs among the event's, the
    slots of its outputs among the event's, and the name of its `gr.Request` parameter (if any)."""

    fn: Callable[..., Any]
    inputs: list[int]
    outputs: list[int]
    request_name: str | None


def _unique(components: Sequence[Any]) -> list[Any]:
    """`components` without repeats (by identity), in order."""
    seen: set[int] = set()
    return [c for c in components if id(c) not in seen and not seen.add(id(c))]


def _request_parameter(fn: Callable[..., Any]) -> str | None:
    """The name of `fn`'s `gr.Request` parameter (Gradio fills it in), if it has one."""
    target = inspect.unwrap(fn)
    hints = gradio_utils.get_type_hints(target)  # as Gradio reads them (names it cannot resolve are left out)
    return next((name for name in inspect.signature(target).parameters
                 if hints.get(name) is gr.Request or gr.Request in typing.get_args(hints.get(name))), None)


_message_filter: list[Callable[[str], str]] = [lambda text: text]


def set_message_filter(fn: Callable[[str], str]) -> None:
    """How messages are rewritten before a client sees them (server paths made relative)."""
    _message_filter[0] = fn


def message_md(text: str) -> str:
    return f"> ⚠️ {text}"


def _failure(n: int, e: Exception, fn: Callable[..., Any]) -> list[Any]:
    """Outputs left as they are, the message in the tab's box (or under the inputs for an `InputError`)."""
    if isinstance(e, InputError):
        return [gr.skip()] * n + ["", message_md(_message_filter[0](str(e)))]
    if isinstance(e, (ValueError, FileNotFoundError)):
        return [gr.skip()] * n + [message_md(_message_filter[0](str(e))), gr.skip()]
    log.exception("handler %s failed", getattr(fn, "__name__", fn))  # a bug must not take the app down
    return [gr.skip()] * n + [message_md(_message_filter[0](
        f"Something went wrong ({type(e).__name__}: {e}); the app is still running and the last result is kept.")),
        gr.skip()]



def guarded(fn: Callable[..., Any], n: int, clears_input: bool = True) -> Callable[..., Any]:
    """`fn` returns (or yields) its `n` outputs; the guarded function returns them plus the tab message and the
    input message (both cleared on success; the input message kept without `clears_input`), and on failure
    `_failure`. Plain and generator handlers alike."""
    if inspect.isgeneratorfunction(fn):

        @functools.wraps(fn)
        def stream(*args: Any, **kwargs: Any) -> Iterator[list[Any]]:
            try:
                for values in fn(*args, **kwargs):
                    yield [*values, "", "" if clears_input else gr.skip()]
            except Exception as e:  # noqa: BLE001
                yield _failure(n, e, fn)

        return stream

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> list[Any]:
        try:
            values = fn(*args, **kwargs)
        except Exception as e:  # noqa: BLE001
            return _failure(n, e, fn)
        return [*values, "", "" if clears_input else gr.skip()]

    return wrapper


def image_panel(label: str, caption: str, **kwargs: Any) -> gr.Image:
    """An output picture with its one-sentence caption underneath, in a column of its own."""
    with gr.Column(min_width=220):
        kwargs.setdefault("height", 240)
        image = Picture(label=label, interactive=False, format="png", **kwargs)
        gr.Markdown(caption)
    return image


def message_box() -> gr.Markdown:
    """The tab's message box, placed right under the controls it speaks of."""
    return gr.Markdown(elem_classes=["lab-message"])


def try_this(text: str) -> gr.Markdown:
    return gr.Markdown(f"**Try this:** {text}", elem_classes=["lab-try"])


def status(*lines: str) -> str:
    return "\n\n".join(line for line in lines if line)


def notices_md(notices: list[str]) -> str:
    return "\n".join(f"> ⚠️ {n}" for n in notices)
