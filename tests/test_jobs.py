"""Background fine-tuning jobs — queue, worker, progress, cancel/stop, SIGKILL + resume,
Redis with two workers, refusal of bad parameters at submit."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from lab_helpers import free_port

from contextrast.analysis.training_curves import read_metrics, split_curves, training_curves_figure
from contextrast.jobs import (
    cancel_job,
    get_job,
    job_log_tail,
    job_metrics,
    list_job_checkpoints,
    list_jobs,
    resume_job,
    stop_job,
    submit_job,
)
from contextrast.jobs.control import queue_for
from contextrast.jobs.processes import pid_alive

TINY_OVERRIDES = [
    "model.decoder_channels=16",
    "model.embed_dim=16",
    "train.workers=0",
    "train.log_interval=1",
    "train.val_interval=1000",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}
TIMEOUT = 240  # seconds; generous for a busy 2-core machine


def tiny_job(iterations: int, **extra) -> dict:
    params = {"data": "toy:n=16,size=64x80", "crop": [64, 64], "batch_size": 4, "lr": 0.01, "loss": "ce",
              "iterations": iterations, "device": "cpu", "overrides": list(TINY_OVERRIDES)}
    params.update(extra)
    return params


def start_worker(runs: Path, log_name: str = "worker", env: dict | None = None) -> subprocess.Popen:
    log = open(runs.parent / f"{log_name}.log", "ab")  # noqa: SIM115 - closed with the process
    runs.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([sys.executable, "-m", "contextrast.cli", "worker", "--runs-dir", str(runs)],
                            stdout=log, stderr=subprocess.STDOUT, env=env or ENV)


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_for(predicate, what: str, timeout: float = TIMEOUT, logs: Path | None = None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    detail = ""
    if logs is not None:
        detail = "\n".join(f"--- {p}\n{p.read_text()[-3000:]}" for p in sorted(logs.rglob("*.log")))
    raise AssertionError(f"timed out waiting for {what}\n{detail}")


@pytest.fixture
def runs(tmp_path):
    return tmp_path / "runs"


@pytest.fixture
def worker(runs):
    proc = start_worker(runs)
    yield proc
    stop_worker(proc)


def state_is(job_id: str, runs: Path, *states: str, url: str | None = None):
    r = get_job(job_id, runs, url)
    return r if r["state"] in states else None


def test_job_runs_with_rising_progress_and_gives_a_loadable_checkpoint(runs, worker, capsys):
    from contextrast.cli import main
    from contextrast.engine.checkpoint import load_checkpoint

    job = submit_job(tiny_job(20, name="first"), runs)
    assert job["state"] == "queued" and job["total"] == 20
    seen, etas = [], []
    deadline = time.time() + TIMEOUT
    while time.time() < deadline:
        r = get_job(job["id"], runs)
        seen.append(r["progress"])
        if r["state"] == "running" and r.get("eta_s") is not None:
            etas.append(r["eta_s"])
        if r["state"] not in ("queued", "running"):
            break
        time.sleep(0.1)
    assert r["state"] == "finished", (r, job_log_tail(job["id"], runs))
    assert seen == sorted(seen), "progress went backwards"
    assert len({p for p in seen if 0 < p < 1}) >= 2, f"progress did not rise step by step: {sorted(set(seen))}"
    assert etas, "no ETA while running"
    assert r["progress"] == 1.0 and r["iteration"] == 20 and r["attempts"] == 1
    model, card = load_checkpoint(r["checkpoint"])
    assert card.iteration == 20 and model.num_classes == len(card.classes)
    assert Path(r["checkpoint"]) in list_job_checkpoints(runs)

    losses, miou = split_curves(job_metrics(job["id"], runs))
    assert [it for it, _ in losses["total"]] == list(range(1, 21)) and miou and miou[-1][0] == 20
    fig = training_curves_figure(read_metrics(Path(r["run_dir"]) / "metrics.jsonl"))
    assert {t.name for t in fig.data} >= {"total", "ce", "val mIoU"}
    assert "iter 20/20" in job_log_tail(job["id"], runs)

    assert main(["jobs", "--runs-dir", str(runs), "list"]) == 0
    out = capsys.readouterr().out
    assert job["id"] in out and "finished" in out


def test_cancel_and_stop_and_save(runs, worker):
    from contextrast.engine.checkpoint import load_checkpoint

    a = submit_job(tiny_job(1000, ckpt_interval=1000), runs)
    queued = submit_job(tiny_job(1000), runs)  # waits behind `a`: the worker has one slot
    assert cancel_job(queued["id"], runs)["state"] == "cancelled"
    wait_for(lambda: get_job(a["id"], runs)["iteration"] >= 2, "job a to train", logs=runs.parent)
    assert cancel_job(a["id"], runs)["request"] == "cancel"
    r = wait_for(lambda: state_is(a["id"], runs, "cancelled", "failed", "finished"), "cancel", logs=runs.parent)
    assert r["state"] == "cancelled" and r["checkpoint"] is None and r["iteration"] < 1000
    assert not (Path(r["run_dir"]) / "final").exists()

    b = submit_job(tiny_job(1000, ckpt_interval=1000), runs)
    wait_for(lambda: get_job(b["id"], runs)["iteration"] >= 2, "job b to train", logs=runs.parent)
    stop_job(b["id"], runs)
    r = wait_for(lambda: state_is(b["id"], runs, "stopped", "failed", "finished"), "stop", logs=runs.parent)
    assert r["state"] == "stopped", r
    _, card = load_checkpoint(r["checkpoint"])
    assert 2 <= card.iteration == r["iteration"] < 1000
    assert load_checkpoint(Path(r["run_dir"]) / "last")[1].iteration == card.iteration  # resume point saved too

    # the cancelled-while-queued job never ran, although its queue message reached the worker
    assert get_job(queued["id"], runs)["attempts"] == 0
    assert not (Path(queued["run_dir"]) / "metrics.jsonl").exists()
    with pytest.raises(ValueError, match="only queued or running"):
        cancel_job(b["id"], runs)


def test_sigkilled_worker_leaves_an_interrupted_job_that_resumes(runs):
    from contextrast.engine.checkpoint import load_checkpoint

    first = start_worker(runs, "worker1")
    try:
        job = submit_job(tiny_job(30, ckpt_interval=2), runs)
        run_dir = Path(job["run_dir"])
        wait_for(lambda: get_job(job["id"], runs)["iteration"] >= 5 and (run_dir / "last").is_dir(),
                 "a few iterations and a checkpoint", logs=runs.parent)
        child = get_job(job["id"], runs)["child_pid"]
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        stop_worker(first)
    # the training child notices its worker is gone and exits by itself (no orphan trains on)
    wait_for(lambda: not pid_alive(child), "the orphaned training child to exit", timeout=30)
    # no worker runs, yet a reader already sees the job as interrupted (not running with an ETA)
    assert get_job(job["id"], runs)["state"] == "interrupted"

    second = start_worker(runs, "worker2")
    try:
        r = wait_for(lambda: state_is(job["id"], runs, "interrupted"), "interrupted mark", logs=runs.parent)
        killed_at = load_checkpoint(run_dir / "last")[1].iteration
        assert 2 <= killed_at < 30 and f"iteration {killed_at}" in r["message"]
        resumed = resume_job(job["id"], runs)
        assert resumed["state"] == "queued"
        r = wait_for(lambda: state_is(job["id"], runs, "finished", "failed"), "resumed job", logs=runs.parent)
    finally:
        stop_worker(second)
    assert r["state"] == "finished" and r["attempts"] == 2, r
    assert load_checkpoint(r["checkpoint"])[1].iteration == 30
    assert f"resumed from {run_dir / 'last'} at iteration {killed_at}" in job_log_tail(job["id"], runs, 200)
    losses, _ = split_curves(read_metrics(run_dir / "metrics.jsonl"))
    assert [it for it, _ in losses["total"]] == list(range(1, 31))
    steps = [m["iter"] for m in read_metrics(run_dir / "metrics.jsonl") if "val" not in m]
    assert steps == list(range(1, 31))  # the file itself: what the killed attempt logged past last/ is gone
    with pytest.raises(ValueError, match="finished; only"):
        resume_job(job["id"], runs)


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server is not installed")
def test_redis_queue_two_workers_each_job_runs_once(tmp_path):
    import redis

    port = free_port()
    server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"redis://127.0.0.1:{port}/0"
    client = redis.Redis.from_url(url)
    workers = []
    try:
        wait_for(lambda: _ping(client), "redis-server", timeout=20)
        runs = tmp_path / "runs"
        env = {**ENV, "CONTEXTRAST_REDIS_URL": url}
        workers = [start_worker(runs, f"worker{i}", env) for i in range(2)]
        queue = queue_for(runs, url)
        jobs = [submit_job(tiny_job(6), runs, redis_url=url)]
        queue.enqueue(jobs[0]["id"], jobs[0]["token"])  # a duplicate message: the other worker gets it at once
        jobs += [submit_job(tiny_job(6), runs, redis_url=url) for _ in range(2)]
        for j in jobs:
            wait_for(lambda j=j: state_is(j["id"], runs, "finished", "failed", url=url), f"job {j['id']}", logs=tmp_path)
        wait_for(lambda: len(queue.huey) == 0, "the queue to drain", timeout=30)
        time.sleep(1.0)  # a message just taken would have claimed its job by now
        done = [get_job(j["id"], runs, url) for j in jobs]
        for r in done:
            assert r["state"] == "finished" and r["attempts"] == 1, r
            steps = [m["iter"] for m in job_metrics(r["id"], runs, url) if "val" not in m]
            assert steps == list(range(1, 7)), f"job {r['id']} ran more than once: {steps}"
            assert "iter 6/6" in r["log_tail"][-1]  # progress lines travel in the record too
            assert client.exists(f"contextrast:job:{r['id']}")  # the record lives in Redis …
            assert not (runs / "jobs" / r["id"] / "job.json").exists()  # … not in the runs dir
        assert len(list_jobs(runs, url)) == 3
        assert {w.pid for w in workers} >= {r["worker_pid"] for r in done}
    finally:
        for w in workers:
            stop_worker(w)
        server.terminate()
        server.wait(20)


def _ping(client) -> bool:
    try:
        return bool(client.ping())
    except Exception:  # noqa: BLE001 - not up yet
        return False


@pytest.mark.parametrize("change,error,match", [
    ({"lr": -1.0}, ValueError, "lr must be positive"),
    ({"batch_size": 0}, ValueError, "batch_size must be positive"),
    ({"iterations": 0}, ValueError, "iterations must be positive"),
    ({"data": "nosuch:/x"}, ValueError, "unknown dataset 'nosuch'"),
    ({"data": "camvid:/no/such/dir"}, FileNotFoundError, "/no/such/dir"),
    ({"base_checkpoint": "/no/such/checkpoint"}, FileNotFoundError, "base checkpoint /no/such/checkpoint does not exist"),
    ({"crop": [128, 128]}, ValueError, r"crop 128×128 is larger than the images .* \(64×80\)"),
    ({"batch_size": 32}, ValueError, "fewer than one batch"),
    ({"loss": "dice"}, ValueError, "unknown loss 'dice'"),
    ({"device": "tpu"}, ValueError, "unknown device 'tpu'"),
    ({"gpus": 2}, ValueError, "needs device cuda"),
    ({"overrides": ["train.nosuch=1"]}, ValueError, "unknown train key 'nosuch'"),
    # what could not run used to be accepted here and fail in the worker
    ({"overrides": ["train.log_interval=0"]}, ValueError, "train.log_interval must be a positive integer"),
    ({"overrides": ["train.momentum=abc"]}, ValueError, "train.momentum must be a number; got 'abc'"),
    ({"overrides": ["model.backbone=evil"]}, ValueError, "backbone.*'evil'"),
    ({"overrides": ["train.device=cuda:7"]}, ValueError, "cuda:7"),
    ({"overrides": ["train.init_from=/etc"]}, FileNotFoundError, "/etc has no model_card.json"),
    ({"overrides": ["train.workers=-1"]}, ValueError, "train.workers must be 0 or more"),
    ({"overrides": ["model.decoder_channels=100000"]}, ValueError, "decoder_channels=100000 is wider than"),
    ({"overrides": ["train.lr=.nan"]}, ValueError, "train.lr must be a finite number"),
    ({"overrides": ["loss.alpha=.nan"]}, ValueError, "loss.alpha must be a finite number"),
    ({"lr": float("nan")}, ValueError, "lr must be a finite number"),
    ({"lr": float("inf")}, ValueError, "lr must be a finite number"),
    ({"name": "x" * 200_000}, ValueError, "job name has 200000 characters"),
])
def test_bad_parameters_are_refused_at_submit(runs, change, error, match):
    with pytest.raises(error, match=match):
        submit_job({**tiny_job(20), **change}, runs)
    assert list_jobs(runs) == []  # nothing recorded, nothing queued
    assert len(queue_for(runs).huey) == 0


def test_a_queued_job_whose_message_was_lost_is_sent_again(runs):
    """A worker killed between taking huey's message and claiming the record leaves the job queued with no
    message; the next worker's scan sends one again, once, and leaves other states alone."""
    from contextrast.jobs.recovery import requeue_lost_jobs

    q = queue_for(runs)
    lost, cancelled = submit_job(tiny_job(20), runs), submit_job(tiny_job(20), runs)
    cancel_job(cancelled["id"], runs)
    taken = q.huey.dequeue()  # what the killed worker took with it
    assert taken.args == (lost["id"], lost["token"]) and len(q.huey) == 1
    assert requeue_lost_jobs(q) == [lost["id"]]
    assert {tuple(t.args) for t in q.huey.pending()} == {(lost["id"], lost["token"]), (cancelled["id"], cancelled["token"])}
    assert requeue_lost_jobs(q) == []  # its message is back: nothing more to send
    assert get_job(lost["id"], runs)["state"] == "queued"


