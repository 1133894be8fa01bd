from __future__ import annotations

import argparse

from contextrast.commands._common import add_config_arguments, config_from_args, switches_text

HELP = "train an SCRNet variant with any loss; resumes when the run directory has a last/ checkpoint"
EXAMPLES = """  contextrast train --set train.data=toy --set train.iterations=200 --set train.run_dir=runs/toy
  contextrast train --config configs/camvid_cpu.yaml --set train.data=camvid:$CAMVID \\
      --set train.run_dir=runs/camvid-contextrast
  contextrast train --config configs/camvid_cpu.yaml --set train.data=camvid:$CAMVID --set loss.name=ce \\
      --set model.align=bilinear --set train.run_dir=runs/camvid-ce-bilinear
  torchrun --nproc_per_node 2 -m contextrast.cli train --config configs/camvid.yaml   # several GPUs
  (kill it and run the same command again: it resumes from run_dir/last)

switches (every key and its default: contextrast/config.py; what each means: docs/METHOD.md):
""" + switches_text()


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_config_arguments(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar (log lines only)")


def run(args: argparse.Namespace) -> int:
    from contextrast.engine.trainer import TrainHooks, train

    cfg = config_from_args(args)
    result = train(cfg, TrainHooks(progress_bar=not args.no_progress))
    if result.final_checkpoint is not None:
        best = "n/a" if result.best_miou is None else f"{100 * result.best_miou:.2f}%"
        print(f"{result.status} at iteration {result.iteration}; best val mIoU {best}; final checkpoint {result.final_checkpoint}")
    return 0
