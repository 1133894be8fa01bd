from __future__ import annotations

import argparse

from contextrast.commands._common import add_config_arguments, config_from_args

HELP = "print parameters and GMACs of a model config, whole and per module"
EXAMPLES = """  contextrast flops --size 360 480
  contextrast flops --config configs/camvid.yaml --size 1024 2048
  contextrast flops --set model.backbone=resnet50 --set model.num_classes=19 --size 1024 2048"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--size", nargs=2, type=int, default=[360, 480], metavar=("H", "W"))


def run(args: argparse.Namespace) -> int:
    from contextrast.models import build_model
    from contextrast.models.cost import count_cost

    cfg = config_from_args(args)
    model = build_model(cfg.model)
    print(f"SCRNet backbone={cfg.model.backbone} align={cfg.model.align} context={cfg.model.context} "
          f"classes={cfg.model.num_classes}")
    print(count_cost(model, tuple(args.size), cfg.model.in_channels).table())
    return 0
