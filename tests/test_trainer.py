"""The trainer — resume after a kill, torchrun with gloo, fine-tuning, bad configs."""

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
import torch

from contextrast.config import load_config
from contextrast.engine.checkpoint import load_checkpoint
from contextrast.engine.trainer import TrainHooks, train

TINY = [
    "train.data=toy:n=16,size=64x80",
    "train.crop=[64,64]",
    "train.batch_size=4",
    "train.workers=0",
    "train.log_interval=1",
    "train.val_interval=1000",
    "model.decoder_channels=16",
    "model.embed_dim=16",
    "loss.contrast_start=0.0",
]


def tiny_config(tmp_path: Path, *extra: str):
    return load_config(None, TINY + [f"train.run_dir={tmp_path / 'run'}", *extra])


def read_metrics(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_train_writes_checkpoints_and_metrics(tmp_path):
    cfg = tiny_config(tmp_path, "train.iterations=4", "train.ckpt_interval=2", "loss.name=contextrast")
    result = train(cfg, TrainHooks(progress_bar=False))
    assert result.status == "finished" and result.iteration == 4
    logs = read_metrics(result.run_dir)
    steps = [r for r in logs if "total" in r]
    assert [r["iter"] for r in steps] == [1, 2, 3, 4]
    assert all(torch.isfinite(torch.tensor(r["total"])) for r in steps)
    assert "contextrast" in steps[-1]
    assert any("val" in r for r in logs)
    model, card = load_checkpoint(result.final_checkpoint)
    assert card.iteration == 4 and card.classes and len(card.palette) == len(card.classes)
    assert model.num_classes == len(card.classes)
    for kind in ("last", "best", "final"):
        assert (result.run_dir / kind / "model.safetensors").is_file()


def test_stop_and_cancel_requests(tmp_path):
    calls = {"n": 0}

    def stop_after_two():
        calls["n"] += 1
        return "stop" if calls["n"] >= 2 else None

    res = train(tiny_config(tmp_path, "train.iterations=50"), TrainHooks(should_stop=stop_after_two, progress_bar=False))
    assert res.status == "stopped" and res.iteration == 2 and res.final_checkpoint is not None
    assert load_checkpoint(res.run_dir / "last")[1].iteration == 2

    cancelled = train(
        tiny_config(tmp_path / "c", "train.iterations=50"), TrainHooks(should_stop=lambda: "cancel", progress_bar=False)
    )
    assert cancelled.status == "cancelled" and cancelled.final_checkpoint is None


def _train_cmd(tmp_path: Path, iterations: int) -> list[str]:
    sets = TINY + [f"train.run_dir={tmp_path / 'run'}", f"train.iterations={iterations}", "train.ckpt_interval=1"]
    return [sys.executable, "-m", "contextrast.cli", "train", "--no-progress"] + [a for s in sets for a in ("--set", s)]


def test_kill_mid_run_then_resume_finishes(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(_train_cmd(tmp_path, 30), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    last = tmp_path / "run" / "last"
    deadline = time.time() + 240
    while time.time() < deadline and proc.poll() is None:
        if (last / "model_card.json").is_file() and load_checkpoint(last)[1].iteration >= 3:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.stdout.read().decode()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = load_checkpoint(last)[1].iteration
    assert 3 <= killed_at < 30
    done = subprocess.run(_train_cmd(tmp_path, 30), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"resumed from {last} at iteration" in done.stdout
    model, card = load_checkpoint(tmp_path / "run" / "final")
    assert card.iteration == 30
    steps = [r for r in read_metrics(tmp_path / "run") if "total" in r]
    assert steps[-1]["iter"] == 30 and all(r["total"] == r["total"] for r in steps)
    ev = subprocess.run(
        [sys.executable, "-m", "contextrast.cli", "eval", "--checkpoint", str(tmp_path / "run" / "final"),
         "--data", "toy:n=4,size=64x80", "--split", "val"],
        capture_output=True, text=True, timeout=300,
    )
    assert ev.returncode == 0, ev.stderr
    assert "mIoU" in ev.stdout


def _torchrun(tmp_path: Path, port: int, *extra: str) -> subprocess.CompletedProcess:
    sets = TINY + [f"train.run_dir={tmp_path / 'run'}", "train.device=cpu", *extra]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
           "-m", "contextrast.cli", "train", "--no-progress"] + [a for s in sets for a in ("--set", s)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def test_torchrun_two_processes_gloo(tmp_path):
    done = _torchrun(tmp_path, 29517, "train.iterations=3", "train.sync_bn=true")
    assert "sync_bn ignored on CPU" in done.stdout
    _, card = load_checkpoint(tmp_path / "run" / "final")
    assert card.iteration == 3


@pytest.mark.parametrize("loss,port", [("contextrast", 29518), ("pixel_contrast", 29519), ("ce", 29520)])
def test_torchrun_trains_every_loss_through_the_contrastive_start(tmp_path, loss, port):
    """The projection heads join the graph when the contrastive term starts (iteration 2 of 4), and pixel_contrast
    reads one layer only: DDP must accept both (it failed with 'Expected to have finished reduction')."""
    _torchrun(tmp_path, port, "train.iterations=4", f"loss.name={loss}", "loss.contrast_start=0.5")
    steps = [m for m in read_metrics(tmp_path / "run") if "total" in m]
    assert [m["iter"] for m in steps] == [1, 2, 3, 4]
    if loss != "ce":
        assert steps[0][loss] == 0.0 and steps[-1][loss] > 0.0


def test_ema_weights_are_what_final_holds_and_resume_restores_them(tmp_path):
    cfg = tiny_config(tmp_path, "train.iterations=3", "train.ema_decay=0.5", "train.ckpt_interval=1")
    res = train(cfg, TrainHooks(progress_bar=False))
    final, card = load_checkpoint(res.final_checkpoint)
    assert "EMA" in card.train["weights"]
    last = load_checkpoint(tmp_path / "run" / "last")[0]  # the raw weights, the resume point
    differs = [k for k, v in final.state_dict().items() if v.is_floating_point() and not torch.equal(v, last.state_dict()[k])]
    assert differs  # the EMA is not the raw model
    assert (tmp_path / "run" / "last" / "ema.safetensors").is_file()


def test_cpu_bf16_training_follows_the_fp32_losses(tmp_path):
    """bf16 autocast on CPU (train.cpu_bf16) against fp32 on the same seed and data: the losses of a short run agree."""
    runs = []
    for i, bf16 in enumerate((False, True)):
        cfg = tiny_config(tmp_path / str(i), "train.iterations=4", f"train.cpu_bf16={str(bf16).lower()}")
        train(cfg, TrainHooks(progress_bar=False))
        runs.append([m["total"] for m in read_metrics(tmp_path / str(i) / "run") if "total" in m])
    assert len(runs[0]) == len(runs[1]) == 4
    for a, b in zip(*runs):
        assert b == pytest.approx(a, rel=0.05)
    assert runs[0] != runs[1]  # bf16 really ran


def test_diverging_run_stops_with_a_reason_before_backward(tmp_path):
    with pytest.raises(FloatingPointError, match="not finite"):
        train(tiny_config(tmp_path, "train.iterations=20", "train.lr=100000", "train.optimizer=sgd"),
              TrainHooks(progress_bar=False))


def test_lr_warmup_and_offset_scale_shape_the_schedule():
    from contextrast.config import ExperimentConfig
    from contextrast.engine.optim import build_optimizer, poly_lr
    from contextrast.models import build_model

    lr_at = poly_lr(1.0, 1.0, 100, warmup=10)
    assert lr_at(0) == pytest.approx(0.1) and lr_at(9) == pytest.approx(0.91) and lr_at(50) == pytest.approx(0.5)
    cfg = load_config(None, ["train.offset_lr_scale=0.1", "model.decoder_channels=16"])
    opt = build_optimizer(build_model(cfg.model), cfg)
    scales = sorted(g["lr_scale"] for g in opt.param_groups)
    assert scales == [0.1, 1.0, 1.0] and isinstance(cfg, ExperimentConfig)


def test_fine_tune_from_checkpoint_with_other_class_count(tmp_path):
    first = train(tiny_config(tmp_path / "a", "train.iterations=1"), TrainHooks(progress_bar=False))
    cfg = tiny_config(tmp_path / "b", "train.iterations=1", f"train.init_from={first.final_checkpoint}")
    res = train(cfg, TrainHooks(progress_bar=False))
    assert res.status == "finished"


def test_fine_tuned_card_carries_its_lineage_through_resume(tmp_path):
    """A model fine-tuned from a trained one says so: the card lists the earlier stage (name, iterations, time),
    its README counts the total time, and the lineage survives the parent being overwritten (a shipped model
    fine-tuned into its own directory) and a resume."""
    from contextrast.engine.card import read_card, render_readme, total_training_time_s

    first = train(tiny_config(tmp_path / "a", "train.iterations=2"), TrainHooks(progress_bar=False))
    parent = read_card(first.final_checkpoint)
    assert parent.lineage == []
    cfg = tiny_config(tmp_path / "b", "train.iterations=2", "train.ckpt_interval=1", f"train.init_from={first.final_checkpoint}")
    stopped = train(cfg, TrainHooks(progress_bar=False, should_stop=lambda: "stop"))
    assert stopped.status != "finished"
    shutil.rmtree(first.final_checkpoint)  # the parent is gone (or overwritten) before the run resumes
    res = train(cfg, TrainHooks(progress_bar=False))
    card = read_card(res.final_checkpoint)
    assert [s["name"] for s in card.lineage] == [parent.name]
    assert card.lineage[0]["iteration"] == 2 and card.lineage[0]["training_time_s"] == parent.training_time_s
    assert total_training_time_s(card) == pytest.approx(card.training_time_s + parent.training_time_s)
    assert f"initialised from {parent.name}: 2 iterations" in render_readme(card)


@pytest.mark.parametrize("override,match", [
    ("train.lr=-1", "lr must be positive"),
    ("train.batch_size=0", "batch_size must be a positive integer"),
    ("train.data=nosuch:/x", "nosuch"),
    ("model.align=warp", "align must be one of"),
    ("train.grad_accum=3", "divisible"),
])
def test_bad_configs_fail_before_training(tmp_path, override, match):
    with pytest.raises(ValueError, match=match):
        train(tiny_config(tmp_path, override), TrainHooks(progress_bar=False))
