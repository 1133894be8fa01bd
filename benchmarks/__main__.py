"""`python -m benchmarks` (and `contextrast bench`): speed and cost of the lab judged against the machine's
physical limit, and the times a user waits for, one table, one JSON per machine.

Sections: `limit` (this machine's derived fp32 / bf16 peaks, the FMA loop and large-matmul rates beside them),
`inference` (latency, images/s, share of the limit per execution variant, the network's 3×3 convolutions
alone), `precision` (fp32 vs bf16 autocast on the shipped CamVid model: the measurement behind the inference
default), `eval` (`contextrast eval` beside the bare forward pass over the same images), `cost` (parameters
and GMACs per architecture variant), `training` (step ratio contextrast/ce, loss vs loop reference, BANE
distance transform vs scipy, the trainer's images/s as configured against channels_last, bf16 and compile),
`app` (cold start to the first prediction, each lab interaction through the app's API, the analysis of one
image, UMAP of 10k/20k/30k points with the forward passes), `browser` (click to result in headless Chromium:
each lab interaction as a person makes it), `gpu` (with CUDA only; "not run: no GPU"
otherwise). Results go to `<out>/<machine slug>.json`; docs/performance.md is
generated from that file alone. Every section records the 1-minute load average before and after it.

    python -m benchmarks --quick                      # every section, short (≤ 8 min on a 2-core CPU)
    python -m benchmarks                              # full (≤ 30 min on a 2-core CPU)
    python -m benchmarks --only inference,cost        # refresh some sections, keep the others' figures
    python -m benchmarks --tiny --out /tmp/r --docs /tmp/p.md   # seconds: checks the machinery, not the speed
"""

from __future__ import annotations

from contextrast.allocator import restart_with_jemalloc

if __name__ == "__main__":  # first, before torch is imported below: the process may start again (with jemalloc)
    restart_with_jemalloc()

import argparse  # noqa: E402 - after the restart, on purpose
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks import report
from benchmarks.machine import load_average, machine_info, others_cpu_seconds, process_cpu_seconds
from contextrast.registry import Registry

ROOT = Path(__file__).resolve().parents[1]
RESULTS_DIR = ROOT / "benchmarks" / "results"
DOCS = ROOT / "docs" / "performance.md"
TINY_MODEL = {"decoder_channels": 16, "embed_dim": 16}  # a model that runs in milliseconds (machinery checks)
TINY_SIZE = (64, 96)


@dataclass
class Plan:
    """How much to measure: `quick` (minutes), full, or `tiny` (seconds; figures meaningless)."""

    quick: bool
    tiny: bool = False
    checkpoints_dir: Path = ROOT / "checkpoints"
    limit: dict[str, Any] = field(default_factory=dict)  # the derived limit, from the `limit` section


SECTIONS: Registry[Callable[[Plan], dict[str, Any]]] = Registry("benchmark section")


def _cpu_limit(plan: Plan) -> dict[str, Any]:
    if not plan.limit:
        from benchmarks.limits import cpu_limit

        plan.limit = cpu_limit(plan.quick)[0]
    return plan.limit


@SECTIONS.register("limit")
def _limit(plan: Plan) -> dict[str, Any]:
    from benchmarks import limits

    result = limits.run(plan.quick, size=256 if plan.tiny else None)
    plan.limit = result["limit"]
    return result


@SECTIONS.register("inference")
def _inference(plan: Plan) -> dict[str, Any]:
    from benchmarks import inference

    if plan.tiny:
        return inference.run(True, sizes=[TINY_SIZE], variants=["eager", "channels_last", "bf16"], repeats=1,
                             limit=_cpu_limit(plan), model_config=TINY_MODEL, profile=True)
    return inference.run(plan.quick, limit=_cpu_limit(plan), checkpoints_dir=plan.checkpoints_dir)


@SECTIONS.register("precision")
def _precision(plan: Plan) -> dict[str, Any]:
    from benchmarks import evaluation

    if plan.tiny:
        return {"skipped": "not measured in --tiny mode"}
    return evaluation.precision_run(plan.quick, plan.checkpoints_dir)


@SECTIONS.register("eval")
def _eval(plan: Plan) -> dict[str, Any]:
    from benchmarks import evaluation

    if plan.tiny:
        return {"skipped": "not measured in --tiny mode"}
    return evaluation.eval_run(plan.quick, plan.checkpoints_dir)


@SECTIONS.register("cost")
def _cost(plan: Plan) -> dict[str, Any]:
    from benchmarks import cost

    if plan.tiny:
        return cost.run(True, size=TINY_SIZE, variants=[{"align": "srm"}, {"align": "bilinear"}])
    return cost.run(plan.quick)


@SECTIONS.register("training")
def _training(plan: Plan) -> dict[str, Any]:
    from benchmarks import trainer_speed, training

    if plan.tiny:
        return training.run(True, edt_batch=1, edt_size=TINY_SIZE, steps=False)
    result = training.run(plan.quick)
    result["trainer"] = _guarded("trainer throughput", lambda: trainer_speed.run(plan.quick))
    return result


