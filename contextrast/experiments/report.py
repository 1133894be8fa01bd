"""The results table: run directories evaluated on one split (`runs.py`), the papers' claims checked
(`claims.py`), rendered to Markdown and JSON, and chosen runs shipped as checkpoints (`ship.py`).

Everything in the generated Markdown is computed here from checkpoints and model cards; nothing is typed.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from contextrast.data.transforms import EvalTransform
from contextrast.experiments.claims import (
    CLAIMS,
    NOISE_FACTOR,
    PUBLISHED,
    check_chains,
    check_claims,
    mean_spread,
    verdict,
)
from contextrast.experiments.formatting import percent, signed_points
from contextrast.experiments.runs import LATE_POINTS, RunResult, group_by_variant, summarise_run
from contextrast.experiments.ship import ship_checkpoint


def train_time(r: RunResult) -> str:
    """This run's training time, and the earlier stages' when it was initialised from a trained model."""
    own = f"{r.training_time_s / 60:.0f} min"
    return own + (f" (+{r.earlier_training_time_s / 60:.0f} min earlier stages)" if r.earlier_training_time_s else "")


def claim_verdict(c: dict[str, Any]) -> str:
    """A claim's verdict (computed for entries written before verdicts were stored)."""
    return c.get("verdict") or verdict(c["delta"], bool(c.get("within_noise")))


def reading(claims: Sequence[dict[str, Any]]) -> list[str]:
    """The claims in plain words: what held, what was refuted, what stays undecided, by how much."""
    if not claims:
        return []
    by = {v: [c for c in claims if claim_verdict(c) == v] for v in ("held", "refuted", "undecided")}

    def listed(items: list[dict[str, Any]]) -> str:
        return "; ".join(f"{c['claim'].split('] ', 1)[-1]} ({100 * c['delta']:+.2f} points, "
                         f"{len(c['seeds_better'])} seed(s))" for c in items)

    lines = ["## Reading", ""]
    if by["held"]:
        lines.append(f"- **Held** (outside noise, in the paper's direction): {listed(by['held'])}.")
    if by["refuted"]:
        lines.append(f"- **Refuted** (outside noise, the other way): {listed(by['refuted'])}.")
    if by["undecided"]:
        lines.append(f"- **Undecided** (inside noise, or noise not measured): {listed(by['undecided'])}.")
    lines += ["", "For someone choosing these methods: a held claim is an effect this scale can see; an undecided one "
              "is a direction at most, and more seeds (not a longer table) would settle it.", ""]
    return lines


def module_rows(results: Sequence[RunResult]) -> list[str]:
    """What each run's modules do (`contextrast diagnose` on a subset of the first split)."""
    rows = [r for r in results if r.diagnose]
    if not rows:
        return []
    lines = ["", "## What the modules do", "",
             "`contextrast diagnose` on the first images of the claims' split: BANE's kept share per layer at the "
             "run's K_s (E1/E2/E3/E4), SRM's mean translation per step in image pixels (1/16, 1/8, 1/4) and its "
             "mask entropy (of 2.20 nats), CRM's channel-attention row entropy at the split's size and at a 256² "
             "crop, and mIoU with parts switched off.", "",
             "| run | images | BANE kept % | SRM translation px | SRM mask entropy | CRM channel entropy (crop) | "
             "mIoU as trained / offsets 0 / mean offset removed / mask off / CRM off |", "|---|---|---|---|---|---|---|"]
    for r in sorted(rows, key=lambda r: (r.key, r.seed)):
        d = r.diagnose
        k_s = str(int(d["bane"]["settings"].get("k_s", 50)))
        bane = " / ".join(percent(v.get(k_s)) for v in d["bane"]["kept_share"].values())
        srm = d.get("srm") or []
        shift = " / ".join(f"{math.hypot(*s['mean_translation_image_px']):.1f}" for s in srm) or "—"
        mask = " / ".join("—" if s["mask_entropy"] is None else f"{s['mask_entropy']:.2f}" for s in srm) or "—"
        crm = d.get("crm")
        crm_text = f"{crm['channel_row_entropy']:.2f} ({crm['at_crop']['channel_row_entropy']:.2f})" if crm else "—"
        iv = d["interventions"]
        ivs = " / ".join(percent(iv.get(n)) for n in ("as_trained", "offsets_zeroed", "mean_offset_removed", "mask_off",
                                                          "crm_off"))
        lines.append(f"| {r.run} | {d['images']} | {bane} | {shift} | {mask} | {crm_text} | {ivs} |")
    return lines


