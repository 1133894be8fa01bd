"""Embeddings tab: PCA (at once) then UMAP of a class-balanced sample of one projection head's pixel
embeddings, for one image or several images of a split, one or two checkpoints on the same pixels.
Click a point (in the scatter picture) to see its pixel; click the image to find the pixel's point."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gradio as gr
import numpy as np

from app.display import enlarge, to_source
from app.inputs import resolve_input
from app.lab import Lab, notices_md, status, user_errors
from app.state import LRU, digest
from contextrast.analysis import embeddings as emb
from contextrast.analysis.forward import run_model

NO_MODEL = "(none)"
THIS_IMAGE = "this image"
SPLIT_IMAGES = "first images of the sample's split"
MAX_IMAGES = 16


@dataclass
class EmbeddingView:
    """What one projection request produced, kept per session so clicks can be mapped back."""

    names: list[str]  # the image names, one per image index
    rgbs: list[np.ndarray]
    classes: list[str]
    palette: list[list[int]]
    models: list[str]
    samples: list[emb.PixelSample]
    projections: list[emb.Projection] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)


@dataclass
class EmbeddingsTab:
    controls: list[Any]
    outputs: list[Any]
    cache: LRU
    mark_stale: dict[str, Any] = field(default_factory=dict)  # event kwargs: clear a projection the input outdated

    def render(self, view: EmbeddingView, colour_by: str, point: int | None, headline: str) -> list[Any]:
        """[info, scatter picture A, plot A, picture B, plot B, located pixel, point, image, y, x, view]."""
        pictures, figures = [], []
        for sample, proj, model in zip(view.samples, view.projections, view.models):
            img, _ = emb.scatter_image(sample, proj, colour_by, view.palette, highlight=point)
            pictures.append(img)
            figures.append(emb.scatter_figure(sample, proj, colour_by, view.classes, view.palette, highlight=point,
                                              title=f"{proj.method} · {model} · {emb.LAYER_NAMES[sample.layer]}"))
        two = len(view.samples) > 1
        a = view.samples[0]
        point = 0 if point is None else int(point)
        i, y, x = emb.pixel_of_point(a, point)
        located = enlarge(emb.locate_pixel(view.rgbs[i], y, x, a.grids[i]))
        cls = view.classes

        def name(c: int) -> str:
            return cls[c] if 0 <= c < len(cls) else "unlabelled"

        preds = " / ".join(f"{m}: {name(int(s.prediction[point]))}" for m, s in zip(view.models, view.samples))
        where = (f"Point {point} → **{view.names[i]}**, pixel x={x}, y={y} (cell {int(a.gy[point])}, {int(a.gx[point])} "
                 f"of the {a.grids[i][1]}×{a.grids[i][0]} grid); truth: {name(int(a.truth[point]))}; predicted {preds}.")
        info = status(notices_md(view.notices), headline, where)
        return [info, pictures[0], figures[0], gr.Image(pictures[1] if two else None, visible=two),
                gr.Plot(figures[1] if two else None, visible=two), located, point, i, y, x, view]


def _images(lab: Lab, model: str, sample: str | None, image: str | None, label: str | None, source: str,
            count: int) -> tuple[list[str], list[np.ndarray], list[np.ndarray | None], list[str]]:
    """(names, rgbs, labels, notices) of the request's images: the current one, or the first `count` of its split."""
    ctx = lab.context(model, sample, image, label)
    if source == THIS_IMAGE:
        return [ctx.input.name], [ctx.input.rgb], [ctx.input.labels], list(ctx.input.notices)
    if source != SPLIT_IMAGES:
        raise ValueError(f"pixels come from {THIS_IMAGE!r} or {SPLIT_IMAGES!r}; got {source!r}")
    if not 1 <= int(count) <= MAX_IMAGES:
        raise ValueError(f"number of images must be 1..{MAX_IMAGES}; got {count}")
    names = lab.samples.names()
    if not names:
        raise ValueError("no sample split is available: start the app with the toy set or --data SPEC")
    prefix = sample.rsplit("/", 1)[0] if sample and sample in lab.samples else names[0].rsplit("/", 1)[0]
    chosen = [n for n in names if n.rsplit("/", 1)[0] == prefix][: int(count)]
    rgbs, labels, notices = [], [], []
    for n in chosen:
        inp = resolve_input(lab.samples, ctx.loaded.card, n, None, None, lab.max_side)
        rgbs.append(inp.rgb)
        labels.append(inp.labels)
        notices += [m for m in inp.notices if m not in notices]
    return chosen, rgbs, labels, notices


