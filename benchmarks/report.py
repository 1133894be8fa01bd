"""Results of `python -m benchmarks`: the JSON file per machine, the printed table, and docs/performance.md.

`benchmarks/results/<machine slug>.json` keeps, per section, the latest result with when, in which mode and
under what load it was measured; a run of some sections (`--only`) replaces those and keeps the others.
docs/performance.md is generated from that JSON alone (never typed by hand), as is the printed table: one row
per figure, with its target and whether it is met. Every share printed is divided by a derived limit
(benchmarks/limits.py); the table flags any share above 1.
"""

from __future__ import annotations

import datetime as _dt
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from contextrast.registry import Registry

Row = tuple[str, str, str, str, str]  # section, measure, value, target, verdict
ROWS: Registry[Any] = Registry("benchmark section")
SCHEMA = 2


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


# ----------------------------------------------------------------------------------------------- JSON


def results_path(directory: str | Path, slug: str) -> Path:
    return Path(directory) / f"{slug}.json"


def merge_results(path: str | Path, machine: dict[str, Any], sections: dict[str, dict[str, Any]],
                  command: str) -> dict[str, Any]:
    """The machine's results file with `sections` replaced (others kept from the previous run when it exists)."""
    path = Path(path)
    old: dict[str, Any] = {}
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = {}  # a damaged file is replaced, not merged
    kept = old.get("sections", {}) if old.get("schema") == SCHEMA else {}
    return {"schema": SCHEMA, "updated": now(), "command": command, "machine": machine,
            "sections": {**kept, **sections}}


def write_results(results: dict[str, Any], path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, default=float) + "\n", encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------------------- shares


SHARE = "share_of_limit"


def shares(results: Any, where: str = "") -> Iterator[tuple[str, float]]:
    """Every (path, value) of a `share_of_limit` anywhere in a results tree."""
    if isinstance(results, dict):
        for k, v in results.items():
            if k == SHARE and isinstance(v, (int, float)):
                yield where, float(v)
            else:
                yield from shares(v, f"{where}/{k}")
    elif isinstance(results, list):
        for i, v in enumerate(results):
            yield from shares(v, f"{where}/{i}")


# ----------------------------------------------------------------------------------------------- rows


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "MISS")


