"""One rank of a multi-GPU job, started by the worker as
`python -m torch.distributed.run --standalone --nproc_per_node N -m contextrast.jobs.torchrun_rank --job ID --runs-dir R`.

Each rank trains through `contextrast.engine.trainer.train` (DistributedDataParallel, NCCL) with the
same hooks as a one-process job; rank 0 reports to the job record. Every rank exits when the worker
that started torchrun dies, so torchrun then stops too.
"""

from __future__ import annotations

import argparse
import faulthandler
import os
import signal
import threading

from contextrast.jobs.processes import exit_when_gone
from contextrast.jobs.store import open_store
from contextrast.jobs.training import WATCH_PID_ENV, train_job


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", required=True)
    parser.add_argument("--runs-dir", required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    faulthandler.enable()
    if os.environ.get(WATCH_PID_ENV):
        threading.Thread(target=exit_when_gone, args=(int(os.environ[WATCH_PID_ENV]),), daemon=True).start()
    train_job(open_store(args.runs_dir), args.runs_dir, args.job)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
