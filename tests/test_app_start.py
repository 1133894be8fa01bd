"""The lab's start-up: the first page prepared before Gradio is imported, Gradio imported without its type-stub
writer, the UMAP warm-up held back until the first page is drawn, and the first page drawn once (by the first tab's
select event, not again on load)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace

from lab_helpers import write_checkpoint

from app import main as app_main
from app import state as app_state
from app.first_page import prepare_first_page
from app.main import build_ui
from app.samples import MAX_THUMBS, THUMB_HEIGHT, Samples


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
    lab = SimpleNamespace(last_view=last_view)
    t0 = time.monotonic()
    thread = app_main.warm_up_in_background(lab, first_view_s=first_view_s, quiet_s=quiet_s)
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


def test_contextrast_app_prepares_the_first_page_before_importing_gradio():
    """`contextrast app` starts the head start (model loaded and run on the first sample, thumbnails decoded) before
    `import gradio`: its thread runs on the core the import leaves idle."""
    code = """
import argparse, sys, types
import app.first_page as first_page
from contextrast.commands import app as command
seen = {}
start = first_page.start
first_page.start = lambda args: (seen.update(gradio_before='gradio' in sys.modules), start(args))[1]
served = types.ModuleType('app.main')  # what launch gets, without serving
served.launch = lambda args, first_page: seen.update(page=first_page)
sys.modules['app.main'] = served
parser = argparse.ArgumentParser()
command.add_arguments(parser)
command.run(parser.parse_args(['--no-worker', '--checkpoints-dir', 'none-here']))
print(seen['gradio_before'], seen['page'].sample.startswith('toy/'))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False True"
    assert "terminate" not in out.stderr  # the process waited for the thread instead of cutting it off in a torch op


def test_the_first_page_is_prepared_in_the_background(monkeypatch, tmp_path):
    """The head start leaves the first page's forward pass in the run cache and the first set's thumbnails decoded:
    the page's own requests decode and run nothing again."""
    write_checkpoint(tmp_path / "toy-a")
    first = prepare_first_page([tmp_path / "toy-a"])
    first.thread.join(60)
    assert first.model == "toy-a" and first.sample == first.samples.names()[0] and first.rgb is not None
    demo = build_ui([tmp_path / "toy-a"], warm_up_umap=False, first_page=first)
    lab = demo.lab
    assert lab.store is first.store and lab.default_model == "toy-a"

    def decoded_again(*args):
        raise AssertionError("the first page was not prepared")

    monkeypatch.setattr(lab.samples, "_picture", decoded_again)
    monkeypatch.setattr(app_state, "run_model", decoded_again)
    thumbs = next(fn for fn in demo.fns.values() if fn.api_name == "thumbnails")
    assert len(thumbs.fn(lab.samples.set_labels()[0])) == min(MAX_THUMBS, len(lab.samples.names_in_set(None)))
    lab.context("toy-a", first.sample, None, None)  # the Predict view's forward pass: from the cache


def test_thumbnails_are_decoded_once_when_asked_twice_at_once(monkeypatch, tmp_path):
    """The page's load event may ask for the thumbnails while the head start is still decoding them: it waits for
    them instead of decoding every picture a second time."""
    samples = Samples(None, "toy")
    calls = []
    real = samples._picture
    monkeypatch.setattr(samples, "_picture", lambda name: (calls.append(name), time.sleep(0.01), real(name))[2])
    threads = [threading.Thread(target=samples.thumbnails, args=(None,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    names = samples.names_in_set(None)[:MAX_THUMBS]
    assert sorted(calls) == sorted(names)
    assert all(picture.shape[0] == THUMB_HEIGHT for _, picture in samples.thumbnails(None))


def test_a_view_marks_the_lab_in_use_as_it_starts_and_ends_and_the_head_start_does_not(tmp_path):
    write_checkpoint(tmp_path / "toy-a")
    demo = build_ui([tmp_path / "toy-a"], warm_up_umap=False)
    lab = demo.lab
    sample = lab.samples.names()[0]
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


def test_the_thumbnails_load_once_the_first_prediction_is_drawn(tmp_path):
    """The thumbnails' page load waits in the browser for the Predict view's text (at most a few seconds): sixty
    pictures arriving with the first prediction held it up."""
    write_checkpoint(tmp_path / "toy-a")
    demo = build_ui([tmp_path / "toy-a"], warm_up_umap=False)
    gallery = next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "sample-thumbnails")
    loads = [fn for fn in demo.fns.values() if any(t[1] == "load" for t in fn.targets)]
    thumbnails = [fn for fn in loads if gallery in fn.outputs]
    assert len(thumbnails) == 1 and demo.lab.first_view_id == "predict-info"
    assert "'predict-info'" in thumbnails[0].js and "inputs.length === 1 ? inputs[0]" in thumbnails[0].js
    assert all(fn.js is None for fn in loads if fn not in thumbnails)  # the other loads do not wait


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
