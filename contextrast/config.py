"""Plain dataclass configs for model, loss and training, with YAML in/out and `key=value` overrides.

Defaults are the readings fixed in ../shared/docs/METHOD.md (§1 network, §2 losses). A config is
plain values only, so it round-trips through a JSON model card and a YAML file unchanged.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar, get_type_hints

import yaml

from contextrast.registry import check_choice

ALIGN_CHOICES = ("srm", "srm_nomask", "srm_sigmoid", "bilinear")
CONTEXT_CHOICES = ("crm", "crm_f4", "ppm", "none")
LOSS_CHOICES = ("ce", "pixel_contrast", "ccl", "contextrast")
NEGATIVE_CHOICES = ("bane+random", "bane", "random")
IGNORE_INDEX = 255  # every dataset maps its void/ignore value to this (METHOD.md §2 "ignore label")


@dataclass
class ModelConfig:
    """SCRNet (METHOD.md §1). `backbone` is a registry name or `timm:<name>`."""

    backbone: str = "resnet18_light"
    num_classes: int = 11
    in_channels: int = 3
    align: str = "srm"
    context: str = "crm"
    decoder_channels: int = 128
    aux_head: bool = False
    embed_dim: int = 256  # projection-head output size (METHOD.md §2 "Embeddings")

    def __post_init__(self) -> None:
        check_choice("align", self.align, ALIGN_CHOICES)
        check_choice("context", self.context, CONTEXT_CHOICES)
        for name in ("num_classes", "in_channels", "decoder_channels", "embed_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}")


@dataclass
class LossConfig:
    """Training loss (METHOD.md §2). `name` picks ce | pixel_contrast | ccl | contextrast."""

    name: str = "contextrast"
    alpha: float = 0.1  # weight of the contrastive term [ext]
    tau: float = 0.1  # InfoNCE temperature [choice]
    layer_weights: tuple[float, float, float, float] = (0.1, 0.3, 0.7, 1.0)  # λ_i [ext]
    w_h: float = 0.5  # weight of the deepest layer's anchor in the contextual update [choice]
    max_positives: int = 256  # P per anchor [choice]
    max_negatives: int = 512  # K per anchor [choice]
    bane_percent: float = 50.0  # K_s: keep error pixels in the lowest K_s % of distances [ext]
    negatives: str = "bane+random"  # only read by `contextrast`; `ccl` is random by definition
    warmup: float = 0.1  # fraction of training with the contrastive term off [choice]
    aux_weight: float = 0.4  # auxiliary CE head weight (METHOD.md §1)
    # pixel_contrast baseline (Wang et al. ICCV 2021), METHOD.md §2 "Baselines"
    pc_tau: float = 0.1
    pc_max_anchors: int = 1024
    pc_max_per_class: int = 100

    def __post_init__(self) -> None:
        check_choice("loss", self.name, LOSS_CHOICES)
        check_choice("negatives", self.negatives, NEGATIVE_CHOICES)
        self.layer_weights = tuple(float(w) for w in self.layer_weights)  # type: ignore[assignment]
        if len(self.layer_weights) != 4:
            raise ValueError(f"layer_weights needs 4 values; got {self.layer_weights}")
        if not 0.0 <= self.w_h <= 1.0:
            raise ValueError(f"w_h must lie in [0, 1]; got {self.w_h}")
        if not 0.0 < self.bane_percent <= 100.0:
            raise ValueError(f"bane_percent must lie in (0, 100]; got {self.bane_percent}")
        if self.tau <= 0 or self.pc_tau <= 0:
            raise ValueError("temperatures must be positive")
        if not 0.0 <= self.warmup < 1.0:
            raise ValueError(f"warmup must lie in [0, 1); got {self.warmup}")


@dataclass
class TrainConfig:
    """One training run: data, schedule, optimiser, and where it writes."""

    data: str = "toy"  # dataset spec, e.g. camvid:/path/to/camvid
    train_split: str = "train"
    val_split: str = "val"
    crop: tuple[int, int] = (256, 256)
    scale: tuple[float, float] = (0.5, 2.0)
    batch_size: int = 8
    iterations: int = 1000
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    grad_accum: int = 1
    amp: bool = True  # only takes effect on CUDA
    sync_bn: bool = False
    val_interval: int = 200
    ckpt_interval: int = 100
    log_interval: int = 10
    seed: int = 0
    workers: int = 2
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    run_dir: str = "runs/default"
    init_from: str = ""  # a checkpoint directory to fine-tune from

    def __post_init__(self) -> None:
        check_choice("optimizer", self.optimizer, ("sgd", "adamw"))
        self.crop = tuple(int(c) for c in self.crop)  # type: ignore[assignment]
        self.scale = tuple(float(s) for s in self.scale)  # type: ignore[assignment]
        if self.lr <= 0:
            raise ValueError(f"lr must be positive; got {self.lr}")
        for name in ("batch_size", "iterations", "grad_accum", "val_interval", "ckpt_interval"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}")
        if len(self.crop) != 2 or min(self.crop) < 32:
            raise ValueError(f"crop must be two sizes ≥ 32 (the network's stride); got {self.crop}")


@dataclass
class ExperimentConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        unknown = set(d) - {"model", "loss", "train"}
        if unknown:
            raise ValueError(f"unknown config sections {sorted(unknown)}; expected model, loss, train")
        return cls(
            model=from_dict(ModelConfig, d.get("model", {})),
            loss=from_dict(LossConfig, d.get("loss", {})),
            train=from_dict(TrainConfig, d.get("train", {})),
        )


C = TypeVar("C")
SECTIONS = {"ModelConfig": "model", "LossConfig": "loss", "TrainConfig": "train"}


class Yaml12Loader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats: `1e-3` and `1E5` are numbers, not text."""


Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$"),
    list("-+0123456789."),
)


