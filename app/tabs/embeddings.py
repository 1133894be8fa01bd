"""Embeddings tab: PCA (at once) then UMAP of a class-balanced sample of one projection head's pixel
embeddings, for one image or several images of a split, one or two checkpoints on the same pixels.
Click a dot to see its pixel, or draw a box (two clicks) or a lasso (clicks around a group) to light its
pixels up on the image; click the image to
find a pixel's dot; the class filter hides classes from the scatter."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

import gradio as gr
import numpy as np

from app.display import Picture, enlarge, to_source
from app.inputs import resolve_input
from app.lab import Lab, message_box, notices_md, status, try_this
from app.state import LRU, digest
from contextrast.analysis import cards
from contextrast.analysis import embeddings as emb

NO_MODEL = "(none)"
THIS_IMAGE = "this image"
SPLIT_IMAGES = "first images of the sample's split"
PICK, BOX, LASSO = "pick a dot", "box: click two corners", "lasso: click around, end on the first corner"
CLOSE_PX = 12.0  # a lasso click this close to its first corner closes it
MAX_CORNERS = 64
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
    headline: str = ""
    selection: np.ndarray | None = None  # points of the last box or lasso
    corners: tuple[tuple[float, float], ...] = ()  # a box's first corner or a lasso's corners, waiting for more


def render(view: EmbeddingView, colour_by: str, point: int | None, note: str, shown: list[str] | None) -> list[Any]:
    """[info, picture A, picture B, located pixel(s), point, image, y, x, view]."""
    ids = None if shown is None else [view.classes.index(c) for c in shown if c in view.classes]
    pictures = []
    for sample, proj, model in zip(view.samples, view.projections, view.models):
        img, _ = emb.scatter_image(sample, proj, colour_by, view.palette, highlight=point, classes=view.classes,
                                   shown=ids, selected=view.selection,
                                   title=f"{proj.method} · {model} · {emb.LAYER_NAMES[sample.layer]}")
        pictures.append(img)
    two = len(view.samples) > 1
    a = view.samples[0]
    point = 0 if point is None else int(point)
    i, y, x = emb.pixel_of_point(a, point)
    if view.selection is not None and len(view.selection):
        located = emb.light_up(view.rgbs[i], a, view.selection, i)
        where = f"{len(view.selection)} dots selected; their pixels on **{view.names[i]}** are lit up."
    else:
        located = emb.locate_pixel(view.rgbs[i], y, x, a.grids[i])
        preds = " / ".join(f"{m}: {emb.class_name(view.classes, int(s.prediction[point]))}"
                           for m, s in zip(view.models, view.samples))
        where = (f"Point {point} → **{view.names[i]}**, pixel x={x}, y={y} (cell {int(a.gy[point])}, "
                 f"{int(a.gx[point])} of the {a.grids[i][1]}×{a.grids[i][0]} grid); truth: "
                 f"{emb.class_name(view.classes, int(a.truth[point]))}; predicted {preds}.")
    info = status(notices_md(view.notices), view.headline, note, where)
    return [info, pictures[0], Picture(pictures[1] if two else None, visible=two), enlarge(located), point, i, y, x,
            view]


def _colour(view: EmbeddingView, colour: str | None) -> str:
    return colour if colour in emb.COLOUR_BY and (colour not in ("ground truth", "correct / wrong") or
                                                  view.samples[0].balanced_by == "ground truth") else "prediction"


def _images(lab: Lab, ctx: Any, sample: str | None, source: str, count: int
            ) -> tuple[list[str], list[np.ndarray], list[np.ndarray | None], list[str]]:
    """(names, rgbs, labels, notices) of the request's images: the current one, or the first `count` of its set."""
    if source == THIS_IMAGE:
        return [ctx.input.name], [ctx.input.rgb], [ctx.input.labels], list(ctx.input.notices)
    if source != SPLIT_IMAGES:
        raise ValueError(f"pixels come from {THIS_IMAGE!r} or {SPLIT_IMAGES!r}; got {source!r}")
    if count is None or not 1 <= int(count) <= MAX_IMAGES:
        raise ValueError(f"number of images must be 1..{MAX_IMAGES}; got {count}")
    chosen = lab.samples.names_in_set(lab.samples.set_of(sample))[: int(count)]
    if not chosen:
        raise ValueError("no sample split is available: start the app with the toy set or --data SPEC")
    inputs = [resolve_input(lab.samples, ctx.loaded.card, n, None, None, lab.max_side) for n in chosen]
    notices = list(dict.fromkeys(m for inp in inputs for m in inp.notices))
    return chosen, [inp.rgb for inp in inputs], [inp.labels for inp in inputs], notices


