"""Results tables from run directories (issue 5): evaluate each run's best checkpoint on one split,
group runs that differ only by seed, and check the papers' claims (METHOD.md §3) pairwise.

Everything in the generated Markdown is computed here from checkpoints and model cards; nothing is typed.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from contextrast.data.transforms import EvalTransform
from contextrast.engine.checkpoint import load_checkpoint, read_card, save_checkpoint
from contextrast.engine.evaluate import evaluate
from contextrast.engine.inference import prepare_for_inference
from contextrast.models.cost import count_cost

# The claims of METHOD.md §3, each "a beats b" between variants that differ in one switch.
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("loss", "contextrast", "ce", "[A] Contextrast (CCL + BANE) beats CE"),
    ("loss", "contextrast", "ccl", "[A] BANE negatives beat random negatives (Contextrast vs CCL)"),
    ("loss", "ccl", "ce", "[A] CCL with random negatives beats CE"),
    ("loss", "pixel_contrast", "ce", "pixel-to-pixel contrast (ICCV 2021) beats CE"),
    ("loss", "contextrast", "pixel_contrast", "[A] Contextrast beats pixel-to-pixel contrast"),
    ("align", "srm", "bilinear", "[B] SRM beats bilinear upsampling"),
    ("align", "srm", "srm_nomask", "[B] the neighbour mask helps (SRM vs SRM without mask)"),
    ("align", "srm_nomask", "bilinear", "[B] SRM without mask beats bilinear"),
    ("context", "crm", "none", "[B] CRM beats no context module"),
    ("context", "crm", "crm_f4", "[B] CRM over all four stages beats CRM over F4 only"),
)
VARIANT_KEYS = ("backbone", "align", "context", "loss")
# The two orderings METHOD.md §3 asks to reproduce, best first, and the switch each one varies.
CHAINS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("loss", ("contextrast", "ccl", "ce"), "Contextrast > CCL-random > CE"),
    ("align", ("srm", "srm_nomask", "bilinear"), "SRM > SRM-without-mask > bilinear"),
)
# Published sizes (METHOD.md §3 table: [A] on CamVid, CE → + Contextrast), for scale only: those runs use
# pre-trained backbones, 360×480 crops, 6k iterations and multi-scale + flip testing.
PUBLISHED = {"[A] Contextrast (CCL + BANE) beats CE": "[A] reports +1.18 to +2.16 points on CamVid"}
# A difference is called "within noise" when it is smaller than this many times the larger of two noise figures:
# the late-curve wobble (RunResult.late_wobble) of the runs, since a difference smaller than one run's own
# evaluation-to-evaluation movement is not evidence either way; and, once a variant has several seeds, the standard
# error of the seed-averaged difference (`seed_standard_error`), the seed-to-seed spread one seed cannot measure.
NOISE_FACTOR = 2.0
LATE_POINTS = 4


@dataclass
class RunResult:
    run: str
    variant: dict[str, str]  # backbone, align, context, loss
    seed: int
    iterations: int
    scheduled_iterations: int
    best_iteration: int
    miou: float
    boundary_iou: float
    per_class_iou: dict[str, float | None]
    params_inference: int
    gmacs_360x480: float
    training_time_s: float
    hardware: str
    val_curve: tuple[tuple[int, float], ...] = ()  # (iteration, val mIoU) as logged during training

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.variant[k] for k in VARIANT_KEYS)

    @property
    def finished(self) -> bool:
        return self.iterations >= self.scheduled_iterations

    @property
    def late_gain(self) -> float | None:
        """Val mIoU gained over the last third of the iterations run (≈ 0 once the curve has flattened)."""
        if len(self.val_curve) < 2:
            return None
        last_it, last = self.val_curve[-1]
        _, earlier = min(self.val_curve, key=lambda p: abs(p[0] - 2 * last_it / 3))
        return last - earlier

    @property
    def late_points(self) -> list[float]:
        """The last LATE_POINTS val mIoUs logged during training."""
        return [m for _, m in self.val_curve[-LATE_POINTS:]]

    @property
    def late_mean(self) -> float | None:
        """Mean of the last LATE_POINTS val mIoUs: a second reading that one lucky evaluation cannot set."""
        tail = self.late_points
        return statistics.fmean(tail) if tail else None

    @property
    def late_wobble(self) -> float | None:
        """Evaluation-to-evaluation noise of the last LATE_POINTS val mIoUs: std of their successive differences
        over √2 (for independent noise of std σ a difference has std σ√2; a steady trend drops out)."""
        tail = self.late_points
        steps = [b - a for a, b in zip(tail, tail[1:])]
        return statistics.stdev(steps) / math.sqrt(2) if len(steps) > 1 else None


def read_val_curve(run_dir: str | Path) -> tuple[tuple[int, float], ...]:
    """(iteration, val mIoU) pairs from run_dir/metrics.jsonl; a resumed run's repeated points keep the last."""
    path = Path(run_dir) / "metrics.jsonl"
    points: dict[int, float] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a line cut short by a kill
                continue
            if isinstance(row.get("val"), dict) and "miou" in row["val"]:
                points[int(row["iter"])] = float(row["val"]["miou"])
    return tuple(sorted(points.items()))


