"""Arguments shared by several commands."""

from __future__ import annotations

import argparse

from contextrast.config import ExperimentConfig, load_config


def add_config_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML experiment config (model/loss/train sections); defaults if omitted")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set model.align=bilinear --set train.lr=0.02",
    )


def config_from_args(args: argparse.Namespace) -> ExperimentConfig:
    return load_config(args.config, args.overrides)


def add_precision_argument(p: argparse.ArgumentParser) -> None:
    from contextrast.engine.precision import PRECISIONS

    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="arithmetic of the forward pass: auto (bf16 autocast on CPUs with bf16 units, else fp32), "
                        "fp32 (turns bf16 off), bf16 (default: auto; see docs/performance.md)")


def switches_text() -> str:
    """The registered variants of every switch (read from the registries, so help lists what exists)."""
    from contextrast.losses import LOSSES, NEGATIVES
    from contextrast.models import ALIGNS, BACKBONES, CHANNEL_ENERGIES, CONTEXTS, SPATIAL_ENERGIES

    lines = []
    for key, registry in (("model.backbone", BACKBONES), ("model.align", ALIGNS), ("model.context", CONTEXTS),
                          ("model.channel_energy", CHANNEL_ENERGIES), ("model.spatial_energy", SPATIAL_ENERGIES),
                          ("loss.name", LOSSES), ("loss.negatives", NEGATIVES)):
        lines.append(f"  {key}:")
        descriptions = registry.describe()
        lines += [f"    {name:<16}{descriptions[name]}" for name in registry.choices()]
        if registry is BACKBONES:
            lines.append(f"    {'timm:<name>':<16}any timm model as a 4-stage encoder (pip install timm)")
    return "\n".join(lines)
