"""The lab's start-up: Gradio imported without its type-stub writer, the UMAP warm-up held back until the first
page is drawn, and the first page drawn once (by the first tab's select event, not again on load)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace

from lab_helpers import write_checkpoint

from app import main as app_main
from app.main import build_ui
from app.samples import UPLOAD


def test_gradio_is_imported_without_writing_type_stubs():
    """Importing the lab first turns off the step of Gradio's component metaclass that re-parses each component's
    source and writes a .pyi beside it (half of `import gradio`)."""
    code = ("import sys, app, gradio, gradio.component_meta as meta, gradio.blocks_events as events, "
            "app.gradio_import as g; print(meta.create_or_modify_pyi is g._no_stub, "
            "events.create_or_modify_pyi is g._no_stub, any(isinstance(f, g._WithoutStubs) for f in sys.meta_path))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "True True False"  # both writers off; the finder gone after


def _warm_up_times(monkeypatch, last_view, first_view_s, quiet_s):
    compiled = threading.Event()
    monkeypatch.setattr(app_main.embeddings, "warm_up_umap", compiled.set)
    lab = SimpleNamespace(default_model=None, last_view=last_view, warm_ups=[])
    t0 = time.monotonic()
    thread = app_main.warm_up_in_background(lab, UPLOAD, first_view_s=first_view_s, quiet_s=quiet_s)
    return lab, compiled, t0, thread


def test_the_umap_warm_up_waits_for_the_first_page_and_a_quiet_moment(monkeypatch):
    # no page opened: the compile starts after `first_view_s`
    _, compiled, t0, thread = _warm_up_times(monkeypatch, None, first_view_s=0.4, quiet_s=0.2)
    assert compiled.wait(10) and time.monotonic() - t0 >= 0.4
    thread.join(5)
    # a page being drawn: the compile starts `quiet_s` after the latest view request, not before
    lab, compiled, t0, thread = _warm_up_times(monkeypatch, time.monotonic(), first_view_s=30, quiet_s=2.0)
    lab.last_view = latest = time.monotonic()  # another view, well within the quiet time of the first
    assert compiled.wait(20) and time.monotonic() - latest >= 2.0
    thread.join(5)


def test_the_warm_up_prepares_the_first_thumbnails_before_the_umap_compile(monkeypatch, tmp_path):
    write_checkpoint(tmp_path / "toy-a")
    demo = build_ui([tmp_path / "toy-a"], warm_up_umap=False)
    lab = demo.lab
    assert lab.warm_ups
    order = []
    monkeypatch.setattr(app_main.embeddings, "warm_up_umap", lambda: order.append("umap"))
    lab.warm_ups.append(lambda: order.append("prepared"))
    app_main.warm_up_in_background(lab, lab.samples.names()[0], first_view_s=0.1, quiet_s=0.1).join(60)
    assert order == ["prepared", "umap"]
    thumbs = next(fn for fn in demo.fns.values() if fn.api_name == "thumbnails")

    def decoded_again(*args):
        raise AssertionError("the first page's thumbnails were not prepared")

    monkeypatch.setattr(lab.samples, "load", decoded_again)
    assert thumbs.fn(lab.samples.set_labels()[0])  # served from what the warm-up wrote


def test_a_view_marks_the_lab_in_use_as_it_starts_and_ends_and_the_warm_ups_pass_does_not(tmp_path):
    write_checkpoint(tmp_path / "toy-a")
    demo = build_ui([tmp_path / "toy-a"], warm_up_umap=False)
    lab = demo.lab
    sample = lab.samples.names()[0]
    lab.analyse("toy-a", sample, None, None)
    assert lab.last_view is None
    before = time.monotonic()
    lab.context("toy-a", sample, None, None)
    assert lab.last_view is not None and lab.last_view >= before
    shown = next(fn for fn in demo.fns.values() if fn.api_name == "intervene_view_shown")
    started = lab.last_view
    lab.context = lambda *args: (_ for _ in ()).throw(ValueError("refused"))  # a view that fails at once
    shown.fn("toy-a", sample, None, None, None)
    assert lab.last_view > started  # set as the view returned, though its forward pass never started


def test_the_first_page_is_drawn_by_the_first_tabs_select_event_only(tmp_path):
    """Gradio fires the first tab's select event when the tabs appear; a view on the load event drew it twice."""
    write_checkpoint(tmp_path / "toy-a")
    demo = build_ui([tmp_path / "toy-a"], warm_up_umap=False)
    on_load = [fn for fn in demo.fns.values() if any(t[1] == "load" for t in fn.targets)]
    assert on_load and not any(id(o) in {id(p.view["outputs"][0]) for p in demo.lab.pages if p.view}
                               for fn in on_load for o in fn.outputs)
    first = demo.lab.pages[0]
    assert first.label == "Predict" and any(fn.api_name == "predict_view_shown" for fn in demo.fns.values())


def test_the_tab_bar_holds_tabs_only(tmp_path):
    """A component created between two tabs (directly in gr.Tabs) made Gradio's page list the next tab twice in the
    tab bar once it was opened: every child of the page's tab bar must be a tab."""
    import gradio as gr

    write_checkpoint(tmp_path / "toy-a")
    demo = build_ui([tmp_path / "toy-a"], runs_dir=tmp_path / "runs", warm_up_umap=False)
    bars = [block for block in demo.blocks.values() if isinstance(block, gr.Tabs)]
    assert bars
    for bar in bars:
        children = [type(child).__name__ for child in bar.children]
        assert all(isinstance(child, gr.Tab) for child in bar.children), children
    assert [child.label for child in bars[0].children][-2:] == ["Learn", "Train"]