def _checkpoint_of(run_dir: Path, kind: str) -> Path:
    for candidate in (run_dir / kind, run_dir):
        if (candidate / "model_card.json").is_file():
            return candidate
    raise FileNotFoundError(f"{run_dir} has no {kind}/ checkpoint (model.safetensors + model_card.json)")


def summarise_run(run_dir: str | Path, dataset, device: str = "cpu", kind: str = "best",
                  progress: Callable[[int, int], None] | None = None) -> RunResult:
    """Evaluate `run_dir/<kind>` on `dataset` (mIoU, per-class IoU, boundary IoU) and read its cost and
    training time (the final or last card holds the whole run's time)."""
    run_dir = Path(run_dir)
    path = _checkpoint_of(run_dir, kind)
    model, card = load_checkpoint(path, device=device, num_classes=dataset.info.num_classes)
    metrics = evaluate(prepare_for_inference(model), dataset, device=device, boundary=True, progress=progress)
    cost = count_cost(model.cpu(), (360, 480), model.config.in_channels)
    whole = next((read_card(p) for p in (run_dir / "final", run_dir / "last") if (p / "model_card.json").is_file()), card)
    bi = metrics["boundary_iou"]
    return RunResult(
        run=run_dir.name,
        variant={"backbone": card.model["backbone"], "align": card.model["align"], "context": card.model["context"],
                 "loss": card.loss.get("name", "ce")},
        seed=int(card.train.get("seed", 0)),
        iterations=int(whole.iteration),
        scheduled_iterations=int(whole.train.get("iterations", whole.iteration)),
        best_iteration=int(card.iteration),
        miou=float(metrics["miou"]),
        boundary_iou=float(bi["mean"] if isinstance(bi, dict) else bi),
        per_class_iou=metrics["per_class_iou"],
        params_inference=cost.params_inference,
        gmacs_360x480=round(cost.gmacs, 2),
        training_time_s=float(whole.training_time_s),
        hardware=whole.hardware,
        val_curve=read_val_curve(run_dir),
    )


def group_by_variant(results: Sequence[RunResult]) -> dict[tuple[str, ...], list[RunResult]]:
    """Runs keyed by (backbone, align, context, loss): the runs of one key differ only in seed."""
    groups: dict[tuple[str, ...], list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.key, []).append(r)
    return groups


