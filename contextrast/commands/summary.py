from __future__ import annotations

import argparse

from contextrast.commands._common import add_config_arguments, config_from_args

HELP = "print the model built from a config (modules and parameter counts)"
EXAMPLES = """  contextrast summary
  contextrast summary --set model.align=bilinear --set model.context=ppm"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)


def run(args: argparse.Namespace) -> int:
    from contextrast.models import build_model

    cfg = config_from_args(args)
    model = build_model(cfg.model)
    print(model)
    print(f"parameters: {sum(p.numel() for p in model.parameters()):,}")
    return 0
