"""Results of `python -m benchmarks`: the JSON file per machine, the printed table, and docs/performance.md.

`benchmarks/results/<machine slug>.json` keeps, per section, the latest result with when, in which mode and
under what load it was measured; a run of some sections (`--only`) replaces those and keeps the others.
docs/performance.md is generated from that JSON (never typed by hand), as is the printed table: one row per
figure, with its target and whether it is met.
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

from contextrast.registry import Registry

Row = tuple[str, str, str, str, str]  # section, measure, value, target, verdict
ROWS: Registry[list[Row]] = Registry("benchmark section")
SCHEMA = 1


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


# ----------------------------------------------------------------------------------------------- rows


def _verdict(ok: bool | None) -> str:
    return "" if ok is None else ("ok" if ok else "MISS")


def _top(ops: list[dict[str, Any]], n: int = 4) -> str:
    return ", ".join(f"{o['op'].removeprefix('aten::')} {100 * o['share']:.0f}%" for o in ops[:n])


@ROWS.register("inference")
def _inference_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = [("inference", "fp32 matmul peak (measured)", f"{r['peak_fp32_gflops']:.1f} GFLOP/s", "", "")]
    for m in r["models"]:
        rows.append(("inference", "model", m["name"], "", ""))
        for s in m["sizes"]:
            size = "×".join(map(str, s["size"]))
            for name, v in s["variants"].items():
                label = f"  {size} {name}" + (" *" if name == s["winner"] else "")
                if "error" in v:
                    rows.append(("inference", label, f"failed: {v['error'][:60]}", "", ""))
                    continue
                value = (f"{v['median_s']:.3f} s, {v['images_per_s']:.2f} img/s, eff {v['efficiency']:.2f}, "
                         f"×{v['speedup_vs_baseline']:.2f}, agree {100 * v['agreement']:.1f}%")
                big = tuple(s["size"]) == (1024, 2048)
                target = f"eff ≥ {r['efficiency_target']}" if big else ""
                rows.append(("inference", label, value, target,
                             _verdict(v["efficiency"] >= r["efficiency_target"]) if big else ""))
        if m.get("profile"):
            p = m["profile"]
            rows.append(("inference", f"  top ops ({'×'.join(map(str, p['size']))} {p['variant']})",
                         _top(p["top_ops"]), "", ""))
    return rows


@ROWS.register("cost")
def _cost_rows(r: dict[str, Any]) -> list[Row]:
    size = "×".join(map(str, r["size"]))
    rows: list[Row] = []
    for c in r["rows"]:
        rows.append(("cost", f"{c['backbone']} {c['align']}/{c['context']} @{size}",
                     f"{c['params_inference'] / 1e6:.2f} M params, {c['gmacs']:.1f} GMACs "
                     f"(×{c['ratio_to_paper_b']:.2f} of [B])", f"[B] {r['paper_b_gmacs']} G", ""))
    return rows


@ROWS.register("training")
def _training_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    ls = r.get("loss_speed")
    if ls is not None and "error" in ls:
        rows.append(("training", "step / loss timings", ls["error"][:100], "", ""))
    elif ls is not None:
        batch = "×".join(map(str, ls["input"]))
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
        rows.append(("training", "loss alone: loop reference / vectorised",
                     f"{ls['loss_speedup']:.1f}× ({ls['loss_reference_s']:.2f} s vs {ls['loss_vectorised_s']:.3f} s)",
                     f"≥ {r['loss_speedup_target']}×", _verdict(ls["loss_speedup"] >= r["loss_speedup_target"])))
    if r.get("profile_contextrast_step"):
        rows.append(("training", "  top ops (contextrast step, batch 1)",
                     _top(r["profile_contextrast_step"]["top_ops"]), "", ""))
    e = r["bane_edt"]
    batch = "×".join(map(str, e["input"]))
    if "scipy_s" in e:
        rows.append(("training", f"BANE EDT per batch ({batch}, 4 grids)",
                     f"torch {e['torch_s'] * 1e3:.1f} ms vs scipy {e['scipy_s'] * 1e3:.1f} ms per mask loop "
                     f"({e['masks']} masks): ×{e['speedup']:.2f}, max diff {e['max_abs_difference']:.1e}", "", ""))
    else:
        rows.append(("training", f"BANE EDT per batch ({batch})", f"torch {e['torch_s'] * 1e3:.1f} ms; "
                     f"scipy {e.get('scipy', 'absent')}", "", ""))
    return rows


def _seconds_rows(section: str, prefix: str, r: dict[str, Any]) -> list[Row]:
    """Generic rows for a result of another module: every `<name>_s` figure, with `<name>_target_s` or a
    single `target_s` as its target when present."""
    rows: list[Row] = []
    for k, v in r.items():
        if not k.endswith("_s") or "target" in k or not isinstance(v, (int, float)):
            continue
        target = r.get(k.removesuffix("_s") + "_target_s")
        if target is None and k in ("total_max_s",):
            target = r.get("target_s")
        rows.append((section, f"{prefix}{k.removesuffix('_s').replace('_', ' ')}", f"{v:.3f} s",
                     f"≤ {target} s" if target is not None else "",
                     _verdict(v <= target) if isinstance(target, (int, float)) else ""))
    return rows


@ROWS.register("app")
def _app_rows(r: dict[str, Any]) -> list[Row]:
    rows: list[Row] = []
    for part, prefix in (("analysis", "analysis: "), ("umap", "umap: ")):
        sub = r.get(part)
        if isinstance(sub, dict) and ("skipped" in sub or "error" in sub):
            rows.append(("app", prefix.rstrip(": "), sub.get("skipped") or sub.get("error", "")[:100], "", ""))
        elif isinstance(sub, dict):
            rows += _seconds_rows("app", prefix, sub)
    start = r.get("cold_start", {})
    if "cold_start_s" in start:
        rows.append(("app", "cold start of `contextrast app` until 200", f"{start['cold_start_s']:.1f} s", "", ""))
    elif start:
        rows.append(("app", "cold start", "; ".join(t.get("error", "") for t in start.get("tries", []))[:100], "", ""))
    return rows


@ROWS.register("gpu")
def _gpu_rows(r: dict[str, Any]) -> list[Row]:
    if "skipped" in r:
        return [("gpu", "GPU figures", f"skipped: {r['skipped']}", "", "")]
    rows = _inference_rows(r["inference"])
    rows = [("gpu", *row[1:]) for row in rows]
    t = r["training"]
    for label in ("fp32", "amp"):
        if label in t:
            v = t[label]
            rows.append(("gpu", f"step ratio contextrast/ce ({label})", f"{v['step_ratio']:.3f}, "
                         f"{v['images_per_s_contextrast']:.1f} img/s", f"≤ {1.15}", _verdict(v["step_ratio"] <= 1.15)))
    return rows


def rows(sections: dict[str, dict[str, Any]]) -> list[Row]:
    """Table rows of every section present (in registry order of the sections dict)."""
    out: list[Row] = []
    for name, entry in sections.items():
        result = entry["result"]
        if "skipped" in result and name != "gpu":
            out.append((name, "", f"skipped: {result['skipped']}", "", ""))
        elif "error" in result:
            out.append((name, "", f"failed: {result['error'][:100]}", "", ""))
        else:
            out += ROWS.get(name)(result)
    return out


def text_table(table: list[Row]) -> str:
    widths = [max(len(r[i]) for r in table + [("section", "measure", "value", "target", "")]) for i in range(4)]
    header = ("section", "measure", "value", "target", "")
    lines = []
    for r in [header, *table]:
        lines.append("  ".join(r[i].ljust(widths[i]) for i in range(4)) + ("  " + r[4] if r[4] else ""))
        if r is header:
            lines.append("-" * (sum(widths) + 12))
    return "\n".join(lines)


def _load_note(machine: dict[str, Any], entry: dict[str, Any]) -> str:
    load = entry.get("load_average")
    if not load:
        return ""
    busy = load[0] > 0.5 * machine.get("cores", 1)
    return f"load {load[0]:.1f} on {machine.get('cores')} cores" + (" — machine loaded" if busy else "")


def markdown(results: dict[str, Any], others: list[Path] | None = None) -> str:
    """docs/performance.md from a results file: the table, the load and mode of each section, the profiles."""
    m = results["machine"]
    lines = [
        "# Performance",
        "",
        "Generated by `python -m benchmarks` (or `contextrast bench`) from "
        f"`benchmarks/results/{m['slug']}.json`; do not edit by hand.",
        "",
        f"Machine: **{m['hardware']}** (`{m['slug']}`), torch {m['torch']}, {m['torch_threads']} threads"
        + (f", GPU {m['cuda']}" if m.get("cuda") else ", no GPU") + f". Last update {results['updated']}.",
        "",
        "Figures compared with each other (ratios, efficiency, speed-ups) are measured in the same run, calls "
        "interleaved; absolute seconds depend on how busy the machine was (load per section below).",
        "GMACs = conv + matmul multiply-adds / 1e9 of the inference path (METHOD.md §1 \"Cost\"); efficiency = "
        "achieved GFLOP/s (2 · GMACs / best latency) / measured fp32 matmul peak (bf16 variants are divided by the "
        "fp32 peak too, so on CPUs with bf16 units theirs can pass 1).",
        "",
        "| section | measured | mode | seconds | load |",
        "|---|---|---|---|---|",
    ]
    for name, entry in results["sections"].items():
        lines.append(f"| {name} | {entry['created']} | {entry['mode']} | {entry.get('seconds', 0):.0f} | "
                     f"{_load_note(m, entry)} |")
    lines += ["", "| section | measure | value | target | |", "|---|---|---|---|---|"]
    for r in rows(results["sections"]):
        lines.append("| " + " | ".join(c.replace("|", "\\|").replace("*", "\\*") for c in r) + " |")
    lines += ["", "`*` marks the fastest inference variant whose predictions agree with fp32 eager on ≥ 99% of pixels.",
              ""]
    profiles: list[tuple[str, list[dict[str, Any]]]] = []
    inference = results["sections"].get("inference", {}).get("result", {})
    for model in inference.get("models", []):
        if model.get("profile"):
            p = model["profile"]
            profiles.append((f"inference, {model['name']}, {'×'.join(map(str, p['size']))}, {p['variant']}",
                             p["top_ops"]))
    training = results["sections"].get("training", {}).get("result", {})
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


def write_docs(results: dict[str, Any], path: str | Path, results_dir: str | Path) -> Path:
    path = Path(path)
    own = f"{results['machine']['slug']}.json"
    others = sorted(p for p in Path(results_dir).glob("*.json") if p.name != own)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(markdown(results, others), encoding="utf-8")
    return path

