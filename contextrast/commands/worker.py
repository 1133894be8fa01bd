from __future__ import annotations

import argparse

HELP = "run a background fine-tuning worker (huey consumer) for the jobs queued in a runs directory"
EXAMPLES = """  contextrast worker                          # serves runs/queue.sqlite3 with one job slot
  contextrast worker --runs-dir /data/runs --workers 2
  CONTEXTRAST_REDIS_URL=redis://:SECRET@queue-host:6379/0 contextrast worker   # one of several machines sharing a
  # password-protected queue (rediss://… for TLS; see the README on what a shared queue trusts)"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", default="runs", help="where job records, runs and the SQLite queue live")
    p.add_argument("--workers", type=int, default=1, help="jobs run at the same time by this worker")
    p.add_argument("--redis-url", default=None,
                   help="Redis queue and records instead of SQLite (default: $CONTEXTRAST_REDIS_URL)")
    p.add_argument("--exit-with-parent", action="store_true",
                   help="once the process that started this worker is gone, finish the running jobs and exit "
                        "(how `contextrast app` starts its worker)")


def run(args: argparse.Namespace) -> int:
    from contextrast.jobs.worker import run_worker

    return run_worker(args.runs_dir, args.workers, args.redis_url, exit_with_parent=args.exit_with_parent)
