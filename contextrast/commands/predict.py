from __future__ import annotations

import argparse
import sys
from pathlib import Path

from contextrast.commands._common import add_precision_argument

HELP = "segment images with a checkpoint: writes <stem>_mask.png (class colours) and <stem>_overlay.png"
EXAMPLES = """  contextrast predict --checkpoint checkpoints/camvid-scrnet-ce street.png --out predictions/
  contextrast predict --checkpoint runs/camvid/final frames/*.png --out out/ --flip --scales 0.75 1.0 1.25
  contextrast predict --checkpoint runs/camvid/final big.jpg --out out/ --crop 360 480 --alpha 0.6"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", required=True, help="checkpoint directory (model.safetensors + model_card.json)")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (anything OpenCV reads: png, jpg, …)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--flip", action="store_true", help="average with the horizontally flipped image")
    p.add_argument("--scales", nargs="+", type=float, default=[1.0], metavar="S", help="test scales (default: 1.0)")
    p.add_argument("--crop", nargs=2, type=int, metavar=("H", "W"), help="sliding-window size for large images")
    p.add_argument("--alpha", type=float, default=0.5, help="mask opacity in the overlay, 0..1 (default: 0.5)")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N (default: auto)")
    add_precision_argument(p)


def run(args: argparse.Namespace) -> int:
    import cv2
    import numpy as np

    from contextrast.analysis.image_io import MIN_SIDE
    from contextrast.data.io import read_rgb
    from contextrast.data.palette import colorize
    from contextrast.data.transforms import normalize
    from contextrast.engine.checkpoint import load_checkpoint
    from contextrast.engine.inference import predict_labels, prepare_for_inference, resolve_device
    from contextrast.engine.precision import resolve_precision

    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must lie in [0, 1]; got {args.alpha}")
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    model, card = load_checkpoint(args.checkpoint, device=device)
    model = prepare_for_inference(model)
    if len(card.palette) != model.num_classes:
        raise ValueError(f"checkpoint {args.checkpoint} has {len(card.palette)} palette colours for "
                         f"{model.num_classes} classes")
    stems = [Path(n).stem for n in args.images]
    clashes = sorted({s for s in stems if stems.count(s) > 1})
    if clashes:
        raise ValueError(f"several images share the file stem(s) {clashes}; their outputs would overwrite each other")
    out_dir = Path(args.out)
    if out_dir.exists() and not out_dir.is_dir():
        raise ValueError(f"--out {out_dir} is a file; give a directory (it is created if missing)")
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = 0
    for name in args.images:
        path = Path(name)
        try:  # one bad image is reported and skipped; the others are still segmented
            rgb = read_rgb(path)
            if min(rgb.shape[:2]) < MIN_SIDE:
                raise ValueError(f"it is {rgb.shape[1]}×{rgb.shape[0]} px; the network needs at least {MIN_SIDE} "
                                 "px on each side")
            image = normalize(rgb).unsqueeze(0).to(device)
            labels = predict_labels(model, image, crop=tuple(args.crop) if args.crop else None, flip=args.flip,
                                    scales=tuple(args.scales), precision=precision)[0].cpu().numpy()
        except (ValueError, FileNotFoundError, MemoryError, RuntimeError) as e:
            if isinstance(e, RuntimeError) and "alloc" not in str(e):
                raise
            reason = str(e).splitlines()[0] if not isinstance(e, (MemoryError, RuntimeError)) else (
                "not enough memory to segment it at full size; use --crop H W (sliding window)")
            print(f"contextrast predict: skipping {path}: {reason}", file=sys.stderr)
            failed += 1
            continue
        mask = colorize(labels, card.palette)
        overlay = (rgb.astype(np.float32) * (1 - args.alpha) + mask.astype(np.float32) * args.alpha).round()
        overlay = overlay.clip(0, 255).astype(np.uint8)
        written = []
        for suffix, picture in (("mask", mask), ("overlay", overlay)):
            target = out_dir / f"{path.stem}_{suffix}.png"
            if not cv2.imwrite(str(target), cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)):
                raise ValueError(f"could not write {target}")
            written.append(str(target))
        print(f"{path} → {', '.join(written)}")
    if failed:
        print(f"contextrast predict: {failed} of {len(args.images)} images could not be read", file=sys.stderr)
        return 1
    return 0