def _s(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None else f"{v:.{digits}f}"


def _top(ops: list[dict[str, Any]], n: int = 4) -> str:
    return ", ".join(f"{o['op'].removeprefix('aten::')} {100 * o['share']:.0f}%" for o in ops[:n])


def _size(s: Any) -> str:
    return "×".join(map(str, s))


@ROWS.register("limit")
def _limit_rows(r: dict[str, Any], section: str = "limit") -> list[Row]:
    lim = r["limit"]
    rows: list[Row] = []
    if "formula" in lim:
        rows.append((section, "fp32 limit (derived)", lim["formula"], "", ""))
        rows.append((section, "  clock", f"{_s(lim['clock_ghz'], 3)} GHz: {lim['clock_source']}", "", ""))
        rows.append((section, "  bf16 limit", (f"{lim['bf16_gflops']:.1f} GFLOP/s ({lim['bf16_note']})"
                                              if lim.get("bf16_gflops") else lim["bf16_note"]), "", ""))
    else:
        rows.append((section, "fp32 / bf16 limits", f"{_s(lim.get('fp32_gflops'), 0)} / {_s(lim.get('bf16_gflops'), 0)} "
                     f"GFLOP/s ({lim.get('source')})", "", ""))
    for name, p in r["probes"].items():
        rows.append((section, p.get("label") or f"{name.replace('_', ' ')} ({p['size']}²)",
                     f"{p['gflops']:.1f} GFLOP/s, share {_s(p[SHARE])} of the {p['limit']} limit", "share ≤ 1",
                     _verdict(p[SHARE] <= 1) if p[SHARE] is not None else ""))
    if "fma_loop" in r:
        rows.append((section, "FMA loop", f"not measured: {r['fma_loop']['not_measured']}", "", ""))
    return rows


def _variant_value(v: dict[str, Any]) -> str:
    return (f"{v['median_s']:.3f} s, {v['images_per_s']:.2f} img/s, {v['achieved_gflops']:.0f} GFLOP/s = share "
            f"{_s(v[SHARE])} of {v['limit']}, ×{_s(v['speedup_vs_baseline'])}, agree {100 * v['agreement']:.1f}%")


@ROWS.register("inference")
def _inference_rows(r: dict[str, Any], section: str = "inference") -> list[Row]:
    rows: list[Row] = []
    targets = r["targets"]
    for m in r["models"]:
        rows.append((section, "model", m["name"], "", ""))
        for s in m["sizes"]:
            size = _size(s["size"])
            big = tuple(s["size"]) == (1024, 2048)
            rows.append((section, f"  {size}: {s['gmacs']:.2f} GMACs", f"load {_s(s.get('load_average_1m'), 1)}", "", ""))
            for label, c in s.get("conv3x3", {}).items():
                rows.append((section, f"  {size} 3×3 convs alone, {label} channels_last",
                             f"{_s(c['gflops'], 0)} GFLOP/s = share {_s(c[SHARE])} ({len(c['shapes'])} shapes)", "", ""))
            for name, v in s["variants"].items():
                label = f"  {size} {name}" + (" *" if name == s["winner"] else "")
                if "error" in v:
                    rows.append((section, label, f"failed: {v['error'][:80]}", "", ""))
                    continue
                target = targets.get(v["limit"]) if big and v["limit"] == v["dtype"] else None
                rows.append((section, label, _variant_value(v), f"share ≥ {target}" if target else "",
                             _verdict(v[SHARE] >= target) if target and v[SHARE] is not None else ""))
        if m.get("profile"):
            p = m["profile"]
            rows.append((section, f"  top ops ({_size(p['size'])} {p['variant']})", _top(p["top_ops"]), "", ""))
    found = list(shares(r))
    if found:
        worst = max(v for _, v in found)
        rows.append((section, "every share of a derived limit", f"largest {worst:.2f} of {len(found)}", "≤ 1",
                     _verdict(worst <= 1)))
    return rows


@ROWS.register("precision")
def _precision_rows(r: dict[str, Any]) -> list[Row]:
    scope = "the whole split" if r["whole_split"] else "a subset (quick mode)"
    return [
        ("precision", f"{r['checkpoint']}, {r['split']}, {r['images']} images ({scope})",
         f"argmax agreement bf16/fp32 {100 * r['agreement']:.2f}%", f"≥ {100 * r['agreement_floor']:.1f}%",
         _verdict(r["agreement"] >= r["agreement_floor"])),
        ("precision", "  mIoU fp32 → bf16", f"{100 * r['miou_fp32']:.2f} → {100 * r['miou_bf16']:.2f} "
         f"({r['miou_delta_points']:+.2f} points)", f"within {r['miou_tolerance_points']:.1f} point",
         _verdict(abs(r["miou_delta_points"]) <= r["miou_tolerance_points"])),
        ("precision", "  seconds fp32 / bf16", f"{r['seconds_fp32']:.1f} / {r['seconds_bf16']:.1f} "
         f"(bf16 ×{r['bf16_speedup']:.2f})", "", ""),
        ("precision", "  default on this CPU", f"{r['default']}: {r['decision']}", "", ""),
    ]


@ROWS.register("eval")
def _eval_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [
        ("eval", f"{r['checkpoint']}, {r['split']}, {r['precision']}, batch {r['batch_size']}, images forwarded / "
         f"evaluated {r.get('forward_images', r['images'])} / {r.get('evaluate_images', r['images'])}",
         f"bare forward {r['forward_s']:.2f} s ({r['forward_ms_per_image']:.0f} ms/img), evaluate {r['evaluate_s']:.2f} s "
         f"({r['evaluate_ms_per_image']:.0f} ms/img)", "", ""),
        ("eval", "  evaluate / bare forward", f"{r['ratio']:.2f}", f"≤ {r['ratio_target']}",
         _verdict(r["ratio"] <= r["ratio_target"])),
    ]
    if "evaluate_batch1_no_loader_s" in r:
        rows.append(("eval", "  evaluate, 1 image per forward, no loader thread", f"{r['evaluate_batch1_no_loader_s']:.2f} s",
                     "", ""))
    cli = r.get("cli", {})
    rows.append(("eval", f"  `{cli.get('command', 'contextrast eval')}` end to end",
                 f"{cli['wall_s']:.1f} s" if "wall_s" in cli else cli.get("error", "")[:100], "", ""))
    return rows


@ROWS.register("cost")
def _cost_rows(r: dict[str, Any]) -> list[Row]:
    size = _size(r["size"])
    return [("cost", f"{c['backbone']} {c['align']}/{c['context']} @{size}",
             f"{c['params_inference'] / 1e6:.2f} M params, {c['gmacs']:.1f} GMACs (×{c['ratio_to_paper_b']:.2f} of [B])",
             f"[B] {r['paper_b_gmacs']} G", "") for c in r["rows"]]


@ROWS.register("training")
def _training_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    ls = r.get("loss_speed")
    if ls is not None and "error" in ls:
        rows.append(("training", "step / loss timings", ls["error"][:100], "", ""))
    elif ls is not None:
        batch = _size(ls["input"])
        rows += [
            ("training", f"step ce ({batch})", f"{ls['step_ce_s']:.3f} s, {ls['images_per_s_ce']:.2f} img/s", "", ""),
            ("training", "step contextrast", f"{ls['step_contextrast_s']:.3f} s, "
             f"{ls['images_per_s_contextrast']:.2f} img/s", "", ""),
            ("training", "step ratio contextrast/ce (wall)", f"{ls['step_ratio']:.3f}",
             f"≤ {r['step_ratio_target']}", _verdict(ls["step_ratio"] <= r["step_ratio_target"])),
        ]
        if "step_cpu_ratio" in ls:
            rows.append(("training", "step ratio contextrast/ce (CPU time)", f"{ls['step_cpu_ratio']:.3f}",
                         f"≤ {r['step_ratio_target']}", _verdict(ls["step_cpu_ratio"] <= r["step_ratio_target"])))
        rows += [
            ("training", "loss alone: loop reference / vectorised",
             f"{ls['loss_speedup']:.1f}× ({ls['loss_reference_s']:.2f} s vs {ls['loss_vectorised_s']:.3f} s)",
             f"≥ {r['loss_speedup_target']}×", _verdict(ls["loss_speedup"] >= r["loss_speedup_target"])),
        ]
    rows += _trainer_rows(r.get("trainer"))
    if r.get("profile_contextrast_step"):
        rows.append(("training", "  top ops (contextrast step, batch 1)",
                     _top(r["profile_contextrast_step"]["top_ops"]), "", ""))
    e = r["bane_edt"]
    batch = _size(e["input"])
    if "scipy_s" in e:
        rows.append(("training", f"BANE EDT per batch ({batch}, 4 grids)",
                     f"torch {e['torch_s'] * 1e3:.1f} ms vs scipy {e['scipy_s'] * 1e3:.1f} ms per mask loop "
                     f"({e['masks']} masks): ×{e['speedup']:.2f}, max diff {e['max_abs_difference']:.1e}", "", ""))
    else:
        rows.append(("training", f"BANE EDT per batch ({batch})", f"torch {e['torch_s'] * 1e3:.1f} ms; "
                     f"scipy {e.get('scipy', 'absent')}", "", ""))
    return rows


def _trainer_rows(t: dict[str, Any] | None) -> list[Row]:
    """The trainer's images/s per variant, beside the configured trainer's."""
    if not t:
        return []
    if "error" in t:
        return [("training", "trainer images/s", t["error"][:100], "", "")]
    rows: list[Row] = [("training", f"trainer ({t['config']}, batch {t['batch']}, {t['warmup']} warm-up + "
                        f"{t['timed']} timed iterations)", t["data"][:100], "", "")]
    for name, v in t["variants"].items():
        if "error" in v:
            rows.append(("training", f"  {name}", f"failed: {v['error'][:100]}", "", ""))
            continue
        ratio = v.get("ratio_to_configured")
        diff = v.get("max_loss_difference")
        rows.append(("training", f"  {name}", f"{v['images_per_s']:.2f} img/s (×{_s(ratio)} of configured), first "
                     f"iteration {v['first_iteration_s']:.1f} s, load {_s(v.get('load_average_1m'), 1)}"
                     + (f", loss within {100 * diff:.2f}% of fp32" if diff is not None and name != t["baseline"] else ""),
                     "", ""))
    return rows


def _seconds_rows(section: str, prefix: str, r: dict[str, Any]) -> list[Row]:
    """Rows for every `<name>_s` figure of a result, with `<name>_target_s` (or `target_s` for `total_max_s`)."""
    rows: list[Row] = []
    for k, v in r.items():
        if not k.endswith("_s") or "target" in k or not isinstance(v, (int, float)):
            continue
        target = r.get(k.removesuffix("_s") + "_target_s")
        if target is None and k == "total_max_s":
            target = r.get("target_s")
        rows.append((section, f"{prefix}{k.removesuffix('_s').replace('_', ' ')}", f"{v:.3f} s",
                     f"≤ {target} s" if target is not None else "", _verdict(v <= target) if target is not None else ""))
    return rows


def _note(sub: dict[str, Any]) -> str | None:
    for key in ("skipped", "not_measured", "error"):
        if key in sub:
            return str(sub[key])[:120]
    return None


@ROWS.register("app")
def _app_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    start = r.get("cold_start", {})
    if _note(start):
        rows.append(("app", "cold start", _note(start) or "", "", ""))
    else:
        command = start["tries"][-1].get("command", "contextrast app").split(" --port")[0]
        rows.append(("app", f"cold start of `{command}`: page answers", f"{_s(start.get('page_s'), 1)} s", "", ""))
        rows.append(("app", "  … and its first prediction is served (the Predict view, page defaults)",
                     f"{_s(start.get('first_prediction_s'), 1)} s", f"≤ {start['ready_target_s']} s",
                     _verdict(start["first_prediction_s"] <= start["ready_target_s"]) if "first_prediction_s" in start else ""))
        for t in start["tries"]:
            if not t.get("ok"):
                rows.append(("app", "  a cold start failed", t.get("error", "")[:120], "", ""))
        for name, v in start.get("interactions", {}).items():
            if _note(v):
                rows.append(("app", f"interaction: {name}", _note(v) or "", "", ""))
                continue
            budget = v.get("budget_s")
            rows.append(("app", f"interaction: {name} ({' + '.join(v['calls'])})", f"{v['median_s']:.2f} s",
                         f"≤ {budget} s" if budget else "", _verdict(v["median_s"] <= budget) if budget else ""))
    for part, prefix in (("analysis", "analysis (functions): "), ("umap", "umap pipeline (functions): ")):
        sub = r.get(part)
        if isinstance(sub, dict) and _note(sub):
            rows.append(("app", prefix.rstrip(": "), _note(sub) or "", "", ""))
        elif isinstance(sub, dict):
            rows += _seconds_rows("app", prefix, sub)
    return rows


@ROWS.register("browser")
def _browser_rows(b: dict[str, Any]) -> list[Row]:
    """Click to result in headless Chromium (benchmarks.app_browser)."""
    if _note(b):
        return [("browser", "click to result", _note(b) or "", "", "")]
    rows: list[Row] = []
    if "cold_start_drawn_s" in b:
        target = b.get("ready_target_s")
        starts = b.get("cold_starts", [])
        of = f" (median of {len(starts)})" if len(starts) > 1 else ""
        each = f"; the starts: {', '.join(_s(t['cold_start_drawn_s'], 1) for t in starts)} s" if of else ""
        rows.append(("browser", f"browser: `{b.get('command', 'contextrast app')}` cold start to first prediction "
                     f"drawn{of}",
                     f"{_s(b['cold_start_drawn_s'], 1)} s (page answered {_s(b.get('answered_s'), 1)} s{each})",
                     f"≤ {target} s" if target else "", _verdict(b["cold_start_drawn_s"] <= target) if target else ""))
    rows.append(("browser", f"browser: `{b.get('command', 'contextrast app')}` page open to drawn",
                 f"{_s(b.get('page_open_s'), 1)} s", "", ""))
    if "warm_up_after_open_s" in b:
        rows.append(("browser", "  then the app's background warm-up (UMAP kernels) until it rests",
                     f"{_s(b['warm_up_after_open_s'], 1)} s", "", ""))
    for name, v in b.get("interactions", {}).items():
        budget = v.get("budget_s")
        warm = f" (warm-up {v['warm_up_s']:.2f} s)" if "warm_up_s" in v else ""
        rows.append(("browser", f"click to result: {name}", f"{v['median_s']:.2f} s{warm}",
                     f"≤ {budget} s" if budget else "", _verdict(v["median_s"] <= budget) if budget else ""))
    for step, why in b.get("failed", {}).items():
        rows.append(("browser", f"step {step} not measured", f"failed: {why[:100]}", "", "MISS"))
    for problem in b.get("problems", []):
        rows.append(("browser", "the page showed a problem", str(problem)[:120], "none", "MISS"))
    return rows


@ROWS.register("gpu")
def _gpu_rows(r: dict[str, Any]) -> list[Row]:
    if "skipped" in r:
        return [("gpu", "GPU figures", r["skipped"], "", "")]
    rows = _limit_rows(r, "gpu") + _inference_rows(r["inference"], "gpu")
    t = r["training"]
    for label in ("fp32", "amp"):
        if label in t:
            v = t[label]
            rows.append(("gpu", f"training step contextrast/ce ({label if label == 'fp32' else t['amp_dtype']})",
                         f"{v['step_ratio']:.3f}, {v['images_per_s_contextrast']:.1f} img/s", "≤ 1.15",
                         _verdict(v["step_ratio"] <= 1.15)))
    job = r.get("finetune_job", {})
    rows.append(("gpu", f"fine-tuning job via the worker ({job.get('iterations')} it., batch {job.get('batch_size')})",
                 f"{job.get('state')} in {_s(job.get('seconds'), 1)} s, {_s(job.get('images_per_s'), 1)} img/s"
                 + (f"; {job['error']}" if job.get("error") else ""), "", ""))
    return rows


def rows(sections: dict[str, dict[str, Any]]) -> list[Row]:
    """Table rows of every section present."""
    out: list[Row] = []
    for name, entry in sections.items():
        result = entry["result"]
        if "skipped" in result and name != "gpu":
            out.append((name, "", str(result["skipped"]), "", ""))
        elif "error" in result:
            out.append((name, "", f"failed: {result['error'][:100]}", "", ""))
        else:
            out += ROWS.get(name)(result)
    return out


def text_table(table: list[Row]) -> str:
    header = ("section", "measure", "value", "target", "")
    widths = [max(len(r[i]) for r in [*table, header]) for i in range(4)]
    lines = []
    for r in [header, *table]:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(4)) + ("  " + r[4] if r[4] else ""))
        if r is header:
            lines.append("-" * (sum(widths) + 12))
    return "\n".join(lines)


