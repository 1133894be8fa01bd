"""What a trained model's modules do, measured on a labelled split (METHOD.md §4): BANE's kept share, where SRM's
offsets point, how peaked CRM's attention is, and the split's mIoU with parts switched off.

`diagnose(model, dataset, loss_cfg)` returns a plain dict (the `contextrast diagnose --json` file); the per-image
statistics are pure functions of one forward pass (`srm_statistics`, `crm_statistics`, `bane_kept_counts`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from contextrast.config import IGNORE_INDEX, LossConfig
from contextrast.engine.inference import class_indices
from contextrast.engine.metrics import ConfusionMatrix
from contextrast.losses.bane import bane_on_grid, fine_error_distance
from contextrast.losses.grid import nearest_resize
from contextrast.losses.sampling import make_generator
from contextrast.models import INTERVENTIONS, SCRNet, SCRNetOutput

BANE_PERCENTS = (25, 50, 75)
LAYER_STRIDES = (4, 8, 16, 32)  # E1..E4
STEP_STRIDES = (16, 8, 4)  # the fine grid of SRM steps 1/32→1/16, 1/16→1/8, 1/8→1/4
CROP = (256, 256)  # the training crop size: CRM's attention is compared there and at the split's own size


def row_entropy(attn: Tensor) -> Tensor:
    """Entropy (nats) of each row of a row-stochastic (B, R, N) matrix → (B, R)."""
    p = attn.float().clamp_min(1e-12)
    return -(p * p.log()).sum(-1)


def srm_statistics(output: SCRNetOutput) -> list[dict[str, float] | None]:
    """Per SRM step of one forward (batch 1): mean offset (dx, dy) in that grid's pixels, mean |Δ|, mean |Δ − mean Δ|
    (the local part), share of pixels with |Δ| > 2 px, and mean mask entropy (nats; None without a mask)."""
    stats: list[dict[str, float] | None] = []
    for inter in output.srm:
        if inter is None:
            stats.append(None)
            continue
        offset = inter.offset.float()[0]  # (2, h, w)
        mean = offset.mean(dim=(1, 2))
        norm = torch.linalg.vector_norm(offset, dim=0)
        local = torch.linalg.vector_norm(offset - mean[:, None, None], dim=0)
        entry = {"dx": float(mean[0]), "dy": float(mean[1]), "mean_abs": float(norm.mean()),
                 "mean_local": float(local.mean()), "share_over_2px": float((norm > 2.0).float().mean()),
                 "mask_entropy": math.nan}
        if inter.mask is not None:
            mask = inter.mask.float()[0]
            mask = mask / mask.sum(0, keepdim=True).clamp_min(1e-12)  # sigmoid masks: entropy of the weights' shape
            entry["mask_entropy"] = float(row_entropy(mask.flatten(1).T[None]).mean())
        stats.append(entry)
    return stats


def crm_statistics(output: SCRNetOutput) -> dict[str, float] | None:
    """CRM's attention in one forward (batch 1): mean row entropy and row maximum of A_c and A_s, and how much the
    spatial row depends on the query (mean total-variation distance of each row from the mean row: 0 = every
    query pixel attends the same way)."""
    if output.crm is None:
        return None
    a_c, a_s = output.crm.channel_attn.float()[0], output.crm.spatial_attn.float()[0]
    spread = 0.5 * (a_s - a_s.mean(0, keepdim=True)).abs().sum(-1)
    return {
        "channel_row_entropy": float(row_entropy(a_c[None]).mean()),
        "channel_row_max": float(a_c.amax(-1).mean()),
        "channels": a_c.shape[0],
        "spatial_row_entropy": float(row_entropy(a_s[None]).mean()),
        "spatial_row_max": float(a_s.amax(-1).mean()),
        "spatial_query_dependence": float(spread.mean()),
        "positions": a_s.shape[0],
    }


def bane_kept_counts(
    logits: Tensor, target: Tensor, cfg: LossConfig, generator: torch.Generator,
    percents: Sequence[float] = BANE_PERCENTS, ignore_index: int = IGNORE_INDEX,
) -> dict[int, dict[float, tuple[int, int]]]:
    """BANE with the loss's settings on each encoder layer's grid: {layer: {K_s: (kept, error pixels)}}.
    logits (B, K, H, W), target (B, H, W)."""
    fine = fine_error_distance(logits, target, cfg.bane_distance_stride, ignore_index)
    out: dict[int, dict[float, tuple[int, int]]] = {}
    for layer, stride in enumerate(LAYER_STRIDES):
        grid = (-(-target.shape[-2] // stride), -(-target.shape[-1] // stride))
        labels = nearest_resize(target, grid)
        out[layer] = {}
        for k_s in percents:
            _, sel = bane_on_grid(logits, labels, cfg, generator, fine, ignore_index, percent=k_s)
            out[layer][k_s] = (int(sel.keep.sum()), int(sel.error.sum()))
    return out


def _mean(values: list[float]) -> float | None:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else None


def _centre_crop(x: Tensor, size: tuple[int, int]) -> Tensor:
    h, w = x.shape[-2:]
    ch, cw = min(size[0], h), min(size[1], w)
    top, left = (h - ch) // 2, (w - cw) // 2
    return x[..., top:top + ch, left:left + cw]


def applicable_interventions(model: SCRNet) -> tuple[list[str], dict[str, str]]:
    """The interventions that change something in this model, and why the others do not apply."""
    cfg = model.config
    skipped: dict[str, str] = {}
    if cfg.align == "bilinear":
        for name in ("offsets_zeroed", "mean_offset_removed", "mean_offset_only", "mask_off"):
            skipped[name] = "align=bilinear has no SRM offsets"
    elif cfg.align == "srm_nomask":
        skipped["mask_off"] = "align=srm_nomask has no neighbour mask"
    if cfg.context not in ("crm", "crm_f4"):
        skipped["crm_off"] = f"context={cfg.context} has no CRM"
    return [n for n in INTERVENTIONS if n not in skipped], skipped


@torch.inference_mode()
def diagnose(
    model: SCRNet,
    dataset: Any,
    loss_cfg: LossConfig,
    max_images: int | None = None,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, Any]:
    """Run every measurement over the split (one image at a time, at its own size). `loss_cfg` gives BANE's settings
    (the model card's, or overridden). Returns the dict described in the module docstring (fractions in [0, 1])."""
    model.eval()
    device = next(model.parameters()).device
    count = len(dataset) if max_images is None else min(len(dataset), int(max_images))
    if count < 1:
        raise ValueError("the split has no images to diagnose")
    k = model.num_classes
    names, skipped = applicable_interventions(model)
    confusions = {n: ConfusionMatrix(k, dataset.info.ignore_index) for n in names}
    srm_rows: list[list[dict[str, float] | None]] = []
    crm_rows: dict[str, list[dict[str, float]]] = {"full": [], "crop": []}
    bane_totals: dict[int, dict[float, list[int]]] = {}
    generator = make_generator(device, seed)
    size = None
    for i in range(count):
        sample = dataset[i]
        x, y = sample["image"][None].to(device), sample["mask"][None].to(device)
        size = tuple(x.shape[-2:])
        out = model(x, return_intermediates=True)
        srm_rows.append(srm_statistics(out))
        if (c := crm_statistics(out)) is not None:
            crm_rows["full"].append(c)
            crop = crm_statistics(model(_centre_crop(x, CROP), return_intermediates=True))
            crm_rows["crop"].append(crop)
        for layer, per_k in bane_kept_counts(out.logits, y, loss_cfg, generator, ignore_index=dataset.info.ignore_index).items():
            for k_s, (kept, total) in per_k.items():
                acc = bane_totals.setdefault(layer, {}).setdefault(k_s, [0, 0])
                acc[0] += kept
                acc[1] += total
        for name in names:
            logits = out.logits if name == "as_trained" else model(x, intervention=INTERVENTIONS[name]).logits
            confusions[name].update(class_indices(logits), y)
        if progress is not None:
            progress(i + 1, count)

    result: dict[str, Any] = {"images": count, "image_size": list(size or ()), "not_applicable": {}}
    result["bane"] = {
        "settings": {"rule": loss_cfg.bane_rule, "distance_stride": loss_cfg.bane_distance_stride,
                     "k_s": loss_cfg.bane_percent},
        "kept_share": {f"E{layer + 1}": {str(int(k_s)): (kept / total if total else None)
                                         for k_s, (kept, total) in per_k.items()}
                       for layer, per_k in bane_totals.items()},
        "error_pixels": {f"E{layer + 1}": next(iter(per_k.values()))[1] for layer, per_k in bane_totals.items()},
    }
    if all(s is None for row in srm_rows for s in row):
        result["srm"] = None
        result["not_applicable"]["srm"] = f"align={model.config.align} has no SRM"
    else:
        steps = []
        for step, stride in enumerate(STEP_STRIDES):
            rows = [row[step] for row in srm_rows if row[step] is not None]
            dx, dy = _mean([r["dx"] for r in rows]), _mean([r["dy"] for r in rows])
            steps.append({
                "step": step, "grid_stride": stride,
                "mean_translation_px": [dx, dy],
                "mean_translation_image_px": [dx * stride, dy * stride],
                "translation_norm_px": math.hypot(dx, dy),
                "mean_abs_offset_px": _mean([r["mean_abs"] for r in rows]),
                "mean_local_offset_px": _mean([r["mean_local"] for r in rows]),
                "share_over_2px": _mean([r["share_over_2px"] for r in rows]),
                "mask_entropy": _mean([r["mask_entropy"] for r in rows]),
                "mask_entropy_max": math.log(9.0),
            })
        result["srm"] = steps
    if crm_rows["full"]:
        keys = [k for k in crm_rows["full"][0] if k not in ("channels", "positions")]
        result["crm"] = {key: _mean([r[key] for r in crm_rows["full"]]) for key in keys}
        result["crm"]["channel_row_entropy_max"] = math.log(crm_rows["full"][0]["channels"])
        result["crm"]["spatial_row_entropy_max"] = math.log(crm_rows["full"][0]["positions"])
        result["crm"]["at_crop"] = {"size": list(CROP), **{key: _mean([r[key] for r in crm_rows["crop"]]) for key in keys}}
    else:
        result["crm"] = None
        result["not_applicable"]["crm"] = f"context={model.config.context} has no CRM"
    result["interventions"] = {n: confusions[n].compute().miou for n in names}
    result["not_applicable"].update({f"interventions.{n}": why for n, why in skipped.items()})
    return result


def summary_lines(result: dict[str, Any]) -> list[str]:
    """A short human-readable reading of `diagnose`'s result."""
    lines = [f"{result['images']} images at {'×'.join(map(str, result['image_size']))}"]
    bane = result["bane"]
    lines.append(f"BANE kept share ({bane['settings']['rule']} rule, distances at stride "
                 f"{bane['settings']['distance_stride'] or 'of each layer'}):")
    for layer, shares in bane["kept_share"].items():
        cells = ", ".join(f"K_s {k}: {'—' if v is None else f'{100 * v:.1f}%'}" for k, v in shares.items())
        lines.append(f"  {layer} ({bane['error_pixels'][layer]} error pixels): {cells}")
    for step in result["srm"] or []:
        dx, dy = step["mean_translation_px"]
        entropy = step["mask_entropy"]
        lines.append(
            f"SRM step {step['step']} (1/{step['grid_stride']}): mean Δ ({dx:+.2f}, {dy:+.2f}) px "
            f"= ({dx * step['grid_stride']:+.1f}, {dy * step['grid_stride']:+.1f}) image px; |Δ| {step['mean_abs_offset_px']:.2f}, "
            f"local {step['mean_local_offset_px']:.2f}; {100 * step['share_over_2px']:.1f}% over 2 px; mask entropy "
            + ("—" if entropy is None else f"{entropy:.3f} of {step['mask_entropy_max']:.3f} nats")
        )
    if result["crm"]:
        c = result["crm"]
        lines.append(
            f"CRM channel rows: entropy {c['channel_row_entropy']:.3f} of {c['channel_row_entropy_max']:.3f} nats "
            f"(at {'×'.join(map(str, c['at_crop']['size']))}: {c['at_crop']['channel_row_entropy']:.3f}), max "
            f"{c['channel_row_max']:.3f}; spatial rows: entropy {c['spatial_row_entropy']:.3f} of "
            f"{c['spatial_row_entropy_max']:.3f}, max {c['spatial_row_max']:.3f}, query dependence "
            f"{c['spatial_query_dependence']:.3f}"
        )
    lines.append("mIoU: " + ", ".join(f"{n} {100 * v:.2f}" for n, v in result["interventions"].items()))
    for what, why in result["not_applicable"].items():
        lines.append(f"not applicable: {what} ({why})")
    return lines

