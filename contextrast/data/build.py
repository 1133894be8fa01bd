"""Dataset specs (`camvid:/data/camvid`, `toy:n=64,size=96x128`) → dataset objects, via `DATASETS`."""

from __future__ import annotations

from typing import NamedTuple

# imported for their registrations in DATASETS
from contextrast.data import ade20k, bdd100k, camvid, cityscapes, coco_stuff, folder, pascal_context, toy  # noqa: F401
from contextrast.data.base import SegmentationDataset, Transform
from contextrast.data.registry import DATASETS
from contextrast.data.splits import filter_samples, parse_split

SPEC_FORMS = ("camvid:/path", "cityscapes:/path", "ade20k:/path", "pascal_context:/path", "coco_stuff:/path",
              "bdd100k:/path", "folder:/path", "toy", "toy:n=64,size=96x128,seed=0")


class DatasetSpec(NamedTuple):
    name: str
    root: str | None
    options: dict[str, str]


def parse_spec(spec: str) -> DatasetSpec:
    """`name:root` for datasets on disk, `name` or `name:key=value,...` for generated ones (toy).

    Only the first colon separates, so roots may contain colons. Unknown names, a missing root and
    malformed options raise ValueError naming the accepted forms.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"empty dataset spec; use one of: {', '.join(SPEC_FORMS)}")
    name, sep, rest = spec.strip().partition(":")
    name = name.strip().lower().replace("-", "_")
    cls = DATASETS.get(name)
    if getattr(cls, "needs_root", True):
        if not rest.strip():
            raise ValueError(f"dataset spec {spec!r} needs a root folder: {name}:/path/to/{name}")
        return DatasetSpec(name, rest.strip(), {})
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"bad option {item!r} in dataset spec {spec!r}; write key=value, e.g. toy:n=64,size=96x128")
        options[key.strip()] = value.strip()
    allowed = getattr(cls, "OPTIONS", ())
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {', '.join(unknown)} for dataset {name!r}; "
                         f"allowed: {', '.join(allowed) or '(none)'}")
    return DatasetSpec(name, None, options)


def build_dataset(spec: str, split: str = "train", transform: Transform | None = None) -> SegmentationDataset:
    """The dataset a spec names, for one split (or a filtered one, `train:without=0006R0`, `contextrast.data.splits`).
    Bad roots raise FileNotFoundError naming the expected layout; unknown splits raise ValueError listing the
    available ones."""
    parsed = parse_spec(spec)
    split_spec = parse_split(split)
    cls = DATASETS.get(parsed.name)
    if parsed.root is not None:
        dataset = cls(parsed.root, split=split_spec.split, transform=transform)
    else:
        dataset = cls(split=split_spec.split, transform=transform, **parsed.options)
    if split_spec.mode is not None:
        if not dataset.samples:
            raise ValueError(f"dataset {parsed.name!r} is generated, not files: split filters ({split}) need a "
                             "dataset of named image files")
        keep = filter_samples(dataset.names, split_spec)
        dataset.samples = [dataset.samples[i] for i in keep]
        dataset.split = split
    return dataset