OTHERS_LOADED = 0.1  # the share of the cores other processes may use during a section before it counts as loaded


def _loaded(entry: dict[str, Any], cores: int) -> bool:
    """Other processes competed for the cores: measured as their CPU share when recorded (the load average
    counts the benchmark's own threads too), else judged by the load average."""
    if "others_cpu_share" in entry:
        return entry["others_cpu_share"] > OTHERS_LOADED
    before, after = entry.get("load_average_before"), entry.get("load_average")
    return bool(after) and max(after[0], before[0] if before else 0) > 0.5 * cores


def _load(entry: dict[str, Any], cores: int) -> str:
    before, after = entry.get("load_average_before"), entry.get("load_average")
    if not after:
        return ""
    text = (f"{before[0]:.1f} → " if before else "") + f"{after[0]:.1f}"
    if "others_cpu_share" in entry:
        text += f"; other processes {100 * entry['others_cpu_share']:.0f} % of the cores"
    return text + (" — loaded" if _loaded(entry, cores) else "")


COMPILE_REPRO = '''```python
import torch, torch.nn.functional as F

def pool_to(x, ref):                       # CRM pools F1..F3 to F4's size the same way
    return F.adaptive_avg_pool2d(x, ref.shape[-2:])

x, ref = torch.randn(1, 8, 256, 512), torch.randn(1, 8, 32, 64)
torch.compile(pool_to, dynamic=True)(x, ref)
# InductorError: LoweringException: TypeError: cannot determine truth value of Relational:
#   (((2*s13 + 510)//s13))*(((2*s28 + 254)//s28)) > 25
torch.compile(pool_to, dynamic=False)(x, ref)   # fine: one static compile per input size
```'''


