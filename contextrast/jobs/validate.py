"""Check a fine-tuning job's parameters when it is submitted, not at iteration 500.

`validate_job(params)` builds the full `ExperimentConfig` the job will train with, which already
refuses a non-positive lr, batch 0, an unknown loss …; then it opens the dataset spec and reads one
training sample (a crop larger than the images is refused), and reads the base checkpoint's model
card (a missing or broken checkpoint is refused). Fine-tuning takes the architecture from the base
checkpoint (METHOD.md §1 network; the classifier is re-initialised by the trainer when the class
count differs).
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from contextrast.config import (
    ExperimentConfig,
    LossConfig,
    ModelConfig,
    TrainConfig,
    apply_overrides,
    model_config_from_card,
    replace,
)
from contextrast.losses import LOSSES

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")


@dataclass
class JobParams:
    """What the Train tab and `contextrast jobs submit` ask for. Intervals of 0 mean 'pick one'."""

    data: str = "toy"  # dataset spec (contextrast.data.build_dataset), e.g. camvid:/data/camvid
    base_checkpoint: str = ""  # checkpoint dir to fine-tune from; "" trains from scratch
    loss: str = "contextrast"  # ce | pixel_contrast | ccl | contextrast
    iterations: int = 1000
    lr: float = 0.01
    batch_size: int = 8
    crop: tuple[int, int] = (256, 256)
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    gpus: int = 1  # > 1: one machine, N processes through torchrun
    val_interval: int = 0
    ckpt_interval: int = 0
    log_interval: int = 0
    name: str = ""  # a label for the job table
    overrides: list[str] = field(default_factory=list)  # extra section.key=value config overrides

    def __post_init__(self) -> None:
        self.crop = tuple(int(c) for c in self.crop)  # type: ignore[assignment]
        self.overrides = [str(o) for o in self.overrides]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["crop"] = list(self.crop)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobParams:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown job parameters {unknown}; known: {sorted(known)}")
        return cls(**d)


def _check_number(name: str, value: Any, kind: type, positive: bool = True) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float) if kind is float else int):
        raise ValueError(f"{name} must be a{'n integer' if kind is int else ' number'}; got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be positive; got {value!r}")


def build_job_config(p: JobParams) -> ExperimentConfig:
    """The ExperimentConfig of a job (without run_dir, which the worker sets), or ValueError."""
    _check_number("lr", p.lr, float)
    for name in ("iterations", "batch_size", "gpus"):
        _check_number(name, getattr(p, name), int)
    for name in ("val_interval", "ckpt_interval", "log_interval"):
        _check_number(name, getattr(p, name), int, positive=False)
        if getattr(p, name) < 0:
            raise ValueError(f"{name} must be ≥ 0 (0 picks one); got {getattr(p, name)}")
    LOSSES.get(p.loss)  # unknown loss: ValueError naming the choices
    if not DEVICE_PATTERN.match(p.device):
        raise ValueError(f"unknown device {p.device!r}; choose auto, cpu, cuda or cuda:N")
    if p.gpus > 1 and p.device == "cpu":
        raise ValueError(f"gpus={p.gpus} needs device cuda or auto; a CPU job runs as one process")
    if p.batch_size % p.gpus:
        raise ValueError(f"batch_size {p.batch_size} must be divisible by gpus {p.gpus} (one share per GPU)")

    model = ModelConfig()
    if p.base_checkpoint:
        from contextrast.engine.card import read_card

        base = Path(p.base_checkpoint)
        if not base.exists():
            raise FileNotFoundError(f"base checkpoint {base} does not exist; give a checkpoint directory "
                                    "(model.safetensors + model_card.json) or leave it empty to train from scratch")
        card = read_card(base)  # FileNotFoundError / ValueError for a broken checkpoint
        model = model_config_from_card(card.model)
        if any(o.strip().startswith("model.") for o in p.overrides):
            raise ValueError("the architecture comes from the base checkpoint; drop the model.* overrides "
                             "or train from scratch (empty base checkpoint)")
    iterations = p.iterations
    train = TrainConfig(
        data=p.data,
        crop=p.crop,
        batch_size=p.batch_size,
        iterations=iterations,
        lr=float(p.lr),
        device=p.device,
        val_interval=p.val_interval or max(1, iterations // 5),
        ckpt_interval=p.ckpt_interval or max(1, min(100, iterations // 10)),
        log_interval=p.log_interval or max(1, min(10, iterations // 50)),
        init_from=str(Path(p.base_checkpoint).resolve()) if p.base_checkpoint else "",
    )
    cfg = ExperimentConfig(model=model, loss=LossConfig(name=p.loss), train=train)
    return apply_overrides(cfg, p.overrides)


def check_dataset(cfg: ExperimentConfig, gpus: int = 1) -> None:
    """Open both splits of the dataset spec and read one training picture's size."""
    from contextrast.data import build_dataset

    t = cfg.train
    train_set = build_dataset(t.data, t.train_split)
    build_dataset(t.data, t.val_split)
    per_rank = t.batch_size // (gpus * t.grad_accum)
    if len(train_set) < max(per_rank, 1):
        raise ValueError(f"dataset {t.data!r} has {len(train_set)} {t.train_split} images, fewer than one batch "
                         f"of {per_rank}")
    rgb, _ = train_set.load(0)
    h, w = rgb.shape[:2]
    if t.crop[0] > h or t.crop[1] > w:
        raise ValueError(f"crop {t.crop[0]}×{t.crop[1]} is larger than the images of {t.data!r} ({h}×{w}); "
                         f"pick a crop of at most {h}×{w}")


def check_device(p: JobParams) -> None:
    import torch

    if p.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {p.device!r} was asked for but this machine has no CUDA GPU (use auto or cpu)")
    if p.gpus > 1 and torch.cuda.device_count() < p.gpus:
        raise ValueError(f"gpus={p.gpus} but this machine has {torch.cuda.device_count()} CUDA GPU(s)")


def validate_job(params: JobParams | dict[str, Any], devices_here: bool = True) -> tuple[JobParams, ExperimentConfig]:
    """(params, the config the job will train with), or ValueError/FileNotFoundError saying what is wrong.

    `devices_here`: check the device against this machine's GPUs (false when workers run elsewhere).
    """
    p = params if isinstance(params, JobParams) else JobParams.from_dict(dict(params))
    cfg = build_job_config(p)
    check_dataset(cfg, p.gpus)
    if devices_here:
        check_device(p)
    return p, replace(cfg, train=replace(cfg.train, run_dir=""))
