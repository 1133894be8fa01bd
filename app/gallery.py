"""The sample thumbnails above the tabs: one gallery per sample set, a click opens that sample in every tab."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from app.display import png_file, still_cached
from app.lab import Lab
from app.samples import MAX_THUMBS


def build_gallery(lab: Lab) -> list[Any]:
    """The gallery and its set picker; returns the events that open a sample (for `app.main.wire_inputs`)."""
    samples = lab.samples
    sets = samples.set_labels()
    cache: dict[str | None, list[tuple[Path, str]]] = {}

    def thumbs(set_label: str | None) -> list[tuple[Path, str]]:
        """The set's thumbnails as PNG files, encoded once: every page load shows them, and encoding sixty
        pictures again (Gradio's gallery encodes arrays at each call) was a second of the first page's time.
        Written again when the app's cache clean-up has removed them. The first set's pictures are decoded
        before the page is served (`app.first_page`)."""
        if set_label not in cache or not still_cached(path for path, _ in cache[set_label]):
            cache[set_label] = [(png_file(picture, pictures.GRADIO_CACHE), n.rsplit("/", 1)[-1])
                                for n, picture in samples.thumbnails(set_label)]
        return cache[set_label]

    with gr.Accordion("Sample thumbnails", open=bool(sets)):
        with gr.Row():
            which = gr.Radio(sets, value=sets[0] if sets else None, label="Samples from", scale=1)
            gr.Markdown("Click a thumbnail to open it in every tab. The **Images** tab ranks a whole split by how "
                        "well the model does on each image.")
        pictures = gr.Gallery(label="Samples", columns=10, height=190, allow_preview=False, show_label=False,
                              object_fit="contain", elem_id="sample-thumbnails")

    def open_thumbnail(set_label: str | None, evt: gr.SelectData):
        names = samples.names_in_set(set_label)[:MAX_THUMBS]
        if not 0 <= evt.index < len(names):
            return gr.skip(), gr.skip()
        return names[evt.index], samples.load(names[evt.index])[0]

    which.input(thumbs, which, pictures, api_name="thumbnails", concurrency_limit=4)
    lab.on_page_load(lambda set_label: thumbs(set_label), [which], [pictures], after_first_view=True)
    return [pictures.select(open_thumbnail, which, [lab.components["sample"], lab.components["image"]],
                            api_name="open_thumbnail", concurrency_limit=4)]
