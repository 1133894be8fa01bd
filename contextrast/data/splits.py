"""Split names with a sequence filter, for checks on streets a model never saw: `train:without=0006R0` is the
train split minus one sequence, `train:only=0006R0` that sequence alone (a leave-one-sequence-out check).

A sample's group is its file stem up to the first `_` (CamVid's sequence, Cityscapes' city); several groups are
separated by `+` (`train:without=0001TP+0006R0`).
"""

from __future__ import annotations

from typing import NamedTuple

FILTERS = ("without", "only")


class SplitSpec(NamedTuple):
    split: str
    mode: str | None  # None | "without" | "only"
    groups: tuple[str, ...]


def parse_split(text: str) -> SplitSpec:
    """`train` → SplitSpec("train", None, ()); `train:without=0006R0` → SplitSpec("train", "without", ("0006R0",))."""
    split, sep, rest = str(text).partition(":")
    if not sep:
        return SplitSpec(split, None, ())
    mode, eq, value = rest.partition("=")
    groups = tuple(g for g in value.split("+") if g)
    if mode not in FILTERS or not eq or not groups:
        raise ValueError(f"split {text!r}: write NAME, NAME:without=GROUP or NAME:only=GROUP[+GROUP…] "
                         f"(a group is a file-name prefix before '_', e.g. camvid's sequence 0006R0)")
    return SplitSpec(split, mode, groups)


def sample_group(name: str) -> str:
    """The group of a sample name: its prefix before the first `_`."""
    return name.split("_", 1)[0]


def filter_samples(names: list[str], spec: SplitSpec) -> list[int]:
    """Indices of the samples (by name) that the split's filter keeps; refuses a filter that keeps none."""
    if spec.mode is None:
        return list(range(len(names)))
    groups = set(spec.groups)
    keep = [i for i, n in enumerate(names) if (sample_group(n) in groups) == (spec.mode == "only")]
    if not keep:
        present = sorted({sample_group(n) for n in names})
        raise ValueError(f"split {spec.split}:{spec.mode}={'+'.join(spec.groups)} keeps no sample; the groups of "
                         f"{spec.split} are {', '.join(present)}")
    return keep
