"""Learn tab: a guided walk through CCL and BANE on a toy picture (contextrast.analysis.learn), with sliders for
τ, K_s and w_h that re-run the real loss. Uses a checkpoint trained on the toy classes when the lab has one,
else a small untrained SCRNet (its many mistakes still show every step)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import gradio as gr
import numpy as np
import torch

from app.display import Picture, enlarge
from app.lab import Lab, guarded, message_box, try_this
from app.state import LRU
from contextrast.analysis import cards, learn
from contextrast.analysis.bane import LAYER_NAMES
from contextrast.analysis.forward import ModelRun, run_model
from contextrast.data import build_dataset
from contextrast.data.toy import TOY
from contextrast.models import build_model

TINY = "(small untrained model)"
TOY_SPLIT = "val"
STEPS = (("1 · What an anchor is", "plot"), ("2 · The contextual update", "plot"),
         ("3 · Where the model is wrong", "image"), ("4 · Distance to the edge of each error region", "image"),
         ("5 · Keep the closest K_s percent", "image"), ("6 · How τ, K_s and w_h change the loss", "plot"))


@dataclass
class LearnTab:
    controls: list[Any]
    outputs: list[Any]


def toy_models(lab: Lab) -> list[str]:
    """The lab's checkpoints that predict the toy classes."""
    return [n for n, card in lab.store.cards.items() if cards.same_classes(card.classes, TOY.classes)]


def rounded(values: dict[str, Any], digits: int = 4) -> dict[str, Any]:
    """Loss terms for the page: floats to `digits` significant digits (nested dicts too)."""
    return {k: rounded(v, digits) if isinstance(v, dict) else float(f"{v:.{digits}g}") if isinstance(v, float) else v
            for k, v in values.items()}


