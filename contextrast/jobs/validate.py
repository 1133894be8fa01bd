"""Check a fine-tuning job when it is submitted, not at iteration 500: build what the job will build.

`validate_job(params)` builds the full `ExperimentConfig` the job will train with (which refuses a
non-positive lr, batch 0, an unknown loss, a value of the wrong type …), opens both splits of the
dataset spec and reads the size of one training picture from its header (a crop larger than the
images is refused; nothing is decoded in the caller's process), builds the model on the meta device
(an unknown backbone, or a model beyond the size bounds of `contextrast.limits`, is refused), checks
a base checkpoint's card and the shapes of its weights against that model (a truncated or foreign
checkpoint is refused), and checks the device against this machine.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from contextrast import limits
from contextrast.config import ExperimentConfig, replace
from contextrast.jobs.params import JobParams, build_job_config
from contextrast.paths import PathPolicy

__all__ = ["JobParams", "build_job_config", "validate_job"]


@dataclass
class DatasetFacts:
    num_classes: int
    train_images: int
    image_size: tuple[int, int]  # (H, W) of the first training picture


def check_dataset(cfg: ExperimentConfig, gpus: int = 1) -> DatasetFacts:
    """Open both splits of the dataset spec and read one training picture's size (header only)."""
    from contextrast.data import build_dataset

    t = cfg.train
    train_set = build_dataset(t.data, t.train_split)
    build_dataset(t.data, t.val_split)
    per_rank = t.batch_size // (gpus * t.grad_accum)
    if len(train_set) < max(per_rank, 1):
        raise ValueError(f"dataset {t.data!r} has {len(train_set)} {t.train_split} images, fewer than one batch "
                         f"of {per_rank}")
    h, w = train_set.image_size(0)
    if t.crop[0] > h or t.crop[1] > w:
        raise ValueError(f"crop {t.crop[0]}×{t.crop[1]} is larger than the images of {t.data!r} ({h}×{w}); "
                         f"pick a crop of at most {h}×{w}")
    return DatasetFacts(train_set.info.num_classes, len(train_set), (h, w))


def check_training_values(cfg: ExperimentConfig) -> None:
    """Values the trainer divides by or hands to a DataLoader."""
    t = cfg.train
    if t.log_interval < 1:
        raise ValueError(f"train.log_interval must be a positive integer; got {t.log_interval!r}")
    if t.workers < 0:
        raise ValueError(f"train.workers must be 0 or more; got {t.workers!r}")


def check_model(cfg: ExperimentConfig, num_classes: int) -> None:
    """Build the job's model on the meta device (as the trainer will: with the dataset's class count)."""
    limits.check_model_size(replace(cfg.model, num_classes=num_classes))


def check_base_checkpoint(cfg: ExperimentConfig, num_classes: int) -> None:
    """The checkpoint the job starts from: a valid card, and weights whose names and shapes fit the
    model (the classifier may differ in class count). Reads the safetensors header, not the weights."""
    path = cfg.train.init_from
    if not path:
        return
    import torch
    from safetensors import SafetensorError, safe_open

    from contextrast.config import model_config_from_card
    from contextrast.engine.card import read_card
    from contextrast.engine.checkpoint_files import WEIGHTS_FILE
    from contextrast.models import build_model

    card = read_card(path)
    with torch.device("meta"):
        expected = {k: tuple(v.shape) for k, v in build_model(model_config_from_card(card.model)).state_dict().items()}
        job_keys = set(build_model(replace(cfg.model, num_classes=num_classes)).state_dict())
    try:
        with safe_open(f"{path}/{WEIGHTS_FILE}", framework="pt") as f:
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError) as e:
        raise ValueError(f"base checkpoint {path} has unreadable weights ({e}); it may be truncated") from None
    wrong = sorted(k for k in set(expected) | set(found) if expected.get(k) != found.get(k))
    if wrong:
        raise ValueError(f"the weights of base checkpoint {path} do not fit its model card: "
                         f"{', '.join(wrong[:3])}{' …' if len(wrong) > 3 else ''}")
    if set(expected) != job_keys:
        raise ValueError(f"base checkpoint {path} has another architecture than this job's model")


def check_device(device: str, gpus: int) -> None:
    import torch

    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} was asked for but this machine has no CUDA GPU (use auto or cpu)")
    if device.startswith("cuda:") and int(device.split(":")[1]) >= torch.cuda.device_count():
        raise ValueError(f"device {device!r} was asked for but this machine has {torch.cuda.device_count()} CUDA "
                         f"GPU(s), numbered from 0")
    if gpus > 1 and torch.cuda.device_count() < gpus:
        raise ValueError(f"gpus={gpus} but this machine has {torch.cuda.device_count()} CUDA GPU(s)")


def validate_job(params: JobParams | dict[str, Any], devices_here: bool = True,
                 paths: PathPolicy | None = None) -> tuple[JobParams, ExperimentConfig]:
    """(params, the config the job will train with), or ValueError/FileNotFoundError saying what is wrong.

    `devices_here`: check the device against this machine's GPUs (false when workers run elsewhere).
    `paths`: the folders the submitter may name (a web client); the dataset folder and the base
    checkpoint must lie inside them, and nothing outside is read.
    """
    p = params if isinstance(params, JobParams) else JobParams.from_dict(dict(params))
    if paths is not None and p.base_checkpoint:
        p = dataclasses.replace(p, base_checkpoint=paths.checkpoint(p.base_checkpoint))
    cfg = build_job_config(p)
    if paths is not None:
        cfg = paths.job_config(cfg)
    check_training_values(cfg)
    facts = check_dataset(cfg, p.gpus)
    check_model(cfg, facts.num_classes)
    check_base_checkpoint(cfg, facts.num_classes)
    if devices_here:
        check_device(cfg.train.device, p.gpus)
    return p, replace(cfg, train=replace(cfg.train, run_dir=""))
