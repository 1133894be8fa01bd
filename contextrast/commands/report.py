from __future__ import annotations

import argparse
import shlex

HELP = "evaluate run directories on one split and write a results table with the papers' claims checked"
EXAMPLES = """  contextrast report runs/camvid-cpu-ce runs/camvid-cpu-contextrast --data camvid:../shared/data/camvid \\
      --split val --out results/camvid.md --json results/camvid.json
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


def run(args: argparse.Namespace) -> int:
    from contextrast.engine.report import build_report

    words = [*args.runs, "--data", args.data, "--split", args.split, "--out", args.out]
    words += ["--json", args.json_out] if args.json_out else []
    command = "contextrast report " + " ".join(shlex.quote(w) for w in words)
    build_report(args.runs, args.data, args.split, args.out, args.json_out, command, device=args.device,
                 kind=args.checkpoint_kind, progress=lambda m: print(m, flush=True))
    print(f"wrote {args.out}" + (f" and {args.json_out}" if args.json_out else ""))
    return 0
