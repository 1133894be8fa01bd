"""`contextrast bench`: the benchmark suite of `python -m benchmarks`, same code, same options."""

from __future__ import annotations

import argparse

HELP = "measure speed and cost (inference, GMACs, training, app); write benchmarks/results/<machine>.json"
EXAMPLES = """  contextrast bench --quick                     # every section, a few minutes on a 2-core CPU
  contextrast bench --only inference,cost       # refresh these sections, keep the others' figures
  contextrast bench --out /tmp/results --no-docs"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    from benchmarks.__main__ import add_arguments as add_benchmark_arguments

    add_benchmark_arguments(p)


def run(args: argparse.Namespace) -> int:
    from benchmarks.__main__ import run as run_benchmarks

    return run_benchmarks(args, command="contextrast bench")
