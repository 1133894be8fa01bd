"""The training loop: read it top to bottom (nanoGPT-style).

One function, `train(cfg)`, runs on CPU, one GPU, or several through
`torchrun --nproc_per_node N -m contextrast.cli train ...` (DistributedDataParallel; gloo on CPU,
NCCL on CUDA). A run directory holds everything a run writes:

    run_dir/config.yaml     the resolved config
    run_dir/metrics.jsonl   one JSON object per log step and per validation
    run_dir/last/           model + model card + training state (resume point), written atomically
    run_dir/best/           best validation mIoU so far (model + card)
    run_dir/final/          the model at the end of training (the EMA of the weights when train.ema_decay > 0)

Starting a run whose run_dir has `last/` resumes from it (same result as an uninterrupted run up
to data order, because the sampler is re-seeded from the iteration it resumes at).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, RandomSampler

from contextrast.config import ExperimentConfig, replace, save_config
from contextrast.data import build_dataset
from contextrast.data.statistics import log_frequency_weights
from contextrast.data.transforms import EvalTransform, TrainTransform
from contextrast.engine.card import LINEAGE_FILE, ModelCard, lineage_of, read_run_lineage
from contextrast.engine.checkpoint import load_checkpoint, save_checkpoint
from contextrast.engine.checkpoint_files import write_json
from contextrast.engine.evaluate import evaluate
from contextrast.engine.inference import resolve_device
from contextrast.engine.optim import build_optimizer, poly_lr, weight_average
from contextrast.engine.provenance import code_version, hardware_string
from contextrast.engine.training_state import (
    capture_rng_state,
    load_training_state,
    restore_rng_state,
    save_training_state,
)
from contextrast.losses import build_loss
from contextrast.models import build_model

StopRequest = str | None  # None | "cancel" (stop now, no checkpoint) | "stop" (save, then stop)


@dataclass
class TrainHooks:
    """How a caller (CLI progress bar, background job) watches and steers a run."""

    on_log: Callable[[dict[str, Any]], None] | None = None
    should_stop: Callable[[], StopRequest] | None = None
    progress_bar: bool = True


@dataclass
class TrainResult:
    run_dir: Path
    iteration: int
    status: str  # finished | stopped | cancelled
    best_miou: float | None
    final_checkpoint: Path | None
    history: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------------
# setup helpers


def init_distributed(device: torch.device) -> tuple[int, int]:
    """(rank, world size); initialises the process group when launched by torchrun."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return (dist.get_rank(), world) if world > 1 else (0, 1)


def load_init_weights(model: nn.Module, path: str) -> tuple[str, ModelCard]:
    """Fine-tuning start: all weights of a checkpoint; classifiers are re-initialised when the
    class count differs (a new dataset). Returns a one-line note of what was loaded and the checkpoint's card."""
    source, card = load_checkpoint(path)
    src, dst = source.state_dict(), model.state_dict()
    if set(src) != set(dst):
        raise ValueError(f"checkpoint {path} has another architecture than this config ({card.model})")
    kept = {k: v for k, v in src.items() if v.shape == dst[k].shape}
    model.load_state_dict(kept, strict=False)
    skipped = sorted(set(dst) - set(kept))
    note = f"initialised from {path}" + (f" (re-initialised for the new class count: {', '.join(skipped)})" if skipped else "")
    return note, card


def infinite_batches(loader: DataLoader, start_epoch: int):
    epoch = start_epoch
    while True:
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        yield from loader
        epoch += 1


def model_card(cfg: ExperimentConfig, info, name: str, iteration: int, elapsed: float, metrics: dict,
               lineage: list[dict] | None = None) -> ModelCard:
    plain = cfg.to_dict()  # JSON-safe values (tuples → lists), as the card stores them
    return ModelCard(
        name=name,
        model=plain["model"],
        dataset=cfg.train.data,
        classes=list(info.classes),
        palette=[list(c) for c in info.palette],
        ignore_index=info.ignore_index,
        loss=plain["loss"],
        train=plain["train"],
        metrics=metrics,
        iteration=iteration,
        training_time_s=round(elapsed, 1),
        hardware=hardware_string(),
        code_version=code_version(),
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        lineage=list(lineage or []),
    )


# ---------------------------------------------------------------------------------------------
# the loop


