"""Images tab: the image browser where error analysis starts. Every sample of a set is scored by the selected
model (per-image mIoU, wrong pixels), listed worst first, filtered by the classes an image must contain; a click
on a row opens that image in every tab (`contextrast.analysis.ranking`)."""

from __future__ import annotations

import threading
from typing import Any

import gradio as gr
import torch

from app.inputs import resolve_input
from app.lab import Lab, message_box, try_this
from app.state import LRU
from contextrast.analysis import ranking
from contextrast.analysis.forward import to_input
from contextrast.engine.inference import class_indices, predict_logits


def build_images(lab: Lab) -> list[Any]:
    """The tab; returns the event that opens a picked image (for `app.main.wire_inputs`)."""
    sets = lab.samples.set_labels()
    class_names = lab.default_classes()
    scores = LRU(8)  # (model, set) → list[ImageScore]
    stops: dict[str, threading.Event] = {}
    with lab.page("Images"):
        try_this("press *Rank the images*, tick a small class such as *Pedestrian*, and click the worst row: it opens "
                 "in every tab.")
        with gr.Row():
            which = gr.Dropdown(sets, value=sets[0] if sets else None, label="Sample set")
            sort_by = gr.Radio(list(ranking.SORT_KEYS), value=ranking.SORT_KEYS[0], label="Sort by")
            must = gr.CheckboxGroup(class_names, value=[], label="Only images that contain")
            limit = gr.Number(0, precision=0, label="Max images (0: all)", minimum=0, elem_id="images-max")
        with gr.Row():
            rank = gr.Button("Rank the images", variant="primary")
            cancel = gr.Button("Cancel", variant="stop")
        message = message_box()
        info = gr.Markdown(elem_id="images-info")
        listing = gr.Dataframe(headers=ranking.TABLE_HEADERS, value=[], interactive=False, label="Click a row to open "
                               "the image in every tab", max_height=420, elem_id="images-table")
    outputs = [listing, info]

    def listed(set_label: str | None, count: float | None) -> list[str]:
        if count is None or int(count) < 0:
            raise ValueError(f"max images must be 0 (all) or more; got {count!r}")
        names = lab.samples.names_in_set(set_label)
        return names[: int(count)] if count else names

    def score(model: str | None, set_label: str | None, count: float | None, request: gr.Request, progress: Any
              ) -> tuple[list, str, bool]:
        loaded = lab.store.get(model)
        names = listed(set_label, count)
        if not names:
            raise ValueError("no sample set to rank: start the lab with the toy set or --data SPEC")
        key = (loaded.name, set_label, len(names))
        cached = scores.get(key)
        if cached is not None:
            return cached, loaded.name, True
        if lab.samples.load(names[0])[2].classes != tuple(loaded.card.classes):
            raise ValueError(f"the images of {set_label} are labelled with other classes than `{loaded.name}` "
                             "predicts; pick a model trained on them")
        flag = stops.setdefault(getattr(request, "session_hash", None) or "-", threading.Event())
        flag.clear()

        def predict(i: int):
            sample = resolve_input(lab.samples, loaded.card, names[i], None, None, lab.max_side)
            with loaded.lock, torch.inference_mode():
                pred = class_indices(predict_logits(loaded.model, to_input(sample.rgb)))[0].numpy()
            return pred, sample.labels

        result = ranking.score_split(names, predict, len(loaded.card.classes), should_stop=flag.is_set,
                                     progress=lambda d, t: progress((d, t), desc="scoring images", unit="images"))
        if len(result) == len(names):
            scores.put(key, result)
        return result, loaded.name, False

    def rank_images(model, set_label, sort_key, must_contain, count, request: gr.Request,
                    progress=gr.Progress()):  # noqa: B008 - how Gradio asks for a progress bar
        result, name, cached = score(model, set_label, count, request, progress)
        return show(result, name, set_label, sort_key, must_contain, count, cached)

    def show(result, name, set_label, sort_key, must_contain, count, cached=False) -> list[Any]:
        classes = list(lab.store.cards[name].classes)
        unknown = [c for c in (must_contain or []) if c not in classes]
        if unknown:
            raise ValueError(f"not classes of `{name}`: {', '.join(unknown)}")
        rows = ranking.ranked(result, sort_key, [classes.index(c) for c in must_contain or []])
        done = len(result) == len(listed(set_label, count))
        text = (f"`{name}` on **{set_label}**: {len(rows)} of {len(result)} images shown, {sort_key}"
                + (" (cached)" if cached else "") + ("" if done else " — **cancelled**: only the images scored so far"))
        return [ranking.table(rows, classes), text]

    def refilter(model, set_label, sort_key, must_contain, count):
        loaded = lab.store.get(model)
        result = scores.get((loaded.name, set_label, len(listed(set_label, count))))
        if result is None:
            return [gr.skip(), "Press **Rank the images** to score this set with this model."]
        return show(result, loaded.name, set_label, sort_key, must_contain, count, True)

    def open_row(set_label, evt: gr.SelectData):
        """A click on a row: its image (the table names samples as the Sample menu does) opens in every tab."""
        name = str(evt.row_value[1]) if evt.row_value else None
        if name not in lab.samples:
            return gr.skip(), gr.skip()
        return name, lab.samples.load(name)[0]

    def cancel_ranking(request: gr.Request) -> str:
        stops.setdefault(getattr(request, "session_hash", None) or "-", threading.Event()).set()
        return "Cancelling: the ranking stops after the current image."

    inputs = [lab.components["model"], which, sort_by, must, limit]
    event = lab.on(rank.click, rank_images, inputs, outputs, message, api_name="images_rank")
    cancel.click(cancel_ranking, None, info, cancels=[event], api_name="images_cancel", concurrency_limit=None,
                 concurrency_id="cancel")
    lab.on([sort_by.input, must.input, which.input], refilter, inputs, outputs, message, heavy=False,
           api_name="images_filter", concurrency_limit=4)

    def model_classes(model_name: str | None):
        card = lab.store.cards.get(model_name)
        return gr.CheckboxGroup(choices=list(card.classes) if card else [], value=[])

    lab.on_model_change(model_classes, [must])
    return [listing.select(open_row, which, [lab.components["sample"], lab.components["image"]],
                           api_name="images_open", concurrency_limit=4)]
