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