def train(cfg: ExperimentConfig, hooks: TrainHooks | None = None) -> TrainResult:
    hooks = hooks or TrainHooks()
    t = cfg.train
    device = resolve_device(t.device)
    rank, world = init_distributed(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    main = rank == 0
    run_dir = Path(t.run_dir)

    # --- data --------------------------------------------------------------------------------
    train_set = build_dataset(t.data, t.train_split, TrainTransform(crop=t.crop, scale=t.scale))
    val_set = build_dataset(t.data, t.val_split, EvalTransform())
    info = train_set.info
    if cfg.model.num_classes != info.num_classes:
        cfg = replace(cfg, model=replace(cfg.model, num_classes=info.num_classes))
    per_rank_batch = t.batch_size // (world * t.grad_accum)
    if per_rank_batch < 1 or per_rank_batch * world * t.grad_accum != t.batch_size:
        raise ValueError(f"batch_size {t.batch_size} must be divisible by world size {world} × grad_accum {t.grad_accum}")
    if len(train_set) < per_rank_batch:
        raise ValueError(f"the {t.train_split} split has {len(train_set)} images, fewer than one batch of {per_rank_batch}")

    # --- model, loss, optimiser ----------------------------------------------------------------
    torch.manual_seed(t.seed)
    model = build_model(cfg.model)
    if t.channels_last:
        model = model.to(memory_format=torch.channels_last)
    init_note, lineage = "", []
    resuming = (run_dir / "last").is_dir()
    if t.init_from and not resuming:  # a resumed run has its weights in last/ (init_from may be gone by now)
        init_note, parent = load_init_weights(model, t.init_from)
        lineage = lineage_of(parent)
    if t.sync_bn and world > 1:
        if device.type == "cuda":
            model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
        elif main:  # torch's SyncBatchNorm has no CPU kernel
            print("note: train.sync_bn ignored on CPU (SyncBatchNorm needs CUDA); BN statistics stay per process", flush=True)
    model.to(device)
    weights = None
    if cfg.loss.class_weights == "log_frequency":
        weights = torch.as_tensor(log_frequency_weights(train_set), dtype=torch.float32)
    # contrastive sampling is drawn from (seed, call count): repeatable, and resumable
    loss_fn = build_loss(cfg.loss, info.num_classes, info.ignore_index, seed=t.seed, class_weights=weights).to(device)
    optimizer = build_optimizer(model, cfg)
    ema = weight_average(model, t.ema_decay)
    lr_at = poly_lr(t.lr, t.poly_power, t.iterations, t.lr_warmup)
    use_amp = t.amp and device.type == "cuda"
    autocast_dtype = torch.float16 if use_amp else torch.bfloat16
    use_autocast = use_amp or (t.cpu_bf16 and device.type == "cpu")
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)

    # --- resume --------------------------------------------------------------------------------
    start_iter, elapsed, best_miou = 0, 0.0, None
    if resuming:
        extra = {"ema": ema} if ema is not None else {}
        state = load_training_state(run_dir / "last", model, optimizer, scaler if use_amp else None, extra)
        start_iter, elapsed, best_miou = state["iteration"], state["elapsed"], state.get("best_miou")
        restore_rng_state(state["rng"])
        loss_fn.resume_at(start_iter * t.grad_accum)  # continue the loss's sampling stream where it stopped
        init_note = f"resumed from {run_dir / 'last'} at iteration {start_iter}"
        # the lineage as it was when the run started: init_from may have been overwritten since (a shipped model
        # fine-tuned into its own directory)
        lineage = read_run_lineage(run_dir)
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, run_dir / "config.yaml")
        write_json(lineage, run_dir / (LINEAGE_FILE + ".tmp"))  # whole or not at all, as every run file
        os.replace(run_dir / (LINEAGE_FILE + ".tmp"), run_dir / LINEAGE_FILE)

    ddp_model: nn.Module = model
    if world > 1:
        ddp_model = nn.parallel.DistributedDataParallel(
            model,
            device_ids=[device.index] if device.type == "cuda" else None,
            # The graph changes during a run: projection heads run only once the contrastive term starts, and a
            # loss reads only its own layers (`loss_fn.embedding_layers`); heads that did not run get no gradient.
            find_unused_parameters=True,
        )

    forward_model = torch.compile(ddp_model) if t.compile else ddp_model
    generator = torch.Generator().manual_seed(t.seed + start_iter)
    sampler = (
        DistributedSampler(train_set, world, rank, shuffle=True, seed=t.seed + start_iter, drop_last=True)
        if world > 1
        else RandomSampler(train_set, generator=generator)
    )
    loader = DataLoader(
        train_set,
        batch_size=per_rank_batch,
        sampler=sampler,
        num_workers=t.workers,
        drop_last=True,
        pin_memory=device.type == "cuda",
        persistent_workers=t.workers > 0,
    )
    batches = infinite_batches(loader, start_epoch=0)

    history: list[dict[str, Any]] = []

    def log(record: dict[str, Any]) -> None:
        history.append(record)
        if main:
            with open(run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")
        if hooks.on_log is not None and main:
            hooks.on_log(record)

    def shipped_model() -> nn.Module:
        """What validation and the best/final checkpoints use: the EMA when there is one."""
        return ema.module if ema is not None else model

    def save(kind: str, iteration: int, metrics: dict) -> Path:
        card = model_card(cfg, info, f"{run_dir.name}-{kind}", iteration, elapsed, metrics, lineage)
        if ema is not None:
            card.train["weights"] = f"EMA of the weights, decay {t.ema_decay}"
        path = run_dir / kind
        if kind == "last":
            save_training_state(
                path, model, optimizer, scaler if use_amp else None,
                {"iteration": iteration, "elapsed": elapsed, "best_miou": best_miou,
                 "rng": capture_rng_state()},
                card=card,
                extra={"ema": ema} if ema is not None else None,
            )
        else:
            save_checkpoint(path, shipped_model(), card)
        return path

    if main and init_note:
        print(init_note, flush=True)
    bar = None
    if main and hooks.progress_bar:
        from tqdm import tqdm

        bar = tqdm(total=t.iterations, initial=start_iter, desc=run_dir.name, dynamic_ncols=True)

    # --- loop ----------------------------------------------------------------------------------
    status, it = "finished", start_iter
    model.train()
    tic = time.perf_counter()
    window_imgs, window_start = 0, time.perf_counter()
    while it < t.iterations:
        for group in optimizer.param_groups:
            group["lr"] = lr_at(it) * group.get("lr_scale", 1.0)
        optimizer.zero_grad(set_to_none=True)
        terms_sum: dict[str, float] = {}
        for _ in range(t.grad_accum):
            batch = next(batches)
            images = batch["image"].to(device, non_blocking=True)
            if t.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            masks = batch["mask"].to(device, non_blocking=True)
            progress = it / t.iterations
            with torch.autocast(device.type, dtype=autocast_dtype, enabled=use_autocast):
                out = forward_model(images, return_embeddings=loss_fn.embedding_layers(progress))
            # losses compute in fp32 (METHOD.md §2: logits and similarities in fp32)
            result = loss_fn(out, masks, progress=progress)
            if not math.isfinite(result.terms["total"]):  # before backward, which can crash on NaN
                raise FloatingPointError(
                    f"loss is not finite at iteration {it}: {result.terms}; the run diverged (lower train.lr)"
                )
            scaler.scale(result.total / t.grad_accum).backward()
            for k, v in result.terms.items():
                terms_sum[k] = terms_sum.get(k, 0.0) + v / t.grad_accum
            window_imgs += images.shape[0] * world
        if not use_amp and not all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None):
            raise FloatingPointError(f"gradients are not finite at iteration {it}; the run diverged (lower train.lr)")
        scaler.step(optimizer)  # under fp16 AMP the scaler skips steps with non-finite gradients itself
        scaler.update()
        if ema is not None:
            ema.update_parameters(model)
        it += 1
        now = time.perf_counter()
        elapsed += now - tic
        tic = now

        if it % t.log_interval == 0 or it == t.iterations:
            speed = window_imgs / max(now - window_start, 1e-9)
            window_imgs, window_start = 0, now
            log({"iter": it, "lr": lr_at(it - 1), "images_per_s": round(speed, 3), "elapsed_s": round(elapsed, 1),
                 **{k: round(v, 5) for k, v in terms_sum.items()}})
            if bar is not None:
                bar.set_postfix(loss=f"{terms_sum.get('total', 0):.4f}", lr=f"{lr_at(it - 1):.2e}")
        if bar is not None:
            bar.update(1)

        request = hooks.should_stop() if hooks.should_stop is not None else None
        if it % t.val_interval == 0 or it == t.iterations or request == "stop":
            if main:
                metrics = evaluate(shipped_model(), val_set, device=device, boundary=False)
                model.train()
                miou = metrics["miou"]
                log({"iter": it, "val": {"miou": miou, "aacc": metrics["aacc"], "macc": metrics["macc"]}})
                if best_miou is None or (miou is not None and miou > best_miou):
                    best_miou = miou
                    save("best", it, {"val_miou": miou, "val_aacc": metrics["aacc"], "val_macc": metrics["macc"],
                                      "per_class_iou": metrics["per_class_iou"], "split": t.val_split,
                                      "iteration": it})
            if world > 1:
                dist.barrier()
        if main and (it % t.ckpt_interval == 0 or it == t.iterations or request == "stop"):
            save("last", it, {"best_val_miou": best_miou})
        if request in ("stop", "cancel"):
            status = "stopped" if request == "stop" else "cancelled"
            break

    final = None
    if main and status != "cancelled":
        final = save("final", it, {"best_val_miou": best_miou, "iteration": it})
    if bar is not None:
        bar.close()
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()
    return TrainResult(run_dir, it, status, best_miou, final, history)