def test_fine_tune_base_is_validated_and_cli_reports_errors(runs, tmp_path, capsys):
    from contextrast.cli import main
    from contextrast.config import ModelConfig
    from contextrast.data.toy import TOY
    from contextrast.engine.card import ModelCard
    from contextrast.engine.checkpoint import save_checkpoint
    from contextrast.jobs.validate import validate_job
    from contextrast.models import build_model

    model_cfg = ModelConfig(num_classes=5, decoder_channels=16, embed_dim=16)
    base = save_checkpoint(tmp_path / "base", build_model(model_cfg), ModelCard(
        name="base", model=json.loads(json.dumps(model_cfg.__dict__)), dataset="toy", classes=list(TOY.classes),
        palette=[list(c) for c in TOY.palette]))
    params = tiny_job(20, base_checkpoint=str(base), overrides=["train.workers=0"])
    _, cfg = validate_job(params)
    assert cfg.train.init_from == str(base.resolve()) and cfg.model.decoder_channels == 16
    with pytest.raises(ValueError, match="architecture comes from the base checkpoint"):
        validate_job(tiny_job(20, base_checkpoint=str(base)))
    weights = base / "model.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(intact[: len(intact) // 2])
    with pytest.raises(ValueError, match="unreadable weights .*truncated"):
        validate_job(params)  # found at submit, not when the worker loads it
    weights.write_bytes(intact)
    (base / "model_card.json").write_text("{not json")
    with pytest.raises(ValueError, match="corrupt"):
        validate_job(params)

    code = main(["jobs", "--runs-dir", str(runs), "submit", "--data", "toy:n=16,size=64x80", "--lr", "-1"])
    assert code == 2 and "lr must be positive" in capsys.readouterr().err
    assert list_jobs(runs) == []


