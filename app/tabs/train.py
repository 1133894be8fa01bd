"""Train tab: fine-tune a checkpoint in the background. The job runs in a worker process (`contextrast worker`),
never in the web server; this tab only submits, polls and steers jobs through `contextrast.jobs.control`, and
draws curves with `contextrast.analysis.training_curves`. Finished jobs' checkpoints join the Model menu, also
after a page reload."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from app.lab import Lab, message_box, try_this
from contextrast.analysis.cards import same_classes
from contextrast.analysis.training_curves import steady_eta, training_curves_figure
from contextrast.data import build_dataset
from contextrast.engine.card import read_card
from contextrast.jobs import control
from contextrast.jobs.control import live_workers
from contextrast.losses import LOSSES

SCRATCH = "(from scratch)"
TABLE_HEADERS = ["job", "state", "progress", "iteration", "ETA", "best val mIoU", "loss", "data", "name"]
POLL_S = 2.0
LOG_LINES = 16  # the log box shows exactly the tail, so its end is always in view
DEFAULT_ITERATIONS = 200  # a short fine-tune: minutes on a CPU
MAX_CROP = 256


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


class EtaWatch:
    """ETA of running jobs from the mean rate since this server first saw each of them (`steady_eta`)."""

    def __init__(self) -> None:
        self.first: dict[str, tuple[float, int]] = {}

    def __call__(self, r: dict[str, Any]) -> float | None:
        now = (time.time(), int(r.get("iteration") or 0))
        first = self.first.setdefault(f"{r['id']}:{r.get('started')}", now)
        return steady_eta(first, now, int(r.get("total") or 0)) or r.get("eta_s")


def job_rows(records: list[dict[str, Any]], eta: EtaWatch | None = None) -> list[list[Any]]:
    eta = eta or EtaWatch()
    rows = []
    for r in records:
        p = r["params"]
        miou = "" if r.get("best_miou") is None else f"{100 * r['best_miou']:.2f} %"
        rows.append([r["id"], r["state"], f"{100 * (r.get('progress') or 0):.0f} %",
                     f"{r.get('iteration', 0)} / {r.get('total', 0)}",
                     _duration(eta(r)) if r["state"] == "running" else "", miou, p.get("loss"),
                     p.get("data"), p.get("name") or ""])
    return rows


def progress_markdown(r: dict[str, Any], workers: list[str], eta: EtaWatch | None = None) -> str:
    done = r.get("progress") or 0.0
    bar = "█" * int(round(20 * done)) + "░" * (20 - int(round(20 * done)))
    lines = [f"**{r['id']}** — {r['state']} · `{bar}` {100 * done:.0f} % · iteration {r.get('iteration', 0)} / "
             f"{r.get('total', 0)}"]
    if r["state"] == "running":
        speed = r.get("images_per_s")
        lines.append(f"ETA {_duration((eta or EtaWatch())(r)) or '…'}" + (f" · {speed:.1f} images/s" if speed else "")
                     + f" · worker {r.get('worker')}")
    if r.get("last_val"):
        lines.append(f"last validation (iteration {r['last_val']['iter']}): mIoU "
                     f"{100 * (r['last_val'].get('miou') or 0):.2f} %")
    lines.append(f"_{r.get('message') or ''}_")
    if r.get("checkpoint"):
        lines.append(f"checkpoint: `{r['checkpoint']}` (listed in the Model menu)")
    if r.get("error"):
        lines.append(f"> ⚠️ {r['error'].splitlines()[0]}")
    if r["state"] == "queued" and not workers:
        lines.append("> ⚠️ No worker is running, so the job waits: start one with "
                     "`contextrast worker --runs-dir RUNS` (or run `contextrast app` without `--no-worker`).")
    return "\n\n".join(lines)


@dataclass
class TrainTab:
    runs_dir: Path
    components: dict[str, Any]
    known: set[str]  # job checkpoints already offered in the Model menu
    handlers: dict[str, Any] = field(default_factory=dict)  # the event functions, for tests
    eta: EtaWatch = field(default_factory=EtaWatch)

    def register_checkpoints(self, lab: Lab) -> bool:
        """Offer finished job checkpoints in the lab's model list (by their card name). → any new?"""
        new = False
        for path in control.list_job_checkpoints(self.runs_dir):
            if str(path) in self.known:
                continue
            self.known.add(str(path))
            try:
                new |= lab.store.add(path, read_card(path).name) is not None
            except (ValueError, FileNotFoundError):
                continue
        return new


