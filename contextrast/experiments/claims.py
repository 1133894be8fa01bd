"""The papers' claims (METHOD.md §3) checked on runs: pairwise differences between variants that differ in one
switch, averaged over seeds, with the noise they must exceed; and the orderings METHOD.md §3 asks for.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import Any

from contextrast.experiments.formatting import percent
from contextrast.experiments.runs import VARIANT_KEYS, RunResult, group_by_variant

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


def mean_spread(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
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


def verdict(delta: float, within_noise: bool) -> str:
    """held (outside noise, in the paper's direction), refuted (outside noise, the other way) or undecided."""
    if within_noise:
        return "undecided"
    return "held" if delta > 0 else "refuted"


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
            (ma, sa), (mb, sb) = mean_spread([r.miou for r in runs_a]), mean_spread([r.miou for r in runs_b])
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
                # with neither a late-curve wobble nor a second seed the noise is unknown: no difference is outside it
                "noise_measured": (measured := seed_se is not None or any(
                    r.late_wobble is not None for r in (*runs_a, *runs_b))),
                "within_noise": (within := not measured
                                 or abs(ma - mb) <= NOISE_FACTOR * max(wobble, seed_se or 0.0)),
                "verdict": verdict(ma - mb, within),
                "per_seed_delta": paired_deltas(runs_a, runs_b),
                "late_mean_delta": late_delta,
            })
    return found


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
                    "observed": " > ".join(f"{v} ({percent(found[v])})" for v in ranked),
                    "held": None if missing else ranked == list(order)})
    return out