def _mean_spread(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def paired_deltas(runs_a: Sequence[RunResult], runs_b: Sequence[RunResult]) -> dict[int, float]:
    """mIoU(a) − mIoU(b) for each seed run on both sides (same initialisation and data order, so the difference
    cancels what the seed alone does), by seed."""
    b = {r.seed: r.miou for r in runs_b}
    return {r.seed: r.miou - b[r.seed] for r in sorted(runs_a, key=lambda r: r.seed) if r.seed in b}


def seed_standard_error(runs_a: Sequence[RunResult], runs_b: Sequence[RunResult]) -> float | None:
    """Standard error of mean mIoU(a) − mean mIoU(b) over seeds, or None while it cannot be measured:
    std of the `paired_deltas` / √n from 2 shared seeds on; otherwise, with 2+ seeds on each side, the
    unpaired √(s_a²/n_a + s_b²/n_b)."""
    paired = list(paired_deltas(runs_a, runs_b).values())
    if len(paired) > 1:
        return statistics.stdev(paired) / math.sqrt(len(paired))
    a, b = [r.miou for r in runs_a], [r.miou for r in runs_b]
    if len(a) > 1 and len(b) > 1:
        return math.sqrt(statistics.variance(a) / len(a) + statistics.variance(b) / len(b))
    return None


def check_claims(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """For each claim whose two variants were both run (equal in every other switch), the mIoU difference
    averaged over seeds, with the seeds' standard deviations, the per-seed differences of seeds run on both
    sides, and whether the difference is within noise (NOISE_FACTOR)."""
    groups = group_by_variant(results)
    index = {k: VARIANT_KEYS.index(k) for k in VARIANT_KEYS}
    found = []
    for switch, better, worse, text in CLAIMS:
        for key, runs_a in groups.items():
            if key[index[switch]] != better:
                continue
            other = tuple(worse if i == index[switch] else v for i, v in enumerate(key))
            runs_b = groups.get(other)
            if not runs_b:
                continue
            (ma, sa), (mb, sb) = _mean_spread([r.miou for r in runs_a]), _mean_spread([r.miou for r in runs_b])
            wobble = max((r.late_wobble or 0.0) for r in (*runs_a, *runs_b))
            seed_se = seed_standard_error(runs_a, runs_b)
            late_a = [r.late_mean for r in runs_a if r.late_mean is not None]
            late_b = [r.late_mean for r in runs_b if r.late_mean is not None]
            late_delta = statistics.fmean(late_a) - statistics.fmean(late_b) if late_a and late_b else None
            found.append({
                "claim": text, "better": "/".join(key), "worse": "/".join(other),
                "miou_better": ma, "miou_worse": mb, "delta": ma - mb,
                "seeds_better": sorted(r.seed for r in runs_a), "seeds_worse": sorted(r.seed for r in runs_b),
                "std_better": sa, "std_worse": sb, "held": ma > mb,
                "finished": all(r.finished for r in (*runs_a, *runs_b)),
                "wobble": wobble, "seed_se": seed_se,
                "within_noise": abs(ma - mb) <= NOISE_FACTOR * max(wobble, seed_se or 0.0),
                "per_seed_delta": paired_deltas(runs_a, runs_b),
                "late_mean_delta": late_delta,
            })
    return found


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def _points(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:+.2f}"


def check_chains(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """The orderings of METHOD.md §3 (e.g. Contextrast > CCL > CE) among runs equal in every other switch,
    on seed-averaged mIoU. A chain with a variant never run is reported with what is missing."""
    means = {k: statistics.fmean(r.miou for r in runs) for k, runs in group_by_variant(results).items()}
    out = []
    for switch, order, text in CHAINS:
        i = VARIANT_KEYS.index(switch)
        bases = {k[:i] + k[i + 1:] for k in means if k[i] in order}
        best = None
        for base in sorted(bases):
            found = {v: means.get(base[:i] + (v,) + base[i:]) for v in order}
            if best is None or sum(m is not None for m in found.values()) > sum(m is not None for m in best.values()):
                best = found
        found = best or dict.fromkeys(order)
        missing = [v for v, m in found.items() if m is None]
        ranked = sorted((v for v in order if found[v] is not None), key=lambda v: -found[v])
        out.append({"chain": text, "switch": switch, "miou": found, "missing": missing,
                    "observed": " > ".join(f"{v} ({_pct(found[v])})" for v in ranked),
                    "held": None if missing else ranked == list(order)})
    return out


def render_markdown(results: Sequence[RunResult], claims: Sequence[dict[str, Any]], data: str, split: str,
                    command: str) -> str:
    classes = list(results[0].per_class_iou) if results else []
    lines = [
        f"# Results on {data} ({split} split)",
        "",
        f"Generated by `{command}`; do not edit by hand. Each run's best-on-val checkpoint is evaluated here at",
        "full resolution, single scale, no flip. mIoU and per-class IoU as detectron2 defines them; boundary IoU",
        "with a band of 2% of the image diagonal. GMACs at 360×480, inference path (METHOD.md §1 \"Cost\").",
        f"\"Last-{LATE_POINTS} mean\" is the mean of the last {LATE_POINTS} val mIoUs logged during training, a reading that one",
        "lucky evaluation cannot set. \"Last ⅓ gain\" is the val mIoU gained over the last third of the iterations run",
        f"(near 0 once the curve is flat). \"Wobble\" is the noise of those last {LATE_POINTS} val mIoUs (std of their",
        "successive differences / √2, so a steady trend does not count): how far one run's number moves between",
        "evaluations. It is not a seed-to-seed spread, which only more seeds measure.",
        "",
        "| run | backbone | align | context | loss | seed | iters run / scheduled (best) | mIoU % | boundary IoU % | "
        f"last-{LATE_POINTS} mean % | last ⅓ gain | wobble | params | GMACs | train time | hardware |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r.key, r.seed)):
        v = r.variant
        lines.append(
            f"| {r.run} | {v['backbone']} | {v['align']} | {v['context']} | {v['loss']} | {r.seed} | "
            f"{r.iterations} / {r.scheduled_iterations} ({r.best_iteration}) | {_pct(r.miou)} | {_pct(r.boundary_iou)} | "
            f"{_pct(r.late_mean)} | {_points(r.late_gain)} | {_pct(r.late_wobble)} | "
            f"{r.params_inference / 1e6:.2f} M | {r.gmacs_360x480:.2f} | {r.training_time_s / 60:.0f} min | {r.hardware} |"
        )
    lines += ["", "## Per-class IoU %", "", "| run | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for r in sorted(results, key=lambda r: (r.key, r.seed)):
        lines.append(f"| {r.run} | " + " | ".join(_pct(r.per_class_iou.get(c)) for c in classes) + " |")
    iterations = sorted({it for r in results for it, _ in r.val_curve})
    if iterations:
        lines += ["", "## Val mIoU % during training", "",
                  "Every evaluation the trainer logged (`metrics.jsonl`): how noisy one number is, and whether the "
                  "curve has flattened.", "",
                  "| run | " + " | ".join(str(it) for it in iterations) + " |", "|---|" + "---|" * len(iterations)]
        for r in sorted(results, key=lambda r: (r.key, r.seed)):
            curve = dict(r.val_curve)
            lines.append(f"| {r.run} | " + " | ".join(_pct(curve.get(it)) for it in iterations) + " |")
    groups = group_by_variant(results)
    if any(len(runs) > 1 for runs in groups.values()):
        lines += ["", "## Spread between seeds", "",
                  "Each variant's runs averaged over seeds: mean ± standard deviation (– for a single seed).", "",
                  "| backbone | align | context | loss | seeds | mIoU % | "
                  f"last-{LATE_POINTS} mean % | boundary IoU % |", "|---|---|---|---|---|---|---|---|"]
        for key, runs in sorted(groups.items()):
            cells = []
            for values in ([r.miou for r in runs], [r.late_mean for r in runs if r.late_mean is not None],
                           [r.boundary_iou for r in runs]):
                mean, std = _mean_spread(values) if values else (None, 0.0)
                cells.append(_pct(mean) + (f" ± {100 * std:.2f}" if len(values) > 1 else ""))
            lines.append(f"| {' | '.join(key)} | {', '.join(str(r.seed) for r in sorted(runs, key=lambda r: r.seed))} | "
                         + " | ".join(cells) + " |")
    lines += ["", "## The papers' claims at this scale", ""]
    if not claims:
        lines.append("No pair of runs differs in exactly one switch, so no claim can be checked yet.")
    for c in claims:
        n_a, n_b = len(c["seeds_better"]), len(c["seeds_worse"])
        spread = (f"; seed spread (std) {100 * c['std_better']:.2f} / {100 * c['std_worse']:.2f}"
                  if max(n_a, n_b) > 1 else "; one seed each, so the spread between seeds is not measured")
        paired = c.get("per_seed_delta") or {}
        if len(paired) > 1 or (paired and c["seeds_better"] != c["seeds_worse"]):  # else it repeats the Δ above
            spread += "; per seed " + ", ".join(f"{s}: {_points(d)}" for s, d in paired.items())
        if c.get("seed_se") is not None:
            spread += f"; standard error over seeds {100 * c['seed_se']:.2f}"
        verdict = "held" if c["held"] else "did not hold"
        caveats = []
        if c.get("late_mean_delta") is not None:
            agrees = (c["late_mean_delta"] > 0) == c["held"]
            caveats.append(f"last-{LATE_POINTS} means differ by {100 * c['late_mean_delta']:+.2f} points, which "
                           + ("agrees" if agrees else "disagrees"))
        if c.get("within_noise"):
            noise, what = max((c["wobble"], "the larger wobble"), (c.get("seed_se") or 0.0, "the seed standard error"))
            caveats.append(f"within noise: |Δ| ≤ {NOISE_FACTOR:g} × {what} ({100 * noise:.2f})")
        if not c.get("finished", True):
            caveats.append("at least one run stopped before its schedule ended")
        if c["claim"] in PUBLISHED:
            caveats.append(PUBLISHED[c["claim"]])
        lines.append(
            f"- {c['claim']}: **{verdict}** — {_pct(c['miou_better'])} vs {_pct(c['miou_worse'])} mIoU "
            f"({100 * c['delta']:+.2f} points; `{c['better']}` vs `{c['worse']}`, seeds {c['seeds_better']} / "
            f"{c['seeds_worse']}{spread})" + "".join(f"; {x}" for x in caveats) + "."
        )
    if claims:
        held = sum(c["held"] for c in claims)
        noisy = sum(bool(c.get("within_noise")) for c in claims)
        counts = sorted({len(c[side]) for c in claims for side in ("seeds_better", "seeds_worse")})
        seeds = str(counts[0]) if len(counts) == 1 else f"{counts[0]}–{counts[-1]}"
        lines += ["", f"In all: {held} of {len(claims)} checked claims held in direction; {noisy} of the {len(claims)} "
                  f"differences are within noise as defined above: at {seeds} seed(s) per variant those show a "
                  "direction, not an effect."]
    checked = {c["claim"] for c in claims}
    unchecked = [text for *_, text in CLAIMS if text not in checked]
    if unchecked:
        lines += ["", "Not checked (one of the two variants was not run): " + "; ".join(unchecked) + "."]
    lines += ["", "## The orderings METHOD.md §3 asks for", ""]
    for ch in check_chains(results):
        if ch["missing"]:
            lines.append(f"- {ch['chain']}: **not checkable yet** — no run with {ch['switch']} = "
                         f"{', '.join(ch['missing'])}" + (f"; observed {ch['observed']}" if ch["observed"] else "") + ".")
        else:
            lines.append(f"- {ch['chain']}: **{'held' if ch['held'] else 'did not hold'}** — observed {ch['observed']}.")
    return "\n".join(lines) + "\n"


def ship_checkpoint(run_dir: str | Path, dest: str | Path, result: RunResult, split: str, report: str | Path,
                    kind: str = "best") -> Path:
    """Copy `run_dir/<kind>` to checkpoint directory `dest` (named after it), with the metrics this report
    measured in its model card, so the shipped card and the results table hold the same numbers."""
    model, card = load_checkpoint(_checkpoint_of(Path(run_dir), kind))
    metrics = {
        f"{split}_miou": result.miou, f"{split}_boundary_iou": result.boundary_iou,
        "per_class_iou": result.per_class_iou, "split": split, "iteration": result.best_iteration,
        "note": f"best-on-val checkpoint (iteration {result.best_iteration}) of a run of {result.iterations} / "
                f"{result.scheduled_iterations} scheduled iterations; measured by {report}",
    }
    card = replace(card, name=Path(dest).name, metrics=metrics, training_time_s=result.training_time_s, created="")
    return save_checkpoint(dest, model, card)


def build_report(run_dirs: Sequence[str | Path], data: str, split: str, out: str | Path, json_out: str | Path | None,
                 command: str, device: str = "cpu", kind: str = "best",
                 progress: Callable[[str], None] | None = None,
                 ship: dict[str, str | Path] | None = None) -> list[RunResult]:
    """Evaluate every run, write the Markdown (and JSON) report, and copy the runs named in `ship`
    ({checkpoint dir: run dir}) to shipped checkpoints carrying the measured metrics."""
    from contextrast.data import build_dataset

    ship = dict(ship or {})
    unknown = [r for r in ship.values() if Path(r).resolve() not in {Path(x).resolve() for x in run_dirs}]
    if unknown:
        raise ValueError(f"--ship names run(s) {unknown} that are not among the reported runs; list them too")

    dataset = build_dataset(data, split, EvalTransform())
    results = []
    for run in run_dirs:
        if progress:
            progress(f"evaluating {run} on {data} {split} ({len(dataset)} images)")
        with torch.inference_mode():
            results.append(summarise_run(run, dataset, device=device, kind=kind))
    claims = check_claims(results)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(render_markdown(results, claims, data, split, command))
    if json_out:
        Path(json_out).write_text(json.dumps({"data": data, "split": split, "runs": [asdict(r) for r in results],
                                              "claims": claims, "chains": check_chains(results)}, indent=1))
    by_run = {Path(run).resolve(): r for run, r in zip(run_dirs, results)}
    for dest, run in ship.items():
        path = ship_checkpoint(run, dest, by_run[Path(run).resolve()], split, out, kind=kind)
        if progress:
            progress(f"shipped {run} as {path}")
    return results
