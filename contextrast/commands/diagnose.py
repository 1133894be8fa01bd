"""`contextrast diagnose`: what a checkpoint's modules do on a labelled split (METHOD.md §4)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = ("what a model's modules do: BANE's kept share per layer at K_s 25/50/75, SRM's mean translation, large-offset "
        "share and mask entropy, CRM's attention entropy, and mIoU with SRM offsets, the mask or CRM switched off")
EXAMPLES = """  contextrast diagnose --checkpoint checkpoints/camvid-scrnet-contextrast --data camvid:data/camvid --split val
  contextrast diagnose --checkpoint checkpoints/toy-scrnet --data toy --split val --max-images 8 --json diag.json
  contextrast diagnose --checkpoint runs/camvid/final --data camvid:$CAMVID --split train:only=0006R0 \\
      --set loss.bane_rule=percentile --set loss.bane_distance_stride=0     # BANE as the old rule selects"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (model.safetensors + model_card.json)")
    p.add_argument("--data", required=True, metavar="SPEC", help="dataset spec, e.g. camvid:/path/to/camvid or toy")
    p.add_argument("--split", default="val", help="split (or a filtered one, train:only=0006R0); default: val")
    p.add_argument("--max-images", type=int, metavar="N", help="only the first N images")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="loss.KEY=VALUE",
                   help="BANE settings other than the model card's, e.g. --set loss.bane_rule=percentile")
    p.add_argument("--json", metavar="OUT", help="write the figures as JSON to this file")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    p.add_argument("--seed", type=int, default=0, help="seed of BANE's random tie-breaks (default: 0)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from contextrast.analysis.diagnose import diagnose, summary_lines
    from contextrast.config import ExperimentConfig, apply_overrides, loss_config_from_card
    from contextrast.data import build_dataset
    from contextrast.engine.checkpoint import load_checkpoint
    from contextrast.engine.inference import resolve_device

    if args.max_images is not None and args.max_images < 1:
        raise ValueError(f"--max-images must be at least 1; got {args.max_images}")
    if any(not o.startswith("loss.") for o in args.overrides):
        raise ValueError("diagnose takes loss.* overrides only (BANE's settings); the model comes from the card")
    device = resolve_device(args.device)
    model, card = load_checkpoint(args.checkpoint, device=device)
    dataset = build_dataset(args.data, args.split)
    if dataset.info.num_classes != model.num_classes:
        raise ValueError(f"dataset {args.data} ({args.split}) has {dataset.info.num_classes} classes but checkpoint "
                         f"{args.checkpoint} predicts {model.num_classes}; diagnose it on data with the same classes")
    loss_cfg = loss_config_from_card(card.loss or {})
    if args.overrides:
        loss_cfg = apply_overrides(ExperimentConfig(loss=loss_cfg), args.overrides).loss
    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        total = len(dataset) if args.max_images is None else min(len(dataset), args.max_images)
        bar = tqdm(total=total, desc=f"diagnose {args.split}", unit="img", file=sys.stderr, dynamic_ncols=True)
    result = diagnose(model, dataset, loss_cfg, args.max_images, args.seed,
                      progress=(lambda done, _: bar.update(done - bar.n)) if bar is not None else None)
    if bar is not None:
        bar.close()
    result = {"checkpoint": str(args.checkpoint), "data": args.data, "split": args.split, **result}
    print("\n".join(summary_lines(result)))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"wrote {args.json}")
    return 0
