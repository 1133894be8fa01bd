from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from contextrast.commands._common import add_precision_argument

HELP = "evaluate a checkpoint on a dataset split: per-class IoU / accuracy / boundary IoU, mIoU, aAcc, fwIoU"
EXAMPLES = """  contextrast eval --checkpoint checkpoints/camvid-scrnet-ce --data camvid:$CAMVID --split test
  contextrast eval --checkpoint runs/camvid/final --data camvid:$CAMVID --split val \\
      --flip --scales 0.75 1.0 1.25 --json results/camvid_val_msflip.json
  contextrast eval --checkpoint runs/toy/final --data toy:n=8,size=64x80 --split val --max-images 4"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (model.safetensors + model_card.json)")
    p.add_argument("--data", required=True, metavar="SPEC", help="dataset spec, e.g. camvid:/path/to/camvid or toy")
    p.add_argument("--split", default="val", help="dataset split (default: val)")
    p.add_argument("--json", metavar="OUT", help="also write the metrics as JSON to this file")
    p.add_argument("--flip", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--scales", nargs="+", type=float, default=[1.0], metavar="S",
                   help="test scales whose softmax is averaged (default: 1.0)")
    p.add_argument("--crop", nargs=2, type=int, metavar=("H", "W"),
                   help="sliding-window size for (scaled) images larger than it; whole image when omitted")
    p.add_argument("--batch-size", type=int, default=None, metavar="N",
                   help="images per forward pass where their sizes agree (default: 4)")
    p.add_argument("--workers", type=int, default=1, metavar="N",
                   help="threads reading and decoding images ahead of the model (0: none; default: 1)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    add_precision_argument(p)
    p.add_argument("--max-images", type=int, metavar="N", help="evaluate only the first N images")
    p.add_argument("--no-boundary", action="store_true", help="skip boundary IoU (it costs CPU time)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from contextrast.data import build_dataset
    from contextrast.engine.checkpoint import load_checkpoint
    from contextrast.engine.evaluate import DEFAULT_BATCH, evaluate
    from contextrast.engine.inference import prepare_for_inference, resolve_device

    device = resolve_device(args.device)
    dataset = build_dataset(args.data, args.split)
    model, card = load_checkpoint(args.checkpoint, device=device)
    model = prepare_for_inference(model)
    if dataset.info.num_classes != model.num_classes:
        raise ValueError(
            f"dataset {args.data} ({args.split}) has {dataset.info.num_classes} classes but checkpoint "
            f"{args.checkpoint} predicts {model.num_classes} ({card.dataset}); evaluate it on data with the same classes"
        )
    if list(dataset.info.classes) != list(card.classes):
        print(f"warning: class names differ between the dataset {list(dataset.info.classes)} and the checkpoint "
              f"{card.classes}; the dataset's names are used", file=sys.stderr)

    bar = None
    if not args.no_progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset) if args.max_images is None else min(len(dataset), args.max_images),
                   desc=f"eval {args.split}", unit="img", file=sys.stderr, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)

    try:
        metrics = evaluate(
            model, dataset, batch_size=args.batch_size or DEFAULT_BATCH, device=device,
            crop=tuple(args.crop) if args.crop else None, flip=args.flip, scales=tuple(args.scales),
            boundary=not args.no_boundary, progress=progress, max_images=args.max_images,
            precision=args.precision, workers=args.workers,
        )
    finally:
        if bar is not None:
            bar.close()
    metrics.update(checkpoint=str(args.checkpoint), data=args.data, split=args.split)
    print(_report(metrics))
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(metrics, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


def _report(m: dict) -> str:
    from contextrast.engine.metrics import metrics_table

    views = f"scales {m['scales']}" + (" + flip" if m["flip"] else "") + (f", crop {m['crop']}" if m["crop"] else "")
    views += f"; {m['precision']}, batch {m['batch_size']}"
    cancelled = " (cancelled)" if m.get("cancelled") else ""
    return metrics_table(m) + f"\n{m['images']} images of {m['split']} in {m['seconds']:.1f} s{cancelled}; {views}"