def limit_terms(lim: dict[str, Any]) -> list[str]:
    """The derived CPU limit term by term, each with where it comes from (Markdown bullets)."""
    if "formula" not in lim:
        return [f"- {lim.get('device', 'GPU')}: fp32 {_s(lim.get('fp32_gflops'), 0)} GFLOP/s, bf16 "
                f"{_s(lim.get('bf16_gflops'), 0)} GFLOP/s ({lim.get('source')})"]
    per_unit = lim["fp32_flop_per_cycle_per_core"] // 2
    return [
        f"- CPU: {lim.get('model_name') or '?'} ({lim.get('vendor')}, family {lim.get('family')} model "
        f"{lim.get('model')}); vector flags: {', '.join(lim.get('vector_flags') or []) or 'none'}.",
        f"- **cores = {lim['cores']}**: physical cores this process may run on (distinct `physical id`/`core id` "
        "pairs of /proc/cpuinfo in its affinity mask), at most torch's thread count.",
        f"- **FMA units × fp32 lanes = {per_unit}** fused multiply-adds per cycle per core: {lim['design']}"
        + ("" if lim.get("design_known") else " — an assumption (core design not in the table), erring high") + ".",
        "- **× 2**: one fused multiply-add is 2 FLOPs (and a MAC of the model's count is 2 FLOPs too).",
        f"- **clock = {_s(lim['clock_ghz'], 3)} GHz**: {lim['clock_source']} (base clock "
        f"{_s(lim.get('base_clock_ghz'), 3)} GHz, cpufreq maximum "
        + (f"{lim['max_clock_ghz']:.3f} GHz" if lim.get("max_clock_ghz") else "not published")
        + f", measured {_s(lim.get('measured_clock_ghz'), 3)} GHz: best of 200 dependent add chains of 0.5 ms).",
        f"- **fp32 limit** = {lim['formula']}.",
        "- **bf16 limit**: " + (f"{lim['bf16_gflops']:.0f} GFLOP/s — {lim['bf16_note']}." if lim.get("bf16_gflops")
                                else f"not available on this CPU — {lim['bf16_note']}."),
    ]