def test_cli_submit_queues_the_job_and_starts_a_worker_when_none_serves_the_runs_dir(runs, monkeypatch, capsys):
    import contextrast.jobs.worker as worker_module
    from contextrast.cli import main

    started = []
    monkeypatch.setattr(worker_module, "ensure_worker_running", lambda r: started.append(Path(r)) or object())
    args = ["jobs", "--runs-dir", str(runs), "submit", "--data", "toy:n=16,size=64x80", "--crop", "64", "64",
            "--iterations", "5", "--device", "cpu", *sum((["--set", o] for o in TINY_OVERRIDES), [])]
    assert main(args) == 0
    out = capsys.readouterr().out
    (job,) = list_jobs(runs)
    assert job["state"] == "queued" and f"submitted job {job['id']}" in out
    assert started == [runs.resolve()] and "started a background worker" in out
    monkeypatch.setattr(worker_module, "ensure_worker_running", lambda r: None)  # one serves it already
    assert main(args) == 0
    assert "started a background worker" not in capsys.readouterr().out and len(list_jobs(runs)) == 2


def test_a_shutdown_names_only_the_jobs_it_interrupted(runs):
    """A job that ended while its watcher was still wrapping up stays as it ended, and is not reported
    as interrupted by the shutdown."""
    from contextrast.jobs import supervisor
    from contextrast.jobs.processes import worker_identity

    class Ended:
        pid = None

        def kill(self) -> None:
            pass

        def wait(self, timeout: float) -> None:
            pass

    queue = queue_for(runs)
    job = submit_job(tiny_job(5), runs)
    queue.store.update(job["id"], lambda r: {**r, "state": "finished", "worker": worker_identity()})
    supervisor.RUNNING[job["id"]] = Ended()  # type: ignore[assignment]
    try:
        assert supervisor.interrupt_running_jobs(queue.store) == []
    finally:
        supervisor.RUNNING.pop(job["id"], None)
    assert get_job(job["id"], runs)["state"] == "finished"