def build_embeddings(lab: Lab) -> dict[str, Any]:
    class_names = lab.default_classes()
    with lab.page("Embeddings"):
        try_this("press *Project embeddings*, switch the click mode to *box* and frame a cluster: its pixels light up "
                 "on the image; untick a class to see what lies under it.")
        gr.Markdown("Each dot is one pixel's embedding from a projection head (METHOD.md §2), flattened to 2-D: "
                    "**PCA** appears at once, **UMAP** follows. Pixels are sampled so every class gets about as many "
                    "dots. **Click a dot** to see its pixel; **click the image** below to find the pixel's dot. Stars "
                    "are the loss's class anchors â.")
        with gr.Row():
            layer = gr.Radio(list(emb.LAYER_NAMES), value=emb.LAYER_NAMES[1], type="index",
                             label="Layer (projection head)")
            points = gr.Slider(emb.MIN_POINTS, emb.MAX_POINTS, value=1000, step=100,
                               label="Points (class-balanced sample)", elem_id="embeddings-points")
            seed = gr.Number(0, precision=0, label="Sample seed")
        with gr.Row():
            source = gr.Radio([THIS_IMAGE, SPLIT_IMAGES], value=THIS_IMAGE, label="Pixels from")
            count = gr.Slider(1, MAX_IMAGES, value=4, step=1, label="Images of the split", elem_id="embeddings-count")
            colour_by = gr.Dropdown(list(emb.COLOUR_BY), value=emb.COLOUR_BY[0], label="Colour by")
            other = gr.Dropdown([NO_MODEL, *cards.comparable(lab.store.cards, lab.default_model)], value=NO_MODEL,
                                label="Second checkpoint, same pixels", info="only checkpoints with the same classes")
        with gr.Row():
            shown = gr.CheckboxGroup(class_names, value=class_names, label="Classes shown (by ground truth)")
            mode = gr.Radio([PICK, BOX, LASSO], value=PICK, label="A click on the scatter")
        go_button = gr.Button("Project embeddings", variant="primary")
        message = message_box()
        info = gr.Markdown(elem_id="embeddings-info")
        with gr.Row():
            picture_a = Picture(show_label=False, interactive=False, format="png", height=500,
                                 elem_id="embeddings-scatter")
            picture_b = Picture(show_label=False, interactive=False, format="png", height=500, visible=False)
        with gr.Row():
            with gr.Column(scale=2):
                gr.Markdown("**Where the point's pixel is** (click to pick a pixel)")
                located = Picture(show_label=False, interactive=False, format="png", height=300)
            with gr.Column(scale=1):
                point = gr.Number(label="Point", precision=0)
                image_index = gr.Number(label="Image index", precision=0, value=0)
                pixel_y = gr.Number(label="Pixel y", precision=0)
                pixel_x = gr.Number(label="Pixel x", precision=0)
        view_state = gr.State(None)
    outputs = [info, picture_a, picture_b, located, point, image_index, pixel_y, pixel_x, view_state]
    cache = LRU(6)

    def project(model, sample, image, label, layer_index, n, seed_value, source_value, count_value, colour, second,
                classes_shown, progress=gr.Progress()):  # noqa: B008 - how Gradio asks for a progress bar
        """Generator: the PCA view first, then the UMAP view (each cached per checkpoint, images, layer, seed)."""
        n = emb.check_sample_size(n)
        if layer_index is None or not 0 <= int(layer_index) < len(emb.LAYER_NAMES):
            raise ValueError(f"layer must be one of {', '.join(emb.LAYER_NAMES)} (index 0..3); got {layer_index!r}")
        if colour not in emb.COLOUR_BY:
            raise ValueError(f"colour by must be one of {', '.join(emb.COLOUR_BY)}; got {colour!r}")
        layer_index, seed_value = int(layer_index), int(seed_value or 0)
        ctx = lab.context(model, sample, image, label)
        models = [ctx.loaded.name] + ([second] if second not in (None, "", NO_MODEL) else [])
        loaded = [ctx.loaded] + [lab.store.get(m) for m in models[1:]]
        for lm in loaded:
            cards.check_comparable(ctx.loaded.name, ctx.classes, lm.name, lm.card.classes)
            untrained = cards.untrained_head_message(lm.name, lm.card, layer_index, "embeddings")
            if untrained:
                raise ValueError(untrained)
        progress(0.0, desc="reading the images")
        names, rgbs, labels, notices = _images(lab, ctx, sample, source_value, count_value)
        key = (tuple(models), tuple(digest(r) for r in rgbs), tuple(digest(y) for y in labels), layer_index, n,
               seed_value)

        def make_samples() -> EmbeddingView:
            samples = emb.sample_checkpoints(
                lambda j, i: lab.store.run(models[j], rgbs[i])[1], len(models), labels, layer_index, n, seed_value,
                len(ctx.classes), [cards.training_loss(lm.card) for lm in loaded],
                progress=lambda d, t: progress((d, t), desc="forward passes"))
            head = emb.sample_summary(samples[0], len(rgbs), emb.LAYER_NAMES[layer_index], n)
            return EmbeddingView(names, rgbs, ctx.classes, ctx.palette, models, samples, notices=list(notices),
                                 headline=head)

        view: EmbeddingView = cache.get_or_make(key, make_samples)
        if _colour(view, colour) != colour:
            view = replace(view, notices=[*view.notices, "No ground truth for these pixels: coloured by prediction "
                                                         "instead (add a label map to see the truth)."])
        pca = replace(view, projections=[cache.get_or_make(key + ("PCA", i), lambda s=s: emb.pca_project(s))
                                         for i, s in enumerate(view.samples)])
        waiting = "" if emb.umap_is_warm() else " (UMAP's numba kernels are still compiling after start-up)"
        yield render(pca, _colour(view, colour), 0, f"**PCA** shown · UMAP is computing…{waiting}", classes_shown)
        umaps = []
        for i, s in enumerate(view.samples):
            progress(0.0, desc=f"UMAP of {len(s)} points ({view.models[i]})")
            umaps.append(cache.get_or_make(key + ("UMAP", i), lambda s=s: emb.umap_project(s, seed=seed_value,
                                                                                            show_epochs=True)))
        seconds = " + ".join(f"{p.seconds:.1f}" for p in umaps)
        yield render(replace(view, projections=umaps), _colour(view, colour), 0, f"**UMAP** · {seconds} s",
                     classes_shown)

    def _current(view: EmbeddingView | None) -> EmbeddingView:
        if view is None:
            raise ValueError("project the embeddings first (button “Project embeddings”)")
        return view

    def show_point(view, colour, point_value, classes_shown):
        view = _current(view)
        if point_value is None or not 0 <= int(point_value) < len(view.samples[0]):
            raise ValueError(f"point must be 0..{len(view.samples[0]) - 1}; got {point_value!r}")
        view = replace(view, selection=None, corners=())
        return render(view, _colour(view, colour), int(point_value), f"Picked point {int(point_value)}.", classes_shown)

    def show_pixel(view, colour, image_value, y, x, classes_shown):
        view = _current(view)
        if image_value is None or not 0 <= int(image_value) < len(view.rgbs):
            raise ValueError(f"image index must be 0..{len(view.rgbs) - 1}; got {image_value!r}")
        if y is None or x is None:
            raise ValueError("give both pixel y and pixel x")
        hit = emb.point_at_pixel(view.samples[0], int(image_value), float(y), float(x))
        note = ("" if hit.exact else f"The cell of pixel x={int(x)}, y={int(y)} was not sampled; showing the nearest "
                                     "sampled pixel of that image.")
        view = replace(view, selection=None, corners=())
        return render(view, _colour(view, colour), hit.point,
                      status(note, f"Pixel x={int(x)}, y={int(y)} of {view.names[int(image_value)]} → point "
                                   f"{hit.point}."), classes_shown)

    def click_scatter(view, colour, click_mode, classes_shown, evt: gr.SelectData):
        view = _current(view)
        u, v = (float(t) for t in evt.index[:2])  # image components report [x, y] in the picture's own pixels
        colour = _colour(view, colour)
        ids = [view.classes.index(c) for c in (classes_shown or []) if c in view.classes]
        picture, canvas = emb.scatter_image(view.samples[0], view.projections[0], colour, view.palette,
                                            classes=view.classes, shown=ids, selected=view.selection)
        if click_mode == BOX:
            if not view.corners:
                view = replace(view, corners=((u, v),))
                return [f"First corner at ({u:.0f}, {v:.0f}): click the opposite corner of the box.", *[gr.skip()] * 7,
                        view]
            picked = emb.points_in_box(canvas, view.corners[0], (u, v))
            view = replace(view, corners=(), selection=picked)
            if not len(picked):
                raise ValueError("no dot lies in that box: draw it around some dots (two clicks)")
            return render(view, colour, int(picked[0]), f"Box selection: {len(picked)} dots.", classes_shown)
        if click_mode == LASSO:
            first = view.corners[0] if view.corners else None
            closes = first is not None and len(view.corners) >= 3 and math.dist(first, (u, v)) <= CLOSE_PX
            if not closes:
                if len(view.corners) >= MAX_CORNERS:
                    raise ValueError(f"a lasso has at most {MAX_CORNERS} corners: click its first corner to close it")
                view = replace(view, corners=(*view.corners, (u, v)))
                return [f"Lasso corner {len(view.corners)} at ({u:.0f}, {v:.0f}); "
                        + ("click the first corner (red dot) to close it." if len(view.corners) >= 3
                           else "go on clicking around the dots you want."),
                        emb.draw_lasso(picture, view.corners), *[gr.skip()] * 6, view]
            picked = emb.points_in_polygon(canvas, view.corners)
            view = replace(view, corners=(), selection=picked)
            if not len(picked):
                raise ValueError("no dot lies inside that lasso: draw it around some dots")
            return render(view, colour, int(picked[0]), f"Lasso selection: {len(picked)} dots.", classes_shown)
        picked = emb.pick_point(canvas, u, v)
        if picked is None:
            raise ValueError(f"no dot near ({u:.0f}, {v:.0f}): click closer to a dot (the last picture stays)")
        view = replace(view, selection=None, corners=())
        return render(view, colour, picked, f"Clicked the scatter at ({u:.0f}, {v:.0f}) → point {picked}.",
                      classes_shown)

    def click_image(view, colour, image_value, classes_shown, evt: gr.SelectData):
        view = _current(view)
        if image_value is None or not 0 <= int(image_value) < len(view.rgbs):
            raise ValueError(f"image index must be 0..{len(view.rgbs) - 1}; got {image_value!r}")
        x, y = to_source(evt.index, view.rgbs[int(image_value)].shape)  # the click is in the enlarged picture
        return show_pixel(view, colour, image_value, y, x, classes_shown)

    def redraw(view, colour, point_value, classes_shown):
        view = _current(view)
        return render(view, _colour(view, colour), point_value, "", classes_shown)

    def mark_stale(view, source_value, model):
        """The picked image or model changed: a projection of this image, or of another model, no longer shows
        what the page shows. Clear it (a new UMAP takes seconds, so it waits for the button)."""
        if view is None or (source_value == SPLIT_IMAGES and view.models[0] == model):
            return [gr.skip()] * len(outputs)
        return ["The image or model changed since this projection: press **Project embeddings** to draw it again.",
                None, Picture(None, visible=False), None, None, 0, None, None, None]

    def model_menus(model_name: str | None):
        card = lab.store.cards.get(model_name)
        names = list(card.classes) if card else []
        return (gr.Dropdown(choices=[NO_MODEL, *cards.comparable(lab.store.cards, model_name)], value=NO_MODEL),
                gr.CheckboxGroup(choices=names, value=names))

    lab.on_new_input(mark_stale, [view_state, source, lab.components["model"]], outputs)
    lab.on_model_change(model_menus, [other, shown])
    lab.on(go_button.click, project, [*lab.inputs, layer, points, seed, source, count, colour_by, other, shown],
           outputs, message, api_name="embeddings")
    lab.on(point.submit, show_point, [view_state, colour_by, point, shown], outputs, message,
           api_name="embeddings_point")
    lab.on([pixel_y.submit, pixel_x.submit], show_pixel, [view_state, colour_by, image_index, pixel_y, pixel_x, shown],
           outputs, message, api_name="embeddings_pixel")
    lab.on(picture_a.select, click_scatter, [view_state, colour_by, mode, shown], outputs, message,
           api_name="embeddings_click_scatter")
    lab.on(located.select, click_image, [view_state, colour_by, image_index, shown], outputs, message,
           api_name="embeddings_click_image")
    lab.on([colour_by.input, shown.input], redraw, [view_state, colour_by, point, shown], outputs, message,
           api_name="embeddings_colour", trigger_mode="always_last")
    return dict(outputs=outputs, message=message, cache=cache, fns=dict(project=project, click_scatter=click_scatter,
                                                                         click_image=click_image))
