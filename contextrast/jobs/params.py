"""What a fine-tuning job asks for (`JobParams`, from the Train tab or `contextrast jobs submit`) and
the `ExperimentConfig` it trains with. Fine-tuning takes the architecture from the base checkpoint
(METHOD.md §1 network; the classifier is re-initialised by the trainer when the class count differs).
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
)
from contextrast.losses import LOSSES

DEVICE_PATTERN = re.compile(r"^(auto|cpu|cuda(:\d+)?)$")
MAX_NAME_CHARS = 200
MAX_TEXT_CHARS = 4096  # a dataset spec, a checkpoint path, one override
MAX_OVERRIDES = 64


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
        if isinstance(self.crop, (str, bytes)) or not hasattr(self.crop, "__len__") or len(self.crop) != 2:
            raise ValueError(f"crop must be two sizes [H, W]; got {self.crop!r}")
        try:
            self.crop = tuple(int(c) for c in self.crop)  # type: ignore[assignment]
        except (TypeError, ValueError):
            raise ValueError(f"crop must be two whole numbers [H, W]; got {self.crop!r}") from None
        if isinstance(self.overrides, str) or not isinstance(self.overrides, (list, tuple)):
            raise ValueError(f"overrides must be a list of section.key=value strings; got {self.overrides!r}")
        self.overrides = [str(o) for o in self.overrides]
        for name in ("data", "base_checkpoint", "device", "loss", "name"):
            if not isinstance(getattr(self, name), str):
                raise ValueError(f"{name} must be text; got {getattr(self, name)!r}")
        if len(self.name) > MAX_NAME_CHARS:
            raise ValueError(f"the job name has {len(self.name)} characters; at most {MAX_NAME_CHARS} are kept")
        if len(self.overrides) > MAX_OVERRIDES:
            raise ValueError(f"{len(self.overrides)} overrides; at most {MAX_OVERRIDES}")
        for what, text in (("data", self.data), ("base_checkpoint", self.base_checkpoint), *(
                ("override", o) for o in self.overrides)):
            if len(text) > MAX_TEXT_CHARS or "\0" in text:
                raise ValueError(f"{what} is too long ({len(text)} characters; at most {MAX_TEXT_CHARS}) or holds "
                                 "a NUL character")

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
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{name} must be a finite number; got {value!r}")
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