def _kind(annotation: Any) -> str:
    return {int: "a whole number", float: "a number", bool: "true or false", str: "text"}.get(annotation, "a value")


def _check_scalar(key: str, value: Any, annotation: Any) -> Any:
    """`value` as the field's type (an int is accepted for a float), or ValueError naming `key`."""
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError(f"{key} must be a finite number; got {value!r}")
        return float(value)
    if annotation is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if annotation in (bool, str) and isinstance(value, annotation):
        return value
    if annotation not in (int, float, bool, str):
        return value
    raise ValueError(f"{key} must be {_kind(annotation)}; got {value!r}")


def check_field_type(key: str, value: Any, annotation: Any) -> Any:
    """Check one config value against its field's type hint (int, float, bool, str, tuple[...]);
    returns it converted (int → float, list → tuple), or raises ValueError naming `key`."""
    if typing.get_origin(annotation) is tuple:
        items = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)) or len(value) != len(items):
            example = "[" + ", ".join("64" if t is int else "0.5" for t in items) + "]"
            raise ValueError(f"{key} must be a list of {len(items)} {_kind(items[0]).removeprefix('a ')}s, e.g. "
                             f"{example}; got {value!r}")
        return tuple(_check_scalar(f"{key}[{i}]", v, t) for i, (v, t) in enumerate(zip(value, items)))
    return _check_scalar(key, value, annotation)


def from_dict(cls: type[C], d: dict[str, Any] | None) -> C:
    """Build dataclass `cls` from a dict, refusing unknown keys with the list of known ones, and values of
    the wrong type (or NaN/inf numbers) with a one-line message naming the key."""
    if d is not None and not isinstance(d, dict):
        raise ValueError(f"{SECTIONS.get(cls.__name__, cls.__name__)} must be a mapping of keys to values; got {d!r}")
    d = dict(d or {})
    known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
    unknown = set(d) - known
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys {sorted(unknown)}; known: {sorted(known)}")
    hints = get_type_hints(cls)
    section = SECTIONS.get(cls.__name__, cls.__name__)
    checked = {k: check_field_type(f"{section}.{k}", v, hints[k]) for k, v in d.items()}
    return cls(**checked)


def _parse_value(text: str, annotation: Any) -> Any:
    """One `--set` value as YAML 1.2 (`1e-3` a float, `[360, 480]` a list); text fields keep the text."""
    try:
        value = yaml.load(text, Loader=Yaml12Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError:
        value = text
    if annotation is str and value is not None and not isinstance(value, str):
        return text
    return value


def apply_overrides(cfg: ExperimentConfig, overrides: list[str]) -> ExperimentConfig:
    """Apply `section.key=value` overrides (values parsed as YAML 1.2: `train.lr=1e-3`, `train.crop=[360,480]`);
    a wrong key or a value of the wrong type is a ValueError naming the key."""
    d = cfg.to_dict()
    for item in overrides:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ValueError(f"override {item!r} must look like section.key=value, e.g. train.lr=0.01")
        key, text = item.split("=", 1)
        section, name = key.strip().split(".", 1)
        if section not in d:
            raise ValueError(f"unknown config section {section!r}; expected model, loss, train")
        section_cls = {"model": ModelConfig, "loss": LossConfig, "train": TrainConfig}[section]
        hints = get_type_hints(section_cls)
        if name not in hints:
            raise ValueError(f"unknown {section} key {name!r}; known: {sorted(hints)}")
        d[section][name] = check_field_type(key.strip(), _parse_value(text.strip(), hints[name]), hints[name])
    return ExperimentConfig.from_dict(d)


def load_config(path: str | Path | None, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML experiment config (missing sections/keys take defaults), then apply overrides."""
    cfg = ExperimentConfig()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise FileNotFoundError(f"config file {p} does not exist")
        try:
            data = yaml.load(p.read_text(), Loader=Yaml12Loader) or {}  # noqa: S506 - a SafeLoader subclass
        except yaml.YAMLError as e:
            raise ValueError(f"{p} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise ValueError(f"{p}: expected a mapping with model/loss/train sections")
        cfg = ExperimentConfig.from_dict(data)
    return apply_overrides(cfg, overrides or [])


def save_config(cfg: ExperimentConfig, path: str | Path) -> None:
    Path(path).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def replace(obj: C, **changes: Any) -> C:
    """`dataclasses.replace` re-exported so callers need not import dataclasses."""
    return dataclasses.replace(obj, **changes)  # type: ignore[type-var]
