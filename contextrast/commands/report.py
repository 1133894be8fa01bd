from __future__ import annotations

import argparse
import shlex
import sys

HELP = "evaluate run directories on one or more splits and write a results table with the papers' claims checked"
EXAMPLES = """  contextrast report runs/camvid-ce runs/camvid-contextrast --data camvid:$CAMVID \\
      --split train:only=0006R0 --split val --flip --diagnose-images 30 --out results/camvid.md \\
      --json results/camvid.json
  contextrast report runs/camvid-ce runs/camvid-contextrast --data camvid:$CAMVID --split val \\
      --out results/camvid.md --ship checkpoints/camvid-scrnet-ce=runs/camvid-ce
  (runs that differ in exactly one switch — loss, align or context — are compared; runs that differ only in
   train.seed are averaged, with their spread)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training run directories (each with best/ or final/)")
    p.add_argument("--data", required=True, metavar="SPEC", help="dataset spec, e.g. camvid:data/camvid")
    p.add_argument("--split", dest="splits", action="append", metavar="SPLIT",
                   help="split to evaluate on, repeatable; the first is the one the claims read (default: val). "
                        "A held-out sequence: train:only=0006R0. Never tune on test")
    p.add_argument("--flip", action="store_true", help="also report flip-tested mIoU (apart from single scale)")
    p.add_argument("--diagnose-images", type=int, default=0, metavar="N",
                   help="also measure what each run's modules do (contextrast diagnose) on N images of the first split")
    p.add_argument("--out", default="results/report.md", help="Markdown file to write")
    p.add_argument("--json", dest="json_out", help="also write the numbers as JSON")
    p.add_argument("--checkpoint-kind", default="final", choices=("final", "best", "last"),
                   help="final (default): the end of the schedule, the EMA where kept; best: the best of the run's "
                        "val evaluations (a selection that flatters)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--ship", action="append", default=[], metavar="CHECKPOINT_DIR=RUN_DIR",
                   help="also copy RUN_DIR's evaluated checkpoint to CHECKPOINT_DIR with these metrics in its card "
                        "(repeatable)")


def run(args: argparse.Namespace) -> int:
    from contextrast.experiments.report import build_report

    splits = args.splits or ["val"]
    words = [*args.runs, "--data", args.data, *[w for s in splits for w in ("--split", s)]]
    words += ["--flip"] if args.flip else []
    words += ["--diagnose-images", str(args.diagnose_images)] if args.diagnose_images else []
    words += ["--checkpoint-kind", args.checkpoint_kind] if args.checkpoint_kind != "final" else []
    words += ["--out", args.out] + (["--json", args.json_out] if args.json_out else [])
    for item in args.ship:
        words += ["--ship", item]
    command = "contextrast report " + " ".join(shlex.quote(w) for w in words)
    if args.ship and any(s.split(":", 1)[0] == "test" for s in splits):
        print("error: --ship writes the measured numbers into shipped model cards, and the test split is measured "
              "apart, never selected on; leave --split test out", file=sys.stderr)
        return 2
    ship = {}
    for item in args.ship:
        dest, sep, run_dir = item.partition("=")
        if not sep or not dest or not run_dir:
            print(f"error: --ship takes CHECKPOINT_DIR=RUN_DIR; got {item!r}", file=sys.stderr)
            return 2
        ship[dest] = run_dir
    try:
        build_report(args.runs, args.data, splits, args.out, args.json_out, command, device=args.device,
                     kind=args.checkpoint_kind, progress=lambda m: print(m, flush=True), ship=ship, flip=args.flip,
                     diagnose_images=args.diagnose_images)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}" + (f" and {args.json_out}" if args.json_out else ""))
    return 0