def split_rows(results: Sequence[RunResult]) -> list[str]:
    """Every split each run was evaluated on, with flip testing apart and whether the split was held out."""
    names = list(dict.fromkeys(s for r in results for s in r.splits))
    if not names:
        return []
    lines = ["", "## Every split evaluated", "",
             "mIoU % single scale (flip-tested in brackets); \"held out\": no image of the split comes from a "
             "sequence (or city) of the run's training split.", "",
             "| run | train split | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    for r in sorted(results, key=lambda r: (r.key, r.seed)):
        cells = []
        for n in names:
            s = r.splits.get(n)
            if s is None:
                cells.append("—")
                continue
            flip = f" ({percent(s['flip_miou'])})" if s.get("flip_miou") is not None else ""
            mark = {True: ", held out", False: ", seen in training", None: ""}[s.get("held_out")]
            cells.append(f"{percent(s['miou'])}{flip}{mark}")
        lines.append(f"| {r.run} | {r.train_split} | " + " | ".join(cells) + " |")
    return lines


def render_markdown(results: Sequence[RunResult], claims: Sequence[dict[str, Any]], data: str, split: str,
                    command: str, kind: str = "best") -> str:
    classes = list(results[0].per_class_iou) if results else []
    chosen = {"best": "best-on-val checkpoint", "final": "checkpoint at the end of its schedule (the EMA of the "
              "weights where the run kept one)", "last": "latest checkpoint"}[kind]
    lines = [
        f"# Results on {data} ({split} split)",
        "",
        *reading(claims),
        f"Generated by `{command}`; do not edit by hand. Each run's {chosen} is evaluated here at",
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
            f"{r.iterations} / {r.scheduled_iterations} ({r.best_iteration}) | {percent(r.miou)} | {percent(r.boundary_iou)} | "
            f"{percent(r.late_mean)} | {signed_points(r.late_gain)} | {percent(r.late_wobble)} | "
            f"{r.params_inference / 1e6:.2f} M | {r.gmacs_360x480:.2f} | {train_time(r)} | {r.hardware} |"
        )
    lines += split_rows(results) + module_rows(results)
    lines += ["", "## Per-class IoU %", "", "| run | " + " | ".join(classes) + " |", "|---|" + "---|" * len(classes)]
    for r in sorted(results, key=lambda r: (r.key, r.seed)):
        lines.append(f"| {r.run} | " + " | ".join(percent(r.per_class_iou.get(c)) for c in classes) + " |")
    iterations = sorted({it for r in results for it, _ in r.val_curve})
    if iterations:
        lines += ["", "## Val mIoU % during training", "",
                  "Every evaluation the trainer logged (`metrics.jsonl`): how noisy one number is, and whether the "
                  "curve has flattened.", "",
                  "| run | " + " | ".join(str(it) for it in iterations) + " |", "|---|" + "---|" * len(iterations)]
        for r in sorted(results, key=lambda r: (r.key, r.seed)):
            curve = dict(r.val_curve)
            lines.append(f"| {r.run} | " + " | ".join(percent(curve.get(it)) for it in iterations) + " |")
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
                mean, std = mean_spread(values) if values else (None, 0.0)
                cells.append(percent(mean) + (f" ± {100 * std:.2f}" if len(values) > 1 else ""))
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
            spread += "; per seed " + ", ".join(f"{s}: {signed_points(d)}" for s, d in paired.items())
        if c.get("seed_se") is not None:
            spread += f"; standard error over seeds {100 * c['seed_se']:.2f}"
        word = claim_verdict(c)
        caveats = []
        if c.get("late_mean_delta") is not None:
            agrees = (c["late_mean_delta"] > 0) == c["held"]
            caveats.append(f"last-{LATE_POINTS} means differ by {100 * c['late_mean_delta']:+.2f} points, which "
                           + ("agrees" if agrees else "disagrees"))
        if c.get("noise_measured") is False:
            caveats.append("noise not measured (one seed per side and fewer than "
                           f"{LATE_POINTS} val evaluations per run), so no difference counts as outside it")
        elif c.get("within_noise"):
            noise, what = max((c["wobble"], "the larger wobble"), (c.get("seed_se") or 0.0, "the seed standard error"))
            caveats.append(f"within noise: |Δ| ≤ {NOISE_FACTOR:g} × {what} ({100 * noise:.2f})")
        if not c.get("finished", True):
            caveats.append("at least one run stopped before its schedule ended")
        if c["claim"] in PUBLISHED:
            caveats.append(PUBLISHED[c["claim"]])
        lines.append(
            f"- {c['claim']}: **{word}** — {percent(c['miou_better'])} vs {percent(c['miou_worse'])} mIoU "
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


def build_report(run_dirs: Sequence[str | Path], data: str, splits: Sequence[str], out: str | Path,
                 json_out: str | Path | None, command: str, device: str = "cpu", kind: str = "final",
                 progress: Callable[[str], None] | None = None, ship: dict[str, str | Path] | None = None,
                 flip: bool = False, diagnose_images: int = 0) -> list[RunResult]:
    """Evaluate every run on every split (the first is the claims' split), write the Markdown (and JSON) report, and
    copy the runs named in `ship` ({checkpoint dir: run dir}) to shipped checkpoints carrying the measured metrics."""
    from contextrast.data import build_dataset

    ship = dict(ship or {})
    unknown = [r for r in ship.values() if Path(r).resolve() not in {Path(x).resolve() for x in run_dirs}]
    if unknown:
        raise ValueError(f"--ship names run(s) {unknown} that are not among the reported runs; list them too")
    if isinstance(splits, str):
        splits = [splits]
    datasets = {s: build_dataset(data, s, EvalTransform()) for s in splits}
    results = []
    for run in run_dirs:
        if progress:
            sizes = ", ".join(f"{s} ({len(d)} images)" for s, d in datasets.items())
            progress(f"evaluating {run} on {data}: {sizes}")
        with torch.inference_mode():
            results.append(summarise_run(run, datasets, data, device=device, kind=kind, flip=flip,
                                         diagnose_images=diagnose_images))
    claims = check_claims(results)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(render_markdown(results, claims, data, splits[0], command, kind))
    if json_out:
        Path(json_out).write_text(json.dumps({"data": data, "split": splits[0], "splits": list(splits),
                                              "checkpoint_kind": kind, "runs": [asdict(r) for r in results],
                                              "claims": claims, "chains": check_chains(results)}, indent=1))
    by_run = {Path(run).resolve(): r for run, r in zip(run_dirs, results)}
    for dest, run in ship.items():
        path = ship_checkpoint(run, dest, by_run[Path(run).resolve()], out, kind=kind)
        if progress:
            progress(f"shipped {run} as {path}")
    return results