def build_embeddings(lab: Lab) -> EmbeddingsTab:
    names = lab.store.names()
    gr.Markdown("Each dot is one pixel's embedding from a projection head (METHOD.md §2), flattened to 2-D: **PCA** "
                "appears at once, **UMAP** follows. Pixels are sampled so every class gets about as many dots. "
                "**Click a dot** in the left picture to see its pixel; **click the image** below to find the pixel's "
                "dot. Stars are the loss's class anchors â.")
    with gr.Row():
        layer = gr.Radio(list(emb.LAYER_NAMES), value=emb.LAYER_NAMES[1], type="index", label="Layer (projection head)")
        points = gr.Slider(emb.MIN_POINTS, emb.MAX_POINTS, value=5000, step=100, label="Points (class-balanced sample)")
        seed = gr.Number(0, precision=0, label="Sample seed")
    with gr.Row():
        source = gr.Radio([THIS_IMAGE, SPLIT_IMAGES], value=THIS_IMAGE, label="Pixels from")
        count = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Images of the split")
        colour_by = gr.Dropdown(list(emb.COLOUR_BY), value=emb.COLOUR_BY[0], label="Colour by")
        other = gr.Dropdown([NO_MODEL, *names], value=NO_MODEL, label="Second checkpoint, same pixels")
    go_button = gr.Button("Project embeddings", variant="primary")
    info = gr.Markdown()
    with gr.Row():
        picture_a = gr.Image(label="Scatter (click a dot)", interactive=False, format="png", height=420)
        plot_a = gr.Plot(label="Scatter (hover for the class)")
    with gr.Row():
        picture_b = gr.Image(label="Second checkpoint (click a dot)", interactive=False, format="png", height=420,
                             visible=False)
        plot_b = gr.Plot(label="Second checkpoint", visible=False)
    with gr.Row():
        located = gr.Image(label="Where the point's pixel is (click to pick a pixel)", interactive=False, format="png",
                           height=300)
        with gr.Column():
            point = gr.Number(label="Point", precision=0)
            image_index = gr.Number(label="Image index", precision=0, value=0)
            pixel_y = gr.Number(label="Pixel y", precision=0)
            pixel_x = gr.Number(label="Pixel x", precision=0)
    view_state = gr.State(None)
    tab = EmbeddingsTab(controls=[layer, points, seed, source, count, colour_by, other],
                        outputs=[info, picture_a, plot_a, picture_b, plot_b, located, point, image_index, pixel_y,
                                 pixel_x, view_state], cache=LRU(6))

    @user_errors
    def project(model, sample, image, label, layer_index, n, seed_value, source_value, count_value, colour, second,
                progress=gr.Progress(track_tqdm=True)):  # noqa: B008 - how Gradio asks for a progress bar
        """Generator: the PCA view first, then the UMAP view (each cached per checkpoint, images, layer, seed)."""
        n = emb.check_sample_size(n)
        if layer_index is None or not 0 <= int(layer_index) < len(emb.LAYER_NAMES):
            raise ValueError(f"layer must be one of {', '.join(emb.LAYER_NAMES)} (index 0..3); got {layer_index!r}")
        if colour not in emb.COLOUR_BY:
            raise ValueError(f"colour by must be one of {', '.join(emb.COLOUR_BY)}; got {colour!r}")
        layer_index, seed_value = int(layer_index), int(seed_value or 0)
        models = [model] + ([second] if second not in (None, "", NO_MODEL) else [])
        progress(0.0, desc="reading the images")
        image_names, rgbs, labels, notices = _images(lab, model, sample, image, label, source_value, count_value)
        key = (tuple(models), tuple(digest(r) for r in rgbs), tuple(digest(y) for y in labels), layer_index, n,
               seed_value)

        def make_samples() -> EmbeddingView:
            loaded = [lab.store.get(m) for m in models]
            classes = list(loaded[0].card.classes)
            for extra in loaded[1:]:
                if list(extra.card.classes) != classes:
                    raise ValueError(f"{extra.name} predicts other classes than {loaded[0].name}; compare checkpoints "
                                     "trained on the same classes")
            samples: list[emb.PixelSample] = []
            for j, lm in enumerate(loaded):
                pixels = []
                for r, y in zip(rgbs, labels):
                    progress((len(pixels) + j * len(rgbs), len(rgbs) * len(loaded)), desc=f"forward pass ({lm.name})")
                    with lm.lock:
                        run = run_model(lm.model, r)
                    pixels.append(emb.layer_pixels(run, layer_index, y))
                if j == 0:
                    samples.append(emb.sample_pixels(pixels, layer_index, n, seed_value, len(classes)))
                else:
                    samples.append(emb.same_pixels(samples[0], pixels))
            view = EmbeddingView(image_names, rgbs, classes, loaded[0].card.palette, models, samples,
                                 notices=list(notices))
            if samples[0].available < n:
                view.notices.append(f"Only {samples[0].available} labelled pixels exist on this layer's grid of these "
                                    f"images, so all of them are shown instead of {n}.")
            return view

        view: EmbeddingView = tab.cache.get_or_make(key, make_samples)
        if colour in ("ground truth", "correct / wrong") and view.samples[0].balanced_by != "ground truth":
            colour = "prediction"
            view.notices = [*view.notices, "No ground truth for these pixels: coloured by prediction instead "
                                           "(add a label map to see the truth)."]
        pca_view = EmbeddingView(**{**vars(view), "projections": [tab.cache.get_or_make(
            key + ("PCA", i), lambda s=s: emb.pca_project(s)) for i, s in enumerate(view.samples)]})
        a = view.samples[0]
        head = (f"{len(a)} pixels of {len(rgbs)} image(s) at {emb.LAYER_NAMES[layer_index]}, balanced by "
                f"{a.balanced_by}")
        waiting = "" if emb.umap_is_warm() else " (UMAP's numba kernels are still compiling after start-up)"
        yield tab.render(pca_view, colour, 0, f"**PCA** shown · {head} · UMAP is computing…{waiting}")
        umaps = []
        for i, s in enumerate(view.samples):
            progress(0.0, desc=f"UMAP of {len(s)} points ({view.models[i]})")
            umaps.append(tab.cache.get_or_make(key + ("UMAP", i), lambda s=s: emb.umap_project(s, seed=seed_value,
                                                                                                show_epochs=True)))
        umap_view = EmbeddingView(**{**vars(view), "projections": umaps})
        seconds = " + ".join(f"{p.seconds:.1f}" for p in umaps)
        yield tab.render(umap_view, colour, 0, f"**UMAP** · {head} · {seconds} s")

    def _point_of(view: EmbeddingView | None) -> EmbeddingView:
        if view is None:
            raise ValueError("project the embeddings first (button “Project embeddings”)")
        return view

    @user_errors
    def show_point(view, colour, point_value):
        view = _point_of(view)
        if point_value is None or not 0 <= int(point_value) < len(view.samples[0]):
            raise ValueError(f"point must be 0..{len(view.samples[0]) - 1}; got {point_value!r}")
        return tab.render(view, colour if colour in emb.COLOUR_BY else emb.COLOUR_BY[1], int(point_value),
                          f"Picked point {int(point_value)}.")

    @user_errors
    def show_pixel(view, colour, image_value, y, x):
        view = _point_of(view)
        if image_value is None or not 0 <= int(image_value) < len(view.rgbs):
            raise ValueError(f"image index must be 0..{len(view.rgbs) - 1}; got {image_value!r}")
        if y is None or x is None:
            raise ValueError("give both pixel y and pixel x")
        hit = emb.point_at_pixel(view.samples[0], int(image_value), float(y), float(x))
        note = ("" if hit.exact else f"The cell of pixel x={int(x)}, y={int(y)} was not sampled; showing the nearest "
                                     "sampled pixel of that image.")
        return tab.render(view, colour if colour in emb.COLOUR_BY else emb.COLOUR_BY[1], hit.point,
                          status(note, f"Pixel x={int(x)}, y={int(y)} of {view.names[int(image_value)]} → point "
                                       f"{hit.point}."))

    @user_errors
    def click_scatter(view, colour, evt: gr.SelectData):
        view = _point_of(view)
        u, v = evt.index  # image components report [x, y] in the picture's own pixels
        colour = colour if colour in emb.COLOUR_BY else emb.COLOUR_BY[1]
        _, canvas = emb.scatter_image(view.samples[0], view.projections[0], colour, view.palette)
        picked = emb.pick_point(canvas, u, v)
        if picked is None:
            raise ValueError("no dot there: click closer to a dot")
        return tab.render(view, colour, picked, f"Clicked the scatter at ({u}, {v}) → point {picked}.")

    @user_errors
    def click_image(view, colour, image_value, evt: gr.SelectData):
        view = _point_of(view)
        if image_value is None or not 0 <= int(image_value) < len(view.rgbs):
            raise ValueError(f"image index must be 0..{len(view.rgbs) - 1}; got {image_value!r}")
        x, y = to_source(evt.index, view.rgbs[int(image_value)].shape)  # the click is in the enlarged picture
        return show_pixel(view, colour, image_value, y, x)

    def mark_stale(view, source_value, model):
        """The picked image or model changed: a projection of this image, or of another model, no longer shows
        what the page shows. Clear it (a new UMAP takes seconds, so it waits for the button)."""
        if view is None or (source_value == SPLIT_IMAGES and view.models[0] == model):
            return [gr.skip()] * len(tab.outputs)
        return ["The image or model changed since this projection: press **Project embeddings** to draw it again.",
                None, None, gr.Image(None, visible=False), gr.Plot(None, visible=False), None, None, 0, None, None,
                None]

    tab.mark_stale = dict(fn=mark_stale, inputs=[view_state, source, lab.components["model"]], outputs=tab.outputs,
                          concurrency_limit=4)
    heavy = dict(outputs=tab.outputs, **lab.model_event())
    project_inputs = lab.inputs + tab.controls
    go_button.click(project, inputs=project_inputs, api_name="embeddings", **heavy)
    point.submit(show_point, [view_state, colour_by, point], api_name="embeddings_point", **heavy)
    gr.on([pixel_y.submit, pixel_x.submit], show_pixel, [view_state, colour_by, image_index, pixel_y, pixel_x],
          api_name="embeddings_pixel", **heavy)
    picture_a.select(click_scatter, [view_state, colour_by], api_name="embeddings_click_scatter", **heavy)
    located.select(click_image, [view_state, colour_by, image_index], api_name="embeddings_click_image", **heavy)
    colour_by.input(show_point, [view_state, colour_by, point], api_name="embeddings_colour", **heavy)
    return tab