def _guarded(name: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """One part of a section; its failure becomes a note beside the others' figures, not a crash."""
    try:
        return dict(call())
    except Exception as e:  # noqa: BLE001 - report and carry on with the other figures
        return {"error": f"{name} failed: {type(e).__name__}: {str(e)[:300]}"}


@SECTIONS.register("app")
def _app(plan: Plan) -> dict[str, Any]:
    from benchmarks import app_interactions, app_speed, app_start, umap_speed
    from benchmarks.evaluation import camvid_subject

    if plan.tiny:
        return {"skipped": "not measured in --tiny mode"}
    found = camvid_subject(plan.checkpoints_dir)
    data = None if isinstance(found, str) else found[1]
    return {
        "cold_start": _guarded("cold start", lambda: app_start.run(
            plan.quick, data, lambda url: app_interactions.run(url, plan.quick))),
        "analysis": _guarded("analysis", lambda: app_speed.run(plan.quick, None if data is None else str(found[0]))),
        "umap": _guarded("umap", lambda: umap_speed.run(plan.quick)),
    }


@SECTIONS.register("browser")
def _browser(plan: Plan) -> dict[str, Any]:
    from benchmarks import app_browser
    from benchmarks.evaluation import camvid_subject

    if plan.tiny:
        return {"skipped": "not measured in --tiny mode"}
    found = camvid_subject(plan.checkpoints_dir)
    return app_browser.run(plan.quick, None if isinstance(found, str) else found[1])


@SECTIONS.register("gpu")
def _gpu(plan: Plan) -> dict[str, Any]:
    from benchmarks import gpu

    return gpu.run(plan.quick, plan.checkpoints_dir)


ORDER = ("limit", "inference", "precision", "eval", "cost", "training", "app", "browser", "gpu")


def parse_sections(text: str | None) -> list[str]:
    """'inference,cost' → ['inference', 'cost'] in the standard order; None → all."""
    if not text:
        return list(ORDER)
    names = [n.strip() for n in text.split(",") if n.strip()]
    for name in names:
        SECTIONS.get(name)  # ValueError listing the known sections
    return [n for n in ORDER if n in names]


def run_benchmarks(sections: Sequence[str], quick: bool, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """`measure_and_write` with an empty Inductor cache of its own (unless TORCHINDUCTOR_CACHE_DIR is set), so
    that compile's first call is a cold compilation, not kernels an earlier run left on disk."""
    if "TORCHINDUCTOR_CACHE_DIR" in os.environ:
        return measure_and_write(sections, quick, *args, **kwargs)
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="bench-inductor-")
    try:
        return measure_and_write(sections, quick, *args, **kwargs)
    finally:
        shutil.rmtree(os.environ.pop("TORCHINDUCTOR_CACHE_DIR"), ignore_errors=True)


def measure_and_write(
    sections: Sequence[str],
    quick: bool,
    out_dir: str | Path = RESULTS_DIR,
    docs: str | Path | None = DOCS,
    tiny: bool = False,
    checkpoints_dir: str | Path = ROOT / "checkpoints",
    command: str = "python -m benchmarks",
) -> dict[str, Any]:
    """Measure `sections`, merge them into `<out_dir>/<slug>.json`, regenerate `docs`, print the table."""
    machine = machine_info()
    plan = Plan(quick=quick, tiny=tiny, checkpoints_dir=Path(checkpoints_dir))
    mode = "tiny" if tiny else "quick" if quick else "full"
    measured: dict[str, dict[str, Any]] = {}
    path = report.results_path(out_dir, machine["slug"])
    for name in sections:
        print(f"[benchmarks] {name} …", file=sys.stderr, flush=True)
        before, processes = load_average(), process_cpu_seconds()
        t0 = time.perf_counter()
        result = SECTIONS.get(name)(plan)
        seconds = time.perf_counter() - t0
        load, others = load_average(), others_cpu_seconds(processes, process_cpu_seconds())
        measured[name] = {"created": report.now(), "mode": mode, "seconds": seconds,
                          "load_average_before": list(before) if before else None,
                          "load_average": list(load) if load else None,
                          "others_cpu_share": others / (seconds * machine["cores"]), "result": result}
        machine["load_average_end"] = list(load) if load else None
        # written after every section: a run stopped half-way keeps what it measured
        results = report.merge_results(path, machine, measured, command)
        report.write_results(results, path)
    load = load_average()
    machine["load_average_end"] = list(load) if load else None
    results = report.merge_results(path, machine, measured, command)
    report.write_results(results, path)
    if docs is not None:
        report.write_docs(results, docs, out_dir)
    table = report.rows(measured)
    print(f"benchmarks ({mode}) on {machine['hardware']}, {machine['torch_threads']} threads")
    busiest = max((m["others_cpu_share"] for m in measured.values()), default=0.0)
    if busiest > report.OTHERS_LOADED:
        print(f"NOTE: other processes used up to {100 * busiest:.0f} % of the {machine['cores']} cores during a "
              "section: absolute times are inflated; ratios were measured in the same run.")
    print(report.text_table(table))
    print(f"results: {path}" + (f"; docs: {docs}" if docs is not None else ""))
    return results


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quick", action="store_true", help="short runs (≤ 8 min on a 2-core CPU)")
    p.add_argument("--only", metavar="SECTION,...", help=f"sections to run, comma-separated: {', '.join(ORDER)}")
    p.add_argument("--out", default=str(RESULTS_DIR), metavar="DIR",
                   help="directory of the results JSON files (default benchmarks/results)")
    p.add_argument("--docs", default=str(DOCS), metavar="FILE",
                   help="Markdown page generated from the results (default docs/performance.md)")
    p.add_argument("--no-docs", action="store_true", help="do not regenerate the Markdown page")
    p.add_argument("--checkpoints-dir", default=str(ROOT / "checkpoints"), metavar="DIR",
                   help="checkpoints to time (every sub-directory with a model_card.json)")
    p.add_argument("--tiny", action="store_true",
                   help="a seconds-long configuration that checks the machinery; its figures mean nothing")


def run(args: argparse.Namespace, command: str = "python -m benchmarks") -> int:
    sections = parse_sections(args.only)
    run_benchmarks(sections, args.quick, args.out, None if args.no_docs else args.docs, args.tiny,
                   args.checkpoints_dir, command)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__[__doc__.index("    python -m"):])
    add_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return run(args)
    except (ValueError, FileNotFoundError) as e:
        print(f"benchmarks: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
