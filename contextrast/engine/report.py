"""Results tables from run directories (issue 5): evaluate each run's best checkpoint on one split,
group runs that differ only by seed, and check the papers' claims (METHOD.md §3) pairwise.

Everything in the generated Markdown is computed here from checkpoints and model cards; nothing is typed.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from contextrast.data.transforms import EvalTransform
from contextrast.engine.checkpoint import load_checkpoint, read_card
from contextrast.engine.evaluate import evaluate
from contextrast.engine.inference import prepare_for_inference
from contextrast.models.cost import count_cost

# The claims of METHOD.md §3, each "a beats b" between variants that differ in one switch.
CLAIMS: tuple[tuple[str, str, str, str], ...] = (
    ("loss", "contextrast", "ce", "[A] Contextrast (CCL + BANE) beats CE"),
    ("loss", "contextrast", "ccl", "[A] BANE negatives beat random negatives (Contextrast vs CCL)"),
    ("loss", "ccl", "ce", "[A] CCL with random negatives beats CE"),
    ("loss", "pixel_contrast", "ce", "pixel-to-pixel contrast (ICCV 2021) beats CE"),
    ("align", "srm", "bilinear", "[B] SRM beats bilinear upsampling"),
    ("align", "srm", "srm_nomask", "[B] the neighbour mask helps (SRM vs SRM without mask)"),
    ("align", "srm_nomask", "bilinear", "[B] SRM without mask beats bilinear"),
    ("context", "crm", "none", "[B] CRM beats no context module"),
    ("context", "crm", "crm_f4", "[B] CRM over all four stages beats CRM over F4 only"),
)
VARIANT_KEYS = ("backbone", "align", "context", "loss")


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

    @property
    def key(self) -> tuple[str, ...]:
        return tuple(self.variant[k] for k in VARIANT_KEYS)


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
    )


def _mean_spread(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def check_claims(results: Sequence[RunResult]) -> list[dict[str, Any]]:
    """For each claim whose two variants were both run (equal in every other switch), the mIoU difference
    averaged over seeds, with the seeds' standard deviations."""
    groups: dict[tuple[str, ...], list[RunResult]] = {}
    for r in results:
        groups.setdefault(r.key, []).append(r)
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
            found.append({
                "claim": text, "better": "/".join(key), "worse": "/".join(other),
                "miou_better": ma, "miou_worse": mb, "delta": ma - mb,
                "seeds_better": sorted(r.seed for r in runs_a), "seeds_worse": sorted(r.seed for r in runs_b),
                "std_better": sa, "std_worse": sb, "held": ma > mb,
            })
    return found


def _pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.2f}"


def render_markdown(results: Sequence[RunResult], claims: Sequence[dict[str, Any]], data: str, split: str,
                    command: str) -> str:
    classes = list(results[0].per_class_iou) if results else []
    lines = [
        f"# Results on {data} ({split} split)",
        "",
        f"Generated by `{command}`; do not edit by hand. Each run's best-on-val checkpoint is evaluated here at",
        "full resolution, single scale, no flip. mIoU and per-class IoU as detectron2 defines them; boundary IoU",
        "with a band of 2% of the image diagonal. GMACs at 360×480, inference path (METHOD.md §1 \"Cost\").",
        "",
        "| run | backbone | align | context | loss | seed | iters run / scheduled (best) | mIoU % | boundary IoU % | params | GMACs | train time | hardware |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in sorted(results, key=lambda r: (r.key, r.seed)):
        v = r.variant
        lines.append(
            f"| {r.run} | {v['backbone']} | {v['align']} | {v['context']} | {v['loss']} | {r.seed} | "
            f"{r.iterations} / {r.scheduled_iterations} ({r.best_iteration}) | {_pct(r.miou)} | {_pct(r.boundary_iou)} | "
            f"{r.params_inference / 1e6:.2f} M | {r.gmacs_360x480:.2f} | {r.training_time_s / 60:.0f} min | {r.hardware} |"
        )
    lines += ["", "## Per-class IoU %", "", "| run | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for r in sorted(results, key=lambda r: (r.key, r.seed)):
        lines.append(f"| {r.run} | " + " | ".join(_pct(r.per_class_iou.get(c)) for c in classes) + " |")
    lines += ["", "## The papers' claims at this scale", ""]
    if not claims:
        lines.append("No pair of runs differs in exactly one switch, so no claim can be checked yet.")
    for c in claims:
        n_a, n_b = len(c["seeds_better"]), len(c["seeds_worse"])
        spread = (f"; seed spread (std) {100 * c['std_better']:.2f} / {100 * c['std_worse']:.2f}"
                  if max(n_a, n_b) > 1 else "; one seed each, so the spread between seeds is not measured")
        verdict = "held" if c["held"] else "did not hold"
        lines.append(
            f"- {c['claim']}: **{verdict}** — {_pct(c['miou_better'])} vs {_pct(c['miou_worse'])} mIoU "
            f"({100 * c['delta']:+.2f} points; `{c['better']}` vs `{c['worse']}`, seeds {c['seeds_better']} / "
            f"{c['seeds_worse']}{spread})."
        )
    return "\n".join(lines) + "\n"


def build_report(run_dirs: Sequence[str | Path], data: str, split: str, out: str | Path, json_out: str | Path | None,
                 command: str, device: str = "cpu", kind: str = "best",
                 progress: Callable[[str], None] | None = None) -> list[RunResult]:
    from contextrast.data import build_dataset

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
                                              "claims": claims}, indent=1))
    return results