LOADED_NOTE = (
    "**These figures were taken on a loaded machine**: the 1-minute load average was {start} at the start and "
    "{end} at the end on {cores} cores (other processes, such as training runs, competed for the cores). What an "
    "idle run is expected to change: absolute seconds fall and images/s and shares of the limit rise, by up to "
    "the factor of CPU time this run was denied; first calls and process starts (cold start, `contextrast eval` "
    "end to end) gain the most. Ratios measured in the same run with interleaved calls (speed-ups, eval / forward, "
    "bf16 agreement, mIoU) should move least. No idle figure is given here: run `python -m benchmarks` on an idle "
    "machine to get them."
)

OLD_SHARES_NOTE = (
    "Earlier versions of this page reported \"efficiency\" 1.01–1.91 at 360×480 against a \"measured fp32 matmul "
    "peak\" of 183 GFLOP/s. The MAC count was not the cause (achieved FLOP/s counted 2 FLOPs per MAC, like the "
    "matmul's 2·n³) and no result was cached: the denominator was a measured rate (one 2048² `torch.matmul`, best "
    "of 5, on a loaded machine), which is a lower bound of the hardware's peak, not a limit. oneDNN's "
    "convolutions, channels_last ones above all, ran faster than that matmul, and bf16 variants were divided by "
    "the fp32 figure too. Every share below is divided by the derived limit instead, and the table flags any "
    "share above 1. A second cause showed up while deriving the limit: a clock read from long dependent chains "
    "(20M steps) on a loaded machine came out at 2.8–3.5 GHz instead of 4.2 GHz, and a 256² matmul beat that "
    "limit by 4–15 %; the chains are now short enough to run between two scheduler switches."
)


