from __future__ import annotations

import argparse
import shlex
import sys

HELP = "evaluate run directories on one split and write a results table with the papers' claims checked"
EXAMPLES = """  contextrast report runs/camvid-cpu-ce runs/camvid-cpu-contextrast --data camvid:../shared/data/camvid \\
      --split val --out results/camvid.md --json results/camvid.json
  contextrast report runs/camvid-cpu-ce runs/camvid-cpu-contextrast --data camvid:../shared/data/camvid \\
      --out results/camvid.md --ship checkpoints/camvid-scrnet-ce=runs/camvid-cpu-ce
  (runs that differ in exactly one switch — loss, align or context — are compared; runs that differ only in
   train.seed are averaged, with their spread)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="training run directories (each with best/ or final/)")
    p.add_argument("--data", required=True, metavar="SPEC", help="dataset spec, e.g. camvid:../shared/data/camvid")
    p.add_argument("--split", default="val", help="split to evaluate on (model selection uses val; never tune on test)")
    p.add_argument("--out", default="results/report.md", help="Markdown file to write")
    p.add_argument("--json", dest="json_out", help="also write the numbers as JSON")
    p.add_argument("--checkpoint-kind", default="best", choices=("best", "final", "last"))
    p.add_argument("--device", default="cpu")
    p.add_argument("--ship", action="append", default=[], metavar="CHECKPOINT_DIR=RUN_DIR",
                   help="also copy RUN_DIR's evaluated checkpoint to CHECKPOINT_DIR with these metrics in its card "
                        "(repeatable)")


def run(args: argparse.Namespace) -> int:
    from contextrast.experiments.report import build_report

    words = [*args.runs, "--data", args.data, "--split", args.split, "--out", args.out]
    words += ["--json", args.json_out] if args.json_out else []
    for item in args.ship:
        words += ["--ship", item]
    command = "contextrast report " + " ".join(shlex.quote(w) for w in words)
    if args.ship and args.split != "val":
        print("error: --ship writes the measured numbers into shipped model cards, which carry val numbers only "
              "(the test split is for reviewers); use --split val", file=sys.stderr)
        return 2
    ship = {}
    for item in args.ship:
        dest, sep, run_dir = item.partition("=")
        if not sep or not dest or not run_dir:
            print(f"error: --ship takes CHECKPOINT_DIR=RUN_DIR; got {item!r}", file=sys.stderr)
            return 2
        ship[dest] = run_dir
    try:
        build_report(args.runs, args.data, args.split, args.out, args.json_out, command, device=args.device,
                     kind=args.checkpoint_kind, progress=lambda m: print(m, flush=True), ship=ship)
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {args.out}" + (f" and {args.json_out}" if args.json_out else ""))
    return 0