def form_defaults(lab: Lab, data_spec: str) -> tuple[str, list[int]]:
    """The base checkpoint (the first one that predicts the dataset's classes, else from scratch) and a crop that
    fits its images (at most 256 a side, a multiple of 32), for a dataset spec."""
    dataset = build_dataset(data_spec, "train")
    if not len(dataset):
        raise ValueError(f"{data_spec!r} has no training images")
    h, w = dataset.load(0)[0].shape[:2]
    crop = [max(32, min(MAX_CROP, side) // 32 * 32) for side in (h, w)]
    base = next((str(p) for n, p in lab.store.paths.items()
                 if same_classes(lab.store.cards[n].classes, dataset.info.classes)), SCRATCH)
    return base, crop


def build_train(lab: Lab, runs_dir: str | Path = "runs") -> TrainTab:
    """The Train tab's components, inside the current gr.Blocks context; `runs_dir` as given to the worker."""
    runs_dir = Path(runs_dir)
    tab = TrainTab(runs_dir, {}, set())
    tab.register_checkpoints(lab)
    bases = [SCRATCH, *(str(p) for p in lab.store.paths.values())]
    base_default, crop_default = form_defaults(lab, "toy")
    with lab.page("Train"):
        try_this("press **Start**: the defaults fine-tune the toy checkpoint for a few minutes; the new checkpoint then "
                 "appears in the Model menu.")
        gr.Markdown("Fine-tune a model in the background: the job runs in a separate worker process and survives a "
                    "reload of this page. **Stop & save** finishes the iteration and writes a checkpoint; **Cancel** "
                    "stops at once without one; an interrupted job **Resume**s from its last checkpoint.")
        with gr.Row():
            base = gr.Dropdown(bases, value=base_default, label="Base checkpoint", allow_custom_value=True,
                               info="a checkpoint directory; its architecture is kept, the classifier is re-initialised "
                                    "when the class count differs")
            data = gr.Textbox("toy", label="Dataset spec", info="toy, toy:n=64,size=96x128, camvid:/path/to/camvid, …")
            loss = gr.Dropdown(LOSSES.names(), value="contextrast", label="Loss")
        with gr.Row():
            iterations = gr.Number(DEFAULT_ITERATIONS, precision=0, label="Iterations")
            lr = gr.Number(0.01, label="Learning rate")
            batch = gr.Number(8, precision=0, label="Batch")
            crop_h = gr.Number(crop_default[0], precision=0, label="Crop height")
            crop_w = gr.Number(crop_default[1], precision=0, label="Crop width")
            device = gr.Radio(["auto", "cpu", "cuda"], value="auto", label="Device")
            gpus = gr.Number(1, precision=0, label="GPUs", info="> 1: torchrun on the worker's machine")
        with gr.Accordion("More settings", open=False):
            name = gr.Textbox(label="Job name (for the table)")
            overrides = gr.Textbox(label="Config overrides, one section.key=value per line", lines=3,
                                   placeholder="train.val_interval=50\nloss.alpha=0.2")
        start = gr.Button("Start", variant="primary")
        message = message_box()
        submitted = gr.Markdown(elem_id="train-submitted")
        table = gr.Dataframe(headers=TABLE_HEADERS, value=[], interactive=False, label="Jobs (newest first)")
        with gr.Row():
            job = gr.Dropdown([], label="Job", allow_custom_value=True, scale=3)
            stop = gr.Button("Stop & save", scale=1)
            cancel = gr.Button("Cancel", variant="stop", scale=1)
            resume = gr.Button("Resume", scale=1)
        progress = gr.Markdown()
        curves = gr.Plot(label="Loss and validation mIoU")
        log = gr.Textbox(label=f"Log (the last {LOG_LINES} lines)", lines=LOG_LINES, max_lines=LOG_LINES,
                         autoscroll=True, interactive=False)
        timer = gr.Timer(POLL_S)
    model_menu = lab.components.get("model")
    tab.components.update(base=base, data=data, loss=loss, iterations=iterations, lr=lr, batch=batch, crop_h=crop_h,
                          crop_w=crop_w, device=device, gpus=gpus, name=name, overrides=overrides, start=start,
                          table=table, job=job, stop=stop, cancel=cancel, resume=resume, progress=progress,
                          curves=curves, log=log, timer=timer)

    def view(job_id: str | None) -> list[Any]:
        """Table, job menu, progress text, curves and log tail (and the Model menu when a job just finished)."""
        records = control.list_jobs(runs_dir)
        ids = [r["id"] for r in records]
        job_id = job_id if job_id in ids else (ids[0] if ids else None)
        menu = gr.Dropdown(choices=ids, value=job_id)
        models = gr.skip()
        if tab.register_checkpoints(lab) and model_menu is not None:
            models = gr.Dropdown(choices=lab.store.names())
        if job_id is None:
            return [job_rows(records, tab.eta), menu, "No jobs yet.", training_curves_figure([]), "", models]
        record = next(r for r in records if r["id"] == job_id)
        workers = live_workers(runs_dir) if record["state"] == "queued" else []
        figure = training_curves_figure(control.job_metrics(job_id, runs_dir), title=record["params"].get("name") or job_id)
        return [job_rows(records, tab.eta), menu, lab.paths.redact(progress_markdown(record, workers, tab.eta)), figure,
                lab.paths.redact(control.job_log_tail(job_id, runs_dir, LOG_LINES)), models]

    view_outputs = [table, job, progress, curves, log] + ([model_menu] if model_menu is not None else [])

    def trim(values: list[Any]) -> list[Any]:
        return values if model_menu is not None else values[:-1]

    def train_submit(base_v, data_v, loss_v, iterations_v, lr_v, batch_v, crop_h_v, crop_w_v, device_v, gpus_v,
                     name_v, overrides_v):
        params = {"base_checkpoint": "" if base_v in (None, "", SCRATCH) else str(base_v), "data": data_v or "",
                  "loss": loss_v, "iterations": _int(iterations_v, "iterations"), "lr": float(lr_v or 0),
                  "batch_size": _int(batch_v, "batch"), "crop": [_int(crop_h_v, "crop height"),
                                                                 _int(crop_w_v, "crop width")],
                  "device": device_v, "gpus": _int(gpus_v, "GPUs"), "name": name_v or "",
                  "overrides": [line.strip() for line in (overrides_v or "").splitlines() if line.strip()]}
        record = control.submit_job(params, runs_dir, paths=lab.paths)
        return [f"Submitted job **{record['id']}**."] + trim(view(record["id"]))

    def train_poll(job_id):
        return trim(view(job_id))

    def action(fn):
        def run(job_id):
            if not job_id:
                raise ValueError("pick a job first")
            record = fn(job_id, runs_dir)
            return [f"{record['id']}: {record['message']}"] + trim(view(job_id))

        return run

    def data_defaults(data_v):
        """A new dataset spec: a crop that fits its images and a base checkpoint for its classes."""
        base_v, crop = form_defaults(lab, str(data_v or "").strip())
        return [gr.Dropdown(value=base_v), crop[0], crop[1]]

    def refresh_models():
        """A page (re)load: the Model menu lists every finished job's checkpoint, not only the shipped ones."""
        tab.register_checkpoints(lab)
        return gr.Dropdown(choices=lab.store.names()) if model_menu is not None else gr.skip()

    settings = [base, data, loss, iterations, lr, batch, crop_h, crop_w, device, gpus, name, overrides]
    limits = dict(heavy=False, concurrency_limit=4, concurrency_id="train")
    lab.on(start.click, train_submit, settings, [submitted] + view_outputs, message, api_name="train_submit",
           **limits)
    lab.on(timer.tick, train_poll, [job], view_outputs, message, api_name="train_poll", show_progress="hidden",
           **limits)
    lab.on(job.input, train_poll, [job], view_outputs, message, api_name="train_show", **limits)
    lab.on([data.submit, data.blur], data_defaults, [data], [base, crop_h, crop_w], message, api_name="train_data",
           **limits)
    for button, fn, api in ((stop, control.stop_job, "train_stop"), (cancel, control.cancel_job, "train_cancel"),
                            (resume, control.resume_job, "train_resume")):
        lab.on(button.click, action(fn), [job], [submitted] + view_outputs, message, api_name=api, **limits)
    if model_menu is not None:
        lab.on_page_load(refresh_models, [], [model_menu])
    tab.handlers.update(submit=train_submit, poll=train_poll, refresh_models=refresh_models)
    return tab


def _int(value: Any, what: str) -> int:
    if value is None or float(value) != int(float(value)):
        raise ValueError(f"{what} must be a whole number; got {value!r}")
    return int(float(value))