def markdown(results: dict[str, Any], others: list[Path] | None = None) -> str:
    """docs/performance.md from a results file: how figures are judged, the load per section, the table,
    the torch.compile note, the profiles."""
    m = results["machine"]
    secs = results["sections"]
    lines = [
        "# Performance", "",
        "Generated by `python -m benchmarks` (or `contextrast bench`) from "
        f"`benchmarks/results/{m['slug']}.json`; do not edit by hand.", "",
        f"Machine: **{m.get('cpu', m['hardware'])}**, torch {m['torch']}, {m['torch_threads']} torch thread(s)"
        + (f" (OMP_NUM_THREADS={m['omp_num_threads']})" if m.get("omp_num_threads") else "")
        + (f", GPU {m['cuda']}" if m.get("cuda") else ", no GPU") + _allocator_words(m.get("allocator"))
        + f". Last update {results['updated']}.", "",
        "## How figures are judged", "",
        "- **The limit is derived, not measured**: cores × fp32 FMA lanes per cycle (from the CPU's vector "
        "extensions and core design) × 2 FLOPs × clock (the maximum clock where cpufreq publishes it, else the "
        "higher of the base clock and the measured one), and 2× that for bf16 only where the CPU has bf16 "
        "dot-product units (AMX: Intel's tile rate). A measured matmul rate is not a limit: it is a lower bound of "
        "the hardware's peak, and convolutions that beat the matmul library divide by it to a share above 1. "
        "The FMA loop (every core running nothing but FMAs) checks the derivation: ~1 of the limit where it is "
        "right; where it beats the clock read for the limit (a shared host's clock drifts), its rate sets the "
        "clock.",
        "- **1 MAC = 2 FLOPs** on both sides: GMACs (conv + matmul multiply-adds of the inference path, METHOD.md "
        "§1 \"Cost\") × 2 / best latency, against the limit in FLOP/s. fp32 variants are judged against the fp32 "
        "limit, bf16 variants against the bf16 limit where bf16 units exist, else against fp32 (emulated bf16 "
        "runs on the fp32 units).",
        "- Beside every share: the large-matmul rate (fp32 through the BLAS, MKL, and through oneDNN as a 1×1 "
        "convolution) and the network's own 3×3 convolutions run alone at the same size, i.e. how much of the "
        "limit the libraries reach on this network's shapes.",
        "- Compared figures (ratios, speed-ups, agreement) are measured in the same run with calls interleaved; "
        "absolute seconds depend on how busy the machine was: the 1-minute load average before → after each "
        "section is below (it counts the benchmark's own threads, ~2 while a section runs), with the share of the "
        f"cores that other processes used meanwhile (above {100 * OTHERS_LOADED:.0f} %: loaded, the seconds are "
        "inflated).", "",
        OLD_SHARES_NOTE, "",
    ]
    limit = secs.get("limit", {}).get("result", {}).get("limit")
    if limit:
        lines += ["## The limit of this machine", "", *limit_terms(limit), ""]
    start, end = m.get("load_average_start"), m.get("load_average_end")
    if any(_loaded(entry, m.get("cores", 1)) for entry in secs.values()):
        lines += [LOADED_NOTE.format(start=_s(start[0] if start else None, 1), end=_s(end[0] if end else None, 1),
                                     cores=m.get("cores")), ""]
    lines += [
        "| section | measured | mode | seconds | 1-min load (before → after); other processes |", "|---|---|---|---|---|",
    ]
    for name, entry in secs.items():
        lines.append(f"| {name} | {entry['created']} | {entry['mode']} | {entry.get('seconds', 0):.0f} | "
                     f"{_load(entry, m.get('cores', 1))} |")
    lines += ["", "| section | measure | value | target | |", "|---|---|---|---|---|"]
    for r in rows(secs):
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("*", "\\*") for c in r) + " |")
    lines += ["", "`*` marks the fastest inference variant whose predictions agree with fp32 eager on ≥ 99% of pixels.",
              "", "## torch.compile", "",
              "`compile` is `torch.compile` of the channels_last network with static shapes (`dynamic=False`): one "
              "compilation per input size. With dynamic shapes — what `torch.compile` switches to by itself when a "
              "second input size arrives — Inductor cannot lower `adaptive_avg_pool2d` to a symbolic output size:",
              "", COMPILE_REPRO, ""]
    models = secs.get("inference", {}).get("result", {}).get("models", [])
    compiled = [(mm["name"], _size(s["size"]), name, v) for mm in models for s in mm["sizes"]
                for name, v in s["variants"].items() if name.startswith("compile")]
    if compiled:
        lines += ["`compile_frozen` adds Inductor's freezing (`torch._inductor.config.patch(freezing=True)` while "
                  "the first call compiles): the weights become constants of the graph, so batch norm is folded "
                  "into the convolutions and the weights are pre-packed in oneDNN's layouts once instead of at "
                  "every call; the compiled graph also writes the fp32 logits itself. `compile_frozen_bf16` runs "
                  "it under bf16 autocast.", ""]
    for name, size, variant, v in compiled:
        lines.append(f"- {name}, {size}, `{variant}`: " + (f"failed: {v['error'][:160]}" if "error" in v else
                     f"first call (compilation) {v['first_call_s']:.0f} s, then {v['median_s']:.3f} s a call "
                     f"(×{_s(v['speedup_vs_baseline'])} of eager, share {_s(v[SHARE])} of {v['limit']})"))
    if compiled:
        lines += ["", "Compilation costs far more than it saves over a val split on a CPU, so `eval` and `predict` "
                  "run eager; the variants stay in the benchmark to show when that changes.", ""]
    lines += _ceiling_lines(models)
    lines += _allocator_lines(secs.get("inference", {}).get("result", {}).get("allocator_effect"))
    profiles: list[tuple[str, list[dict[str, Any]]]] = []
    for model in secs.get("inference", {}).get("result", {}).get("models", []):
        if model.get("profile"):
            p = model["profile"]
            profiles.append((f"inference, {model['name']}, {_size(p['size'])}, {p['variant']}", p["top_ops"]))
    training = secs.get("training", {}).get("result", {})
    if training.get("profile_contextrast_step"):
        profiles.append(("training step, contextrast, batch 1×3×360×480", training["profile_contextrast_step"]["top_ops"]))
    if profiles:
        lines += ["## Where the time goes (torch.profiler, self time)", ""]
        for title, ops in profiles:
            lines += [f"**{title}**", "", "| operator | calls | ms | share |", "|---|---|---|---|"]
            lines += [f"| {o['op']} | {o['calls']} | {o['self_ms']:.1f} | {100 * o['share']:.1f}% |" for o in ops]
            lines.append("")
    if others:
        lines += ["## Other machines", ""] + [f"- `benchmarks/results/{p.name}`" for p in others] + [""]
    return "\n".join(lines)