def test_train_tab_submits_refuses_and_shows_jobs(runs):
    import gradio as gr

    from app.lab import Lab
    from app.samples import Samples
    from app.state import ModelStore
    from app.tabs.train import SCRATCH, build_train

    lab = Lab(store=ModelStore([]), samples=Samples(None, None))
    with gr.Blocks():
        lab.components["input_message"] = gr.Markdown()
        tab = build_train(lab, runs)
    settings = [SCRATCH, "toy:n=16,size=64x80", "ce", 20, 0.01, 4, 64, 64, "cpu", 1, "from the tab",
                "\n".join(TINY_OVERRIDES)]
    with pytest.raises(ValueError, match="lr must be positive"):  # the page shows it beside the Start button
        tab.handlers["submit"](*settings[:4], -1.0, *settings[5:])
    out = tab.handlers["submit"](*settings)
    assert out[0].startswith("Submitted job")
    table, progress, figure = out[1], out[3], out[4]
    assert table[0][1] == "queued" and table[0][-1] == "from the tab"
    assert "No worker is running" in progress  # nobody serves this runs dir
    assert figure.data  # the (empty) curves still draw
    assert list_jobs(runs)[0]["params"]["name"] == "from the tab"


def test_ensure_worker_running_starts_one_and_sigterm_leaves_jobs_resumable(runs):
    from contextrast.jobs import ensure_worker_running
    from contextrast.jobs.store import open_store

    proc = ensure_worker_running(runs)
    assert proc is not None
    try:
        wait_for(lambda: open_store(runs).live_workers(), "the worker's first heartbeat", timeout=60)
        assert ensure_worker_running(runs) is None  # one is running already
        job = submit_job(tiny_job(1000, ckpt_interval=1000), runs)
        wait_for(lambda: get_job(job["id"], runs)["iteration"] >= 1, "training", logs=runs)
        child = get_job(job["id"], runs)["child_pid"]
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    finally:
        stop_worker(proc)
    r = get_job(job["id"], runs)
    assert r["state"] == "interrupted" and "shut down" in r["message"]
    assert not pid_alive(child)
    assert open_store(runs).live_workers() == []