def build_learn(lab: Lab) -> LearnTab:
    models = toy_models(lab)
    dataset = build_dataset("toy", TOY_SPLIT)
    runs = LRU(8)
    tiny_lock = threading.Lock()
    tiny: dict[str, Any] = {}

    def tiny_model():
        with tiny_lock:
            if "model" not in tiny:
                torch.manual_seed(0)
                tiny["model"] = build_model({"num_classes": TOY.num_classes, "decoder_channels": 32}).eval()
            return tiny["model"]

    with lab.page("Learn") as page:
        try_this("set τ to 0.03 and watch step 6: a few hard negatives dominate the loss; then move w_h and see the "
                 "arrows of step 2 stretch towards the deep anchors.")
        gr.Markdown("## How Contextrast learns, step by step\nA toy picture, a real model and the project's real loss "
                    "(with that model's own settings, from its card). Move the sliders: the pictures and the loss value "
                    "are recomputed.")
        with gr.Row():
            model = gr.Dropdown([*models, TINY], value=models[0] if models else TINY, label="Model")
            picture = gr.Slider(0, len(dataset) - 1, value=0, step=1, label="Toy picture")
            layer = gr.Radio(list(LAYER_NAMES), value=LAYER_NAMES[1], type="index", label="Layer")
        with gr.Row():
            base = learn.defaults_of(cards.training_loss(lab.store.cards[models[0]]) if models else None)
            tau = gr.Slider(0.02, 1.0, value=base["tau"], step=0.01, label="τ (temperature)")
            k_s = gr.Slider(1, 100, value=base["bane_percent"], step=1, label="K_s (%)", elem_id="learn-ks")
            w_h = gr.Slider(0.0, 1.0, value=base["w_h"], step=0.05, label="w_h (weight of the deepest anchor)")
        start = gr.Button("Walk through", variant="primary")
        message = message_box()
        outputs: list[Any] = []
        texts: list[Any] = []
        for title, kind in STEPS:
            gr.Markdown(f"### {title}")
            with gr.Row():
                pic = gr.Plot(show_label=False) if kind == "plot" else Picture(show_label=False, interactive=False,
                                                                                 format="png", height=300)
                text = gr.Markdown(elem_id=f"learn-step-{len(texts) + 1}")
            outputs.append(pic)
            texts.append(text)
        loss_json = gr.JSON(label="Loss terms at these settings (and at the model's own)")
        # inside the tab: a component placed between two tabs (in gr.Tabs itself) made the browser list the next
        # tab twice in the tab bar (Gradio 6) once that tab was opened
        shown = gr.State(False)  # per browser session: has the walk-through been drawn yet?
    tab = LearnTab(controls=[model, picture, layer, tau, k_s, w_h], outputs=[*outputs, *texts, loss_json])

    def loss_config(model_name: str):
        return cards.training_loss(lab.store.cards[model_name]) if model_name in models else None

    def prepare(model_name: str, index: int) -> tuple[ModelRun, np.ndarray]:
        if not 0 <= index < len(dataset):
            raise ValueError(f"toy picture must be 0..{len(dataset) - 1}; got {index}")
        rgb, mask = dataset.load(index)
        if model_name == TINY:
            net, lock = tiny_model(), tiny_lock
        elif model_name in models:
            loaded = lab.store.get(model_name)
            net, lock = loaded.model, loaded.lock
        else:
            raise ValueError(f"model must be one of {', '.join([*models, TINY])}; got {model_name!r}")

        def make() -> ModelRun:
            with lock:
                return run_model(net, rgb)

        return runs.get_or_make((model_name, index), make), mask.astype(np.int64)

    def walk(model_name, index, layer_index, tau_value, k_s_value, w_h_value):
        if layer_index is None or not 0 <= int(layer_index) < len(LAYER_NAMES):
            raise ValueError(f"layer must be one of {', '.join(LAYER_NAMES)} (index 0..3); got {layer_index!r}")
        layer_index = int(layer_index)
        for name, value in (("τ", tau_value), ("K_s", k_s_value), ("w_h", w_h_value)):
            if value is None:
                raise ValueError(f"{name} needs a value")
        run, labels = prepare(model_name, int(index))
        config = loss_config(model_name)
        classes, palette = list(TOY.classes), [list(c) for c in TOY.palette]
        s1 = learn.anchor_step(run, labels, layer_index, classes, palette)
        s2 = learn.update_step(run, labels, layer_index, float(w_h_value), classes, palette)
        b = learn.bane_steps(run, labels, layer_index, float(k_s_value), palette, config)
        s6, chosen, defaults = learn.loss_step(run, labels, len(classes), float(tau_value), float(k_s_value),
                                               float(w_h_value), config=config)
        steps = [s1, s2, b.error, b.distance, b.kept, s6]
        pictures = [enlarge(s.picture) if isinstance(s.picture, np.ndarray) else s.picture for s in steps]
        return pictures + [s.text for s in steps] + [rounded({"chosen": chosen, "model's own": defaults,
                                                              "bane": b.counts})]

    lab.on([start.click, tau.release, k_s.release, w_h.release, layer.input, picture.release], walk,
           tab.controls, tab.outputs, message, api_name="learn", trigger_mode="always_last")

    def model_settings(model_name: str):
        """A new model: the sliders take its own τ, K_s and w_h (its card's loss), then the walk is drawn again."""
        base = learn.defaults_of(loss_config(model_name) if model_name in [*models, TINY] else None)
        return gr.Slider(value=base["tau"]), gr.Slider(value=base["bane_percent"]), gr.Slider(value=base["w_h"])

    model.input(model_settings, model, [tau, k_s, w_h], api_name="learn_model_settings", concurrency_limit=4).then(
        fn=guarded(walk, len(tab.outputs)), inputs=tab.controls,
        outputs=[*tab.outputs, message, lab.components["input_message"]], **lab.model_event(api_name="learn_model"))

    def first_visit(already_shown: bool, *controls: Any) -> list[Any]:
        """Opening the tab draws the walk-through at the current settings once, so a class sees six steps
        rather than six empty boxes; later visits keep whatever the sliders made."""
        if already_shown:
            return [gr.skip()] * len(tab.outputs) + [True]
        return [*walk(*controls), True]

    lab.on(page.select, first_visit, [shown, *tab.controls], [*tab.outputs, shown], message,
           api_name="learn_first_visit")
    return tab