def _allocator_words(a: dict[str, Any] | None) -> str:
    if not a:
        return ""
    conf = f" (`MALLOC_CONF={a['malloc_conf']}`)" if a.get("malloc_conf") else ""
    return f", memory allocator: {a['allocator']}{conf}"


def _allocator_lines(effect: dict[str, Any] | None) -> list[str]:
    """The same variant at the same size in one fresh process per allocator (`benchmarks.inference.
    allocator_effect`): why `contextrast` starts itself with jemalloc (`contextrast.allocator`)."""
    if not effect:
        return []
    told = []
    for choice in ("system", "jemalloc"):
        e = effect.get(choice) or {}
        told.append(f"{choice}: " + (f"{e['median_s']:.3f} s" if e.get("median_s") else
                                     f"not measured ({e.get('error', 'no figure')})"))
    return ["## Memory allocator", "",
            f"`{effect['variant']}` at {_size(effect['size'])}, median of {effect['repeats']} calls in a fresh "
            f"process each: {'; '.join(told)}. glibc's malloc returns every freed block of 32 MiB or more to the "
            "kernel, so each forward pass faults its large activations in again, page by page; jemalloc with "
            "`dirty_decay_ms:-1` keeps them mapped. `contextrast` and `python -m benchmarks` start themselves with "
            "jemalloc where the system has it (`CONTEXTRAST_ALLOCATOR=system` keeps glibc's; "
            "`contextrast.allocator`).", ""]