def test_multi_process_job_runs_through_torchrun_and_stops_on_every_rank(runs, worker):
    """gpus=N launches torchrun; here N=2 CPU processes (gloo) stand in for GPUs (users are refused
    cpu with gpus > 1, so the record is written directly). All ranks must agree to stop."""
    from contextrast.engine.checkpoint import load_checkpoint
    from contextrast.jobs.record import new_job_id, new_record
    from contextrast.jobs.run_dir import job_run_dir
    from contextrast.jobs.validate import validate_job

    params, cfg = validate_job(tiny_job(1000, ckpt_interval=1000))
    params.gpus = 2
    queue = queue_for(runs)
    job_id = new_job_id()
    record = new_record(job_id, params.to_dict(), cfg.to_dict(), str(job_run_dir(runs, job_id)))
    queue.store.create(record)
    queue.enqueue(job_id, record["token"])
    wait_for(lambda: get_job(job_id, runs)["iteration"] >= 2, "torchrun ranks to train", logs=runs.parent)
    stop_job(job_id, runs)
    r = wait_for(lambda: state_is(job_id, runs, "stopped", "failed", "finished"), "stop", logs=runs.parent)
    assert r["state"] == "stopped", (r, job_log_tail(job_id, runs, 60))
    assert load_checkpoint(r["checkpoint"])[1].iteration == r["iteration"] < 1000
    log = job_log_tail(job_id, runs, 200)
    assert "rank 0 of 2 processes" in log and "rank 1 of 2 processes" in log


