"""The model card: what a checkpoint is — enough to rebuild the model, label its output, and judge it.

`model_card.json` is the card (read back by `read_card`); `README.md` is generated from it by
`render_readme` and never read back.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from contextrast.config import IGNORE_INDEX
from contextrast.engine.atomic import resolve_dir
from contextrast.engine.checkpoint_files import (
    CARD_FILE,
    README_FILE,
    WEIGHTS_FILE,
    read_json,
    require_file,
    write_json,
)
from contextrast.limits import check_model_size


@dataclass
class ModelCard:
    """What a checkpoint is: enough to rebuild the model, label its output, and judge it."""

    name: str
    model: dict[str, Any]  # ModelConfig fields, fed to contextrast.models.build_model
    dataset: str
    classes: list[str]
    palette: list[list[int]]  # one [r, g, b] per class
    ignore_index: int = IGNORE_INDEX
    loss: dict[str, Any] = field(default_factory=dict)  # LossConfig fields
    train: dict[str, Any] = field(default_factory=dict)  # TrainConfig fields
    metrics: dict[str, Any] = field(default_factory=dict)  # e.g. the JSON of engine.evaluate.evaluate
    iteration: int = 0
    training_time_s: float = 0.0
    hardware: str = ""
    code_version: str = ""
    created: str = ""  # ISO 8601 UTC; filled by save_checkpoint when empty
    # the earlier training stages this one was initialised from, oldest first (see `lineage_of`); empty for a
    # model trained from scratch. `training_time_s` and `iteration` count this stage only.
    lineage: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.palette and len(self.palette) != len(self.classes):
            raise ValueError(f"palette has {len(self.palette)} colours for {len(self.classes)} classes")
        for colour in self.palette:
            if len(colour) != 3 or not all(0 <= int(v) <= 255 for v in colour):
                raise ValueError(f"palette colours must be [r, g, b] with values 0..255; got {colour!r}")
        self.palette = [[int(v) for v in colour] for colour in self.palette]
        if "num_classes" in self.model and self.classes and int(self.model["num_classes"]) != len(self.classes):
            raise ValueError(
                f"model.num_classes={self.model['num_classes']} but the card lists {len(self.classes)} classes"
            )

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self)))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelCard:
        if not isinstance(d, dict):
            raise ValueError(f"a model card must be a JSON object; got {type(d).__name__}")
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(d) - set(known))
        if unknown:
            raise ValueError(f"unknown model card keys {unknown}; known: {known}")
        required = [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"model card lacks required keys {missing}")
        return cls(**d)


LINEAGE_FILE = "lineage.json"  # in a run directory: the stages its `train.init_from` checkpoint carried


def lineage_of(parent: ModelCard) -> list[dict[str, Any]]:
    """The lineage a model initialised from `parent` carries: `parent`'s own stages, then `parent` itself
    (its name, iterations, training time, recipe and provenance), oldest first."""
    stage = {"name": parent.name, "iteration": parent.iteration, "training_time_s": parent.training_time_s,
             "train": dict(parent.train), "hardware": parent.hardware, "code_version": parent.code_version,
             "created": parent.created}
    return [*parent.lineage, stage]


def read_run_lineage(run_dir: str | Path) -> list[dict[str, Any]]:
    """The lineage a run directory recorded when it started (`LINEAGE_FILE`); [] when it has none."""
    path = Path(run_dir) / LINEAGE_FILE
    if not path.is_file():
        return []
    value = read_json(path)
    if not isinstance(value, list) or not all(isinstance(s, dict) for s in value):
        raise ValueError(f"{path} must hold a JSON list of training stages")
    return value


def earlier_training_time_s(lineage: list[dict[str, Any]]) -> float:
    """Training time of the stages of a lineage (what came before a card's own stage)."""
    return sum(float(s.get("training_time_s", 0.0)) for s in lineage)


def total_training_time_s(card: ModelCard) -> float:
    """Training time of the card's stage and of every stage in its lineage."""
    return card.training_time_s + earlier_training_time_s(card.lineage)


def render_readme(card: ModelCard, location: str | None = None) -> str:
    """Markdown model card generated from the JSON card (never parsed back); `location`: the checkpoint path."""
    where = location or card.name
    m = card.metrics or {}
    lines = [f"# {card.name}", "", f"SCRNet trained on **{card.dataset}** ({len(card.classes)} classes).", ""]

    def pct(v: Any) -> str:
        return f"{100 * v:.2f}" if isinstance(v, (int, float)) else "n/a"

    # scalar entries only; IoU / accuracy fractions shown in %, everything else as it is
    scalars = [(k, v) for k, v in m.items() if v is None or isinstance(v, (int, float, str, bool))]
    if scalars:
        lines += ["## Results", "", "| metric | value |", "|---|---|"]
        for k, v in scalars:
            is_fraction = isinstance(v, float) and any(t in k.lower() for t in ("iou", "acc"))
            lines.append(f"| {k} | {pct(v) + ' %' if is_fraction else v} |")
        lines.append("")
    per_class = m.get("per_class_iou")
    lines += ["## Classes", "", "| id | class | colour | IoU % |", "|---|---|---|---|"]
    for i, name in enumerate(card.classes):
        colour = "#" + "".join(f"{v:02x}" for v in card.palette[i]) if i < len(card.palette) else ""
        iou = per_class.get(name) if isinstance(per_class, dict) else None
        lines.append(f"| {i} | {name} | `{colour}` | {pct(iou)} |")
    lines += ["", f"Ignore label: {card.ignore_index}", "", "## Model", "", "| key | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in card.model.items()]
    if card.loss:
        lines += ["", "## Loss", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in card.loss.items()]
    if card.train:
        lines += ["", "## Training", "", "| key | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in card.train.items()]
    lines += [
        "",
        "## Provenance",
        "",
        f"- iterations: {card.iteration}",
        f"- training time: {card.training_time_s / 3600:.2f} h ({card.training_time_s:.0f} s)"
        + (f" for this stage; {total_training_time_s(card) / 3600:.2f} h with the stages below" if card.lineage else ""),
        *[f"- initialised from {s['name']}: {s.get('iteration', '?')} iterations, "
          f"{float(s.get('training_time_s', 0)) / 3600:.2f} h, lr {s.get('train', {}).get('lr', '?')}, "
          f"created {s.get('created') or 'unknown'}" for s in reversed(card.lineage)],
        f"- hardware: {card.hardware or 'unknown'}",
        f"- code version: {card.code_version or 'unknown'}",
        f"- created: {card.created or 'unknown'}",
        "",
        "## Use",
        "",
        "```python",
        "from contextrast.engine.checkpoint import load_checkpoint",
        f'model, card = load_checkpoint("{where}")',
        "```",
        "",
        f"or `contextrast predict --checkpoint {where} IMAGE --out DIR`.",
        "",
        "Generated from `model_card.json`; edit that file, not this one.",
        "",
    ]
    return "\n".join(lines)


def write_card(card: ModelCard, d: Path, location: Path) -> None:
    """Write `model_card.json` and `README.md` into directory `d`; stamps `card.created` when empty.
    `location`: where the checkpoint will live (for the README's usage lines)."""
    if not card.created:
        card.created = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
    write_json(card.to_dict(), d / CARD_FILE)
    (d / README_FILE).write_text(render_readme(card, str(location)), encoding="utf-8")


def read_card(path: str | Path) -> ModelCard:
    """The `ModelCard` of checkpoint directory `path` (JSON only; the weights are not read)."""
    d = resolve_dir(path, f"{WEIGHTS_FILE} and {CARD_FILE}")
    f = require_file(d, CARD_FILE)
    data = read_json(f)
    try:
        card = ModelCard.from_dict(data)
        check_model_size(card.model)  # the model it describes can be built, within the bounds
        return card
    except (TypeError, ValueError) as e:
        raise ValueError(f"checkpoint {f} holds an invalid model card: {e}") from e