def _ceiling_lines(models: list[dict[str, Any]]) -> list[str]:
    """At 1024×2048, the best share of each limit beside the share the network's own 3×3 convolutions reach run
    alone (the most the convolution library gives its arithmetic): the distance left to the targets. Only variants
    whose predictions agree with fp32 eager count (`benchmarks.inference.AGREEMENT_FLOOR`)."""
    from benchmarks.inference import AGREEMENT_FLOOR

    lines = []
    for m in models:
        for s in m["sizes"]:
            if tuple(s["size"]) != (1024, 2048):
                continue
            for label, c in s.get("conv3x3", {}).items():
                runs = [(n, v) for n, v in s["variants"].items() if v.get("limit") == label and v.get(SHARE)
                        and v.get("agreement", 0) >= AGREEMENT_FLOOR]
                if not runs or c.get(SHARE) is None:
                    continue
                best, v = max(runs, key=lambda nv: nv[1][SHARE])
                head = (f"- {m['name']}, 1024×2048, {label}: best `{best}` share {_s(v[SHARE])} of the {label} "
                        f"limit; its 3×3 convolutions run alone {_s(c[SHARE])}.")
                lines.append(head + (" The rest of the network (upsampling, concatenation, SRM's sampling, batch norm "
                                     "where it is not folded) is memory-bound work far below that rate, so the "
                                     "convolutions' share is the most the whole network can approach."
                                     if v[SHARE] <= c[SHARE] else
                                     " The whole network beats its convolutions run one by one in this run, so that "
                                     "probe (eager calls, each weight laid out for the convolution library again at "
                                     "every call; the frozen graph does it once) is no ceiling here."))
    return (["## Distance to the limit at 1024×2048", "", *lines, ""]) if lines else []


def write_docs(results: dict[str, Any], path: str | Path, results_dir: str | Path) -> Path:
    path = Path(path)
    own = f"{results['machine']['slug']}.json"
    others = sorted(p for p in Path(results_dir).glob("*.json") if p.name != own)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results, others), encoding="utf-8")
    return path