def test_a_diverging_job_fails_with_its_reason_in_the_record_and_the_log(runs, worker):
    """lr=100000 on a tiny toy run: the job ends `failed` and says why (non-finite loss or gradients),
    never only an exit code or a signal."""
    job = submit_job(tiny_job(30, lr=100000.0), runs)
    r = wait_for(lambda: state_is(job["id"], runs, "failed", "finished"), "the diverging job", logs=runs.parent)
    assert r["state"] == "failed", r
    assert "FloatingPointError" in r["error"] and "not finite" in r["error"], r["error"]
    assert "not finite" in r["message"]
    assert "not finite" in job_log_tail(job["id"], runs, 60)


def test_job_control_answers_unknown_ids_bounds_names_and_writes_strict_json(runs):
    from contextrast.jobs.file_store import FileJobStore

    for action in (cancel_job, stop_job, resume_job, get_job):
        with pytest.raises(FileNotFoundError, match="no job 'nosuch'") as e:
            action("nosuch", runs)
        assert ".lock" not in str(e.value)
    job = submit_job(tiny_job(20), runs)
    store = FileJobStore(runs)
    store.set(job["id"], best_miou=float("nan"), last_log={"iter": 3, "total": float("inf")})
    text = (runs / "jobs" / job["id"] / "job.json").read_text()
    record = json.loads(text, parse_constant=lambda c: pytest.fail(f"{c} in job.json"))
    assert record["best_miou"] is None and record["last_log"]["total"] is None


def test_a_worker_started_for_the_app_exits_when_the_app_is_gone(runs):
    """`contextrast app` starts its worker with exit_with_parent: once the app process is gone (killed here), the
    worker stops by itself and unregisters; a worker started for `jobs submit` (no flag) would stay."""
    from contextrast.jobs.store import open_store

    starter = (f"import sys; from contextrast.jobs import ensure_worker_running; "
               f"p = ensure_worker_running({str(runs)!r}, exit_with_parent=True); print(p.pid, flush=True); "
               f"import time; time.sleep(600)")
    app = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    worker_pid = int(app.stdout.readline())
    try:
        wait_for(lambda: open_store(runs).live_workers(), "the worker's first heartbeat", timeout=90)
        assert pid_alive(worker_pid)
        app.kill()  # the app dies without a chance to clean up
        app.wait(10)
        wait_for(lambda: not pid_alive(worker_pid), "the worker to exit after its app", timeout=60)
    finally:
        app.kill()
        if pid_alive(worker_pid):
            os.kill(worker_pid, signal.SIGKILL)
    assert open_store(runs).live_workers() == []
