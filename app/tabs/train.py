"""Train tab: fine-tune a checkpoint in the background (issue 8). The job runs in a worker process
(`contextrast worker`), never in the web server; this tab only submits, polls and steers jobs through
`contextrast.jobs.control`, and draws curves with `contextrast.analysis.training_curves`."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr

from app.lab import Lab, user_errors
from contextrast.analysis.training_curves import training_curves_figure
from contextrast.engine.card import read_card
from contextrast.jobs import control
from contextrast.jobs.control import live_workers
from contextrast.losses import LOSSES

SCRATCH = "(from scratch)"
TABLE_HEADERS = ["job", "state", "progress", "iteration", "ETA", "best val mIoU", "loss", "data", "name"]
POLL_S = 2.0


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(seconds)
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def job_rows(records: list[dict[str, Any]]) -> list[list[Any]]:
    rows = []
    for r in records:
        p = r["params"]
        miou = "" if r.get("best_miou") is None else f"{100 * r['best_miou']:.2f} %"
        rows.append([r["id"], r["state"], f"{100 * (r.get('progress') or 0):.0f} %",
                     f"{r.get('iteration', 0)} / {r.get('total', 0)}",
                     _duration(r.get("eta_s")) if r["state"] == "running" else "", miou, p.get("loss"),
                     p.get("data"), p.get("name") or ""])
    return rows


def progress_markdown(r: dict[str, Any], workers: list[str]) -> str:
    done = r.get("progress") or 0.0
    bar = "█" * int(round(20 * done)) + "░" * (20 - int(round(20 * done)))
    lines = [f"**{r['id']}** — {r['state']} · `{bar}` {100 * done:.0f} % · iteration {r.get('iteration', 0)} / "
             f"{r.get('total', 0)}"]
    if r["state"] == "running":
        speed = r.get("images_per_s")
        lines.append(f"ETA {_duration(r.get('eta_s')) or '…'}" + (f" · {speed:.1f} images/s" if speed else "")
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

    def register_checkpoints(self, lab: Lab) -> bool:
        """Offer finished job checkpoints in the lab's model list (by their card name). → any new?"""
        new = False
        for path in control.list_job_checkpoints(self.runs_dir):
            if str(path) in self.known:
                continue
            self.known.add(str(path))
            try:
                card = read_card(path)
            except (ValueError, FileNotFoundError):
                continue
            name = card.name if card.name not in lab.store.paths else f"{path.parent.name}/{path.name}"
            if path.resolve() in {p.resolve() for p in lab.store.paths.values()}:
                continue
            lab.store.paths[name] = path
            lab.store.cards[name] = card
            new = True
        return new


def build_train(lab: Lab, runs_dir: str | Path = "runs") -> TrainTab:
    """The Train tab's components, inside the current gr.Blocks context; `runs_dir` as given to the worker."""
    runs_dir = Path(runs_dir)
    tab = TrainTab(runs_dir, {}, set())
    tab.register_checkpoints(lab)
    bases = [SCRATCH, *(str(p) for p in lab.store.paths.values())]
    gr.Markdown("Fine-tune a model in the background: the job runs in a separate worker process and survives a "
                "reload of this page. **Stop & save** finishes the iteration and writes a checkpoint; **Cancel** "
                "stops at once without one; an interrupted job **Resume**s from its last checkpoint.")
    with gr.Row():
        base = gr.Dropdown(bases, value=SCRATCH, label="Base checkpoint", allow_custom_value=True,
                           info="a checkpoint directory; its architecture is kept, the classifier is re-initialised "
                                "when the class count differs")
        data = gr.Textbox("toy", label="Dataset spec", info="toy, toy:n=64,size=96x128, camvid:/path/to/camvid, …")
        loss = gr.Dropdown(LOSSES.names(), value="contextrast", label="Loss")
    with gr.Row():
        iterations = gr.Number(1000, precision=0, label="Iterations")
        lr = gr.Number(0.01, label="Learning rate")
        batch = gr.Number(8, precision=0, label="Batch")
        crop_h = gr.Number(256, precision=0, label="Crop height")
        crop_w = gr.Number(256, precision=0, label="Crop width")
        device = gr.Radio(["auto", "cpu", "cuda"], value="auto", label="Device")
        gpus = gr.Number(1, precision=0, label="GPUs", info="> 1: torchrun on the worker's machine")
    with gr.Accordion("More settings", open=False):
        name = gr.Textbox(label="Job name (for the table)")
        overrides = gr.Textbox(label="Config overrides, one section.key=value per line", lines=3,
                               placeholder="train.val_interval=50\nloss.alpha=0.2")
    start = gr.Button("Start", variant="primary")
    submitted = gr.Markdown()
    table = gr.Dataframe(headers=TABLE_HEADERS, value=[], interactive=False, label="Jobs (newest first)")
    with gr.Row():
        job = gr.Dropdown([], label="Job", allow_custom_value=True, scale=3)
        stop = gr.Button("Stop & save", scale=1)
        cancel = gr.Button("Cancel", variant="stop", scale=1)
        resume = gr.Button("Resume", scale=1)
    progress = gr.Markdown()
    curves = gr.Plot(label="Loss and validation mIoU")
    log = gr.Textbox(label="Log (tail)", lines=12, max_lines=12, autoscroll=True, interactive=False)
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
            return [job_rows(records), menu, "No jobs yet.", training_curves_figure([]), "", models]
        record = next(r for r in records if r["id"] == job_id)
        workers = live_workers(runs_dir) if record["state"] == "queued" else []
        figure = training_curves_figure(control.job_metrics(job_id, runs_dir), title=record["params"].get("name") or job_id)
        return [job_rows(records), menu, lab.paths.redact(progress_markdown(record, workers)), figure,
                lab.paths.redact(control.job_log_tail(job_id, runs_dir, 40)), models]

    view_outputs = [table, job, progress, curves, log] + ([model_menu] if model_menu is not None else [])

    def trim(values: list[Any]) -> list[Any]:
        return values if model_menu is not None else values[:-1]

    @user_errors
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

    @user_errors
    def train_poll(job_id):
        return trim(view(job_id))

    def action(fn):
        @user_errors
        def run(job_id):
            if not job_id:
                raise ValueError("pick a job first")
            record = fn(job_id, runs_dir)
            return [f"{record['id']}: {record['message']}"] + trim(view(job_id))

        return run

    settings = [base, data, loss, iterations, lr, batch, crop_h, crop_w, device, gpus, name, overrides]
    limits = dict(concurrency_limit=4, concurrency_id="train")
    start.click(train_submit, settings, [submitted] + view_outputs, api_name="train_submit", **limits)
    timer.tick(train_poll, job, view_outputs, api_name="train_poll", show_progress="hidden", **limits)
    job.input(train_poll, job, view_outputs, api_name="train_show", **limits)
    for button, fn, api in ((stop, control.stop_job, "train_stop"), (cancel, control.cancel_job, "train_cancel"),
                            (resume, control.resume_job, "train_resume")):
        button.click(action(fn), job, [submitted] + view_outputs, api_name=api, **limits)
    tab.handlers.update(submit=train_submit, poll=train_poll)
    return tab


def _int(value: Any, what: str) -> int:
    if value is None or float(value) != int(float(value)):
        raise ValueError(f"{what} must be a whole number; got {value!r}")
    return int(float(value))
