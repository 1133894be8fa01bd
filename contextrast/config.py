"""Plain dataclass configs for model, loss and training, with YAML in/out and `key=value` overrides.

Defaults are the readings fixed in docs/METHOD.md (§1 network, §2 losses, §4 revisions). A config is
plain values only, so it round-trips through a JSON model card and a YAML file unchanged. Choices with
variants (backbone, align, context, loss, negatives, CRM energies) are checked against their registries, so a
variant is declared once, where it is implemented.
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

from contextrast.pixel_grid import GRIDS
from contextrast.registry import check_choice

IGNORE_INDEX = 255  # every dataset maps its void/ignore value to this (METHOD.md §2 "ignore label")

# Model-card values of switches added after the first checkpoints were written: a card without `grid` was trained
# with these, so it loads and behaves exactly as it was trained (METHOD.md §4).
LEGACY_MODEL = {"grid": "centred", "offset_bound": 0.0, "mask_init": "random", "channel_energy": "none",
                "spatial_energy": "none"}
LEGACY_LOSS = {"bane_distance_stride": 0, "bane_rule": "percentile", "skip_anchors_without_negatives": False,
               "detach_deep_anchor": False, "pc_layer": 3}
RENAMED_KEYS = {"LossConfig": {"warmup": "contrast_start"}}


def _model_registries():
    """The model registries, filled by importing `contextrast.models` (imported here, not at the top, because
    the models import this module)."""
    from contextrast.models import registry

    return registry


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
    grid: str = "strided"  # pixel-grid convention of every resampling (contextrast.pixel_grid, METHOD.md §4)
    offset_bound: float = 2.0  # SRM: Δ′ = b·tanh(raw/b) pixels of the step's grid; 0 = unbounded (METHOD.md §4)
    mask_init: str = "centre"  # SRM neighbour mask at start: centre (½ on the pixel) | random (plain conv init)
    channel_energy: str = "mean"  # CRM channel attention: scaling of X Xᵀ (models.registry.CHANNEL_ENERGIES)
    spatial_energy: str = "none"  # CRM spatial attention: scaling of Qᵀ K (models.registry.SPATIAL_ENERGIES)

    def __post_init__(self) -> None:
        reg = _model_registries()
        if not str(self.backbone).startswith("timm:"):
            reg.BACKBONES.check(self.backbone)
        reg.ALIGNS.check(self.align)
        reg.CONTEXTS.check(self.context)
        reg.CHANNEL_ENERGIES.check(self.channel_energy)
        reg.SPATIAL_ENERGIES.check(self.spatial_energy)
        check_choice("grid", self.grid, GRIDS)
        check_choice("mask_init", self.mask_init, ("centre", "random"))
        if not 0.0 <= float(self.offset_bound) < float("inf"):
            raise ValueError(f"offset_bound must be a finite number ≥ 0 (0 = unbounded); got {self.offset_bound!r}")
        for name in ("num_classes", "in_channels", "decoder_channels", "embed_dim"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer; got {getattr(self, name)!r}")


@dataclass
class LossConfig:
    """Training loss (METHOD.md §2). `name` picks a registered loss (`contextrast.losses.LOSSES`)."""

    name: str = "contextrast"
    alpha: float = 0.1  # weight of the contrastive term [ext]
    tau: float = 0.1  # InfoNCE temperature [choice]
    layer_weights: tuple[float, float, float, float] = (0.1, 0.3, 0.7, 1.0)  # λ_i [ext]
    w_h: float = 0.5  # weight of the deepest layer's anchor in the contextual update [choice]
    max_positives: int = 256  # P per anchor [choice]
    max_negatives: int = 512  # K per anchor [choice]
    bane_percent: float = 50.0  # K_s: keep the K_s % of error pixels nearest their region's edge [ext]
    bane_distance_stride: int = 2  # BANE distances on the stride-s grid (finer than the layers); 0 = each layer's
    bane_rule: str = "rank"  # rank: K_s % by (distance, seeded random tie-break) | percentile: ≤ K_s-th percentile
    negatives: str = "bane+random"  # read by `contextrast` (losses.NEGATIVES); `ccl` is random by definition
    skip_anchors_without_negatives: bool = True  # leave anchors with no negative out of the class mean
    detach_deep_anchor: bool = True  # the deepest layer's anchor enters the contextual update without gradient
    contrast_start: float = 0.1  # fraction of training before the contrastive term is switched on [choice]
    aux_weight: float = 0.4  # auxiliary CE head weight (METHOD.md §1)
    ce: str = "plain"  # plain | ohem (online hard example mining: the hardest pixels, ≥ ohem_min_kept of them)
    ohem_threshold: float = 0.7  # OHEM keeps pixels whose true-class probability is below this
    ohem_min_kept: int = 100_000  # ... and at least this many per batch
    class_weights: str = "none"  # none | log_frequency (ENet's 1 / ln(1.02 + p_class), from the train split)
    # pixel_contrast baseline (Wang et al. ICCV 2021), METHOD.md §2 "Baselines"
    pc_tau: float = 0.1
    pc_max_anchors: int = 1024
    pc_max_per_class: int = 100
    pc_layer: int = 1  # encoder layer of its embedding: 1 = stride 8, the method's own resolution; 3 = stride 32

    def __post_init__(self) -> None:
        import contextrast.losses  # noqa: F401  (lazy: the losses import this module; importing fills the registries)
        from contextrast.losses.registry import LOSSES, NEGATIVES

        LOSSES.check(self.name)
        NEGATIVES.check(self.negatives)
        check_choice("bane_rule", self.bane_rule, ("rank", "percentile"))
        check_choice("ce", self.ce, ("plain", "ohem"))
        check_choice("class_weights", self.class_weights, ("none", "log_frequency"))
        if int(self.bane_distance_stride) not in (0, 1, 2, 4):
            raise ValueError(f"bane_distance_stride must be 0 (each layer's grid), 1, 2 or 4; got {self.bane_distance_stride!r}")
        if int(self.pc_layer) not in (0, 1, 2, 3):
            raise ValueError(f"pc_layer must be an encoder layer 0..3; got {self.pc_layer!r}")
        self.layer_weights = tuple(float(w) for w in self.layer_weights)  # type: ignore[assignment]
        if len(self.layer_weights) != 4:
            raise ValueError(f"layer_weights needs 4 values; got {self.layer_weights}")
        if not 0.0 <= self.w_h <= 1.0:
            raise ValueError(f"w_h must lie in [0, 1]; got {self.w_h}")
        if not 0.0 < self.bane_percent <= 100.0:
            raise ValueError(f"bane_percent must lie in (0, 100]; got {self.bane_percent}")
        if self.tau <= 0 or self.pc_tau <= 0:
            raise ValueError("temperatures must be positive")
        if not 0.0 <= self.contrast_start < 1.0:
            raise ValueError(f"contrast_start must lie in [0, 1); got {self.contrast_start}")


@dataclass
class TrainConfig:
    """One training run: data, schedule, optimiser, and where it writes."""

    data: str = "toy"  # dataset spec, e.g. camvid:/path/to/camvid
    train_split: str = "train"  # a split name, or a filtered one: train:without=0006R0 (contextrast.data.splits)
    val_split: str = "val"  # the split validated during training, e.g. train:only=0006R0 (a held-out sequence)
    crop: tuple[int, int] = (256, 256)
    scale: tuple[float, float] = (0.5, 2.0)
    batch_size: int = 8
    iterations: int = 1000
    optimizer: str = "sgd"  # sgd | adamw
    lr: float = 0.01
    momentum: float = 0.9
    weight_decay: float = 5e-4
    poly_power: float = 0.9
    lr_warmup: int = 0  # iterations of linear LR warm-up from 0 before the poly schedule
    offset_lr_scale: float = 1.0  # SRM offset heads train at lr × this (deformable-convolution practice: 0.1)
    ema_decay: float = 0.0  # EMA of the weights (0 = off); when on, validation and checkpoints use the EMA
    grad_accum: int = 1
    amp: bool = True  # fp16 autocast on CUDA
    cpu_bf16: bool = False  # bf16 autocast on CPU (only worth it where the CPU has bf16 units)
    channels_last: bool = False  # channels_last memory format for training
    compile: bool = False  # torch.compile the forward pass (first iterations pay the compilation)
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
        if self.lr_warmup < 0 or not 0.0 <= self.ema_decay < 1.0 or self.offset_lr_scale < 0:
            raise ValueError("lr_warmup must be ≥ 0, ema_decay in [0, 1), offset_lr_scale ≥ 0")
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
    """Build dataclass `cls` from a dict, refusing unknown keys with the list of known ones (renamed keys,
    `RENAMED_KEYS`, are read under their new name), and values of the wrong type (or NaN/inf numbers) with a
    one-line message naming the key."""
    if d is not None and not isinstance(d, dict):
        raise ValueError(f"{SECTIONS.get(cls.__name__, cls.__name__)} must be a mapping of keys to values; got {d!r}")
    d = dict(d or {})
    for old, new in RENAMED_KEYS.get(cls.__name__, {}).items():
        if old in d:
            if new in d:
                raise ValueError(f"{cls.__name__}: give {new!r} only ({old!r} is its former name)")
            d[new] = d.pop(old)
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
        name = RENAMED_KEYS.get(section_cls.__name__, {}).get(name, name)
        if name not in hints:
            raise ValueError(f"unknown {section} key {name!r}; known: {sorted(hints)}")
        d[section][name] = check_field_type(f"{section}.{name}", _parse_value(text.strip(), hints[name]), hints[name])
    return ExperimentConfig.from_dict(d)


def model_config_from_card(d: dict[str, Any]) -> ModelConfig:
    """The `ModelConfig` of a model card's `model` section; a card from before the `grid` switch gets the
    values it was trained with (`LEGACY_MODEL`)."""
    d = dict(d)
    if "grid" not in d:
        d = {**LEGACY_MODEL, **d}
    return from_dict(ModelConfig, d)


def loss_config_from_card(d: dict[str, Any]) -> LossConfig:
    """The `LossConfig` of a model card's `loss` section (older cards: `LEGACY_LOSS` and renamed keys)."""
    d = dict(d)
    if "contrast_start" not in d:
        d = {**LEGACY_LOSS, **d}
    return from_dict(LossConfig, d)


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
