"""What a model card tells the views: which checkpoints can be compared (same classes, in the same order), the loss
settings the model was trained with (METHOD.md §2), and which projection heads that loss ever trained."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from contextrast.config import LossConfig, loss_config_from_card

ALL_HEADS = frozenset(range(4))  # E1..E4


class HasClasses(Protocol):
    classes: Sequence[str]
    loss: dict[str, Any]


def same_classes(a: Sequence[str], b: Sequence[str]) -> bool:
    return list(a) == list(b)


def comparable(cards: Mapping[str, HasClasses], name: str | None) -> list[str]:
    """The other checkpoints that predict exactly `name`'s classes (the only ones a pixel-wise comparison means
    something for); every checkpoint when `name` is unknown."""
    if name not in cards:
        return list(cards)
    return [n for n, c in cards.items() if n != name and same_classes(c.classes, cards[name].classes)]


def check_comparable(name_a: str, classes_a: Sequence[str], name_b: str, classes_b: Sequence[str]) -> None:
    """Raise ValueError unless both checkpoints predict the same classes."""
    if not same_classes(classes_a, classes_b):
        raise ValueError(f"{name_b} predicts other classes ({', '.join(classes_b)}) than {name_a} "
                         f"({', '.join(classes_a)}); compare checkpoints trained on the same classes")


def check_dataset_classes(dataset_classes: Sequence[str], model_classes: Sequence[str]) -> None:
    if not same_classes(dataset_classes, model_classes):
        raise ValueError(f"the dataset's classes ({', '.join(dataset_classes)}) are not the model's "
                         f"({', '.join(model_classes)}); pick data with the same classes")


def void_labels(card: HasClasses) -> tuple[int, ...]:
    """The raw "no class" values of the label set the checkpoint was trained on (its card's dataset name and
    classes), e.g. (11,) for CamVid: an annotation of that dataset uses them, and they are read as ignore."""
    from contextrast.data import classes as label_sets
    from contextrast.data.info import DatasetInfo

    name = str(getattr(card, "dataset", "")).split(":", 1)[0].lower()
    for info in vars(label_sets).values():
        if isinstance(info, DatasetInfo) and info.name == name and same_classes(info.classes, card.classes):
            return info.void
    return ()


def training_loss(card: HasClasses) -> LossConfig:
    """The loss configuration the checkpoint was trained with (defaults for a card without a loss section)."""
    return loss_config_from_card(card.loss or {})


def trained_heads(card: HasClasses) -> frozenset[int]:
    """The projection heads (layer indices 0..3 = E1..E4) that the training loss gave a gradient: none for `ce`,
    one for `pixel_contrast` (its `pc_layer`), all four for the CCL losses."""
    cfg = training_loss(card)
    if cfg.name == "ce":
        return frozenset()
    if cfg.name == "pixel_contrast":
        return frozenset({int(cfg.pc_layer)})
    return ALL_HEADS


def untrained_head_message(name: str, card: HasClasses, layer: int, what: str) -> str | None:
    """A sentence saying why `what` (e.g. "embeddings") is not drawn for `layer` of checkpoint `name`, or None
    when that head was trained."""
    heads = trained_heads(card)
    if layer in heads:
        return None
    loss = training_loss(card).name
    if not heads:
        return (f"`{name}` was trained with the `{loss}` loss: its projection heads were never trained, so no {what} "
                f"is drawn from them (it would show random projections). Pick a checkpoint trained with a "
                f"contrastive loss.")
    shown = ", ".join(f"E{h + 1}" for h in sorted(heads))
    return (f"`{name}` was trained with `{loss}`, which trains only the head of {shown}: the head of E{layer + 1} "
            f"was never trained, so no {what} is drawn from it. Pick {shown}.")
