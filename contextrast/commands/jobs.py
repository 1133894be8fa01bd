from __future__ import annotations

import argparse
import json
import time

HELP = "list, inspect, submit, cancel, stop-and-save or resume background fine-tuning jobs"
EXAMPLES = """  contextrast jobs list
  contextrast jobs submit --data toy --loss contextrast --iterations 200 --lr 0.002 --batch 8 --crop 128 160
  contextrast jobs submit --base checkpoints/camvid-scrnet-ce --data camvid:$CAMVID --loss contextrast
  contextrast jobs show 20240501-134501-1a2b3c
  contextrast jobs stop 20240501-134501-1a2b3c      # finish the iteration, save a checkpoint
  contextrast jobs cancel 20240501-134501-1a2b3c    # stop now, no checkpoint
  contextrast jobs resume 20240501-134501-1a2b3c    # continue an interrupted/stopped job from its last checkpoint"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--runs-dir", default="runs", help="where job records and runs live (as given to the worker)")
    p.add_argument("--redis-url", default=None, help="Redis queue and records (default: $CONTEXTRAST_REDIS_URL)")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    # also accepted after the action; SUPPRESS keeps a value given before it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--runs-dir", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument("--redis-url", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub.add_parser("list", help="all jobs, newest first", parents=[common])
    for name, text in (("show", "a job's record, progress and log tail"), ("cancel", "stop now, no checkpoint"),
                       ("stop", "finish the iteration and save"), ("resume", "queue a stopped/interrupted job again")):
        s = sub.add_parser(name, help=text, parents=[common])
        s.add_argument("job_id")
        if name == "show":
            s.add_argument("--json", action="store_true", help="the raw record")
            s.add_argument("--lines", type=int, default=20, help="log lines to show")
    s = sub.add_parser("submit", help="validate and queue a fine-tuning job", parents=[common])
    s.add_argument("--data", default="toy", help="dataset spec, e.g. toy or camvid:/path/to/camvid")
    s.add_argument("--base", default="", help="checkpoint directory to fine-tune from (empty: from scratch)")
    s.add_argument("--loss", default="contextrast", help="ce | pixel_contrast | ccl | contextrast")
    s.add_argument("--iterations", type=int, default=1000)
    s.add_argument("--lr", type=float, default=0.01)
    s.add_argument("--batch", type=int, default=8)
    s.add_argument("--crop", type=int, nargs=2, default=[256, 256], metavar=("H", "W"))
    s.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N")
    s.add_argument("--gpus", type=int, default=1, help="GPUs on one machine (> 1 runs through torchrun)")
    s.add_argument("--name", default="", help="a label for the job table")
    s.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="extra config override, e.g. --set train.val_interval=50 --set model.decoder_channels=64")
    s.add_argument("--wait", action="store_true", help="wait for the job to end, printing progress")


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else f"{seconds // 60}m{seconds % 60:02d}s"


def _line(r: dict) -> str:
    p = r["params"]
    miou = "-" if r.get("best_miou") is None else f"{100 * r['best_miou']:.1f}%"
    return (f"{r['id']}  {r['state']:<11} {r.get('iteration', 0):>6}/{r.get('total', 0):<6} "
            f"{100 * (r.get('progress') or 0):5.1f}%  eta {_duration(r.get('eta_s')):>7}  mIoU {miou:>6}  "
            f"{p.get('loss')} on {p.get('data')}  {p.get('name') or ''}")


def run(args: argparse.Namespace) -> int:
    from contextrast.jobs import control

    runs, url = args.runs_dir, args.redis_url
    if args.action == "list":
        jobs = control.list_jobs(runs, url)
        if not jobs:
            print(f"no jobs in {runs}")
        for r in jobs:
            print(_line(r))
        return 0
    if args.action == "show":
        r = control.get_job(args.job_id, runs, url)
        if args.json:
            print(json.dumps(r, indent=1))
            return 0
        print(_line(r))
        print(f"message: {r.get('message')}")
        if r.get("checkpoint"):
            print(f"checkpoint: {r['checkpoint']}")
        if r.get("error"):
            print(f"error: {r['error']}")
        print("--- log tail ---")
        print(control.job_log_tail(args.job_id, runs, args.lines, url))
        return 0
    if args.action in ("cancel", "stop", "resume"):
        action = {"cancel": control.cancel_job, "stop": control.stop_job, "resume": control.resume_job}[args.action]
        r = action(args.job_id, runs, url)
        print(f"{r['id']}: {r['state']} ({r['message']})")
        return 0
    params = {"data": args.data, "base_checkpoint": args.base, "loss": args.loss, "iterations": args.iterations,
              "lr": args.lr, "batch_size": args.batch, "crop": args.crop, "device": args.device, "gpus": args.gpus,
              "name": args.name, "overrides": args.overrides}
    r = control.submit_job(params, runs, url)
    print(f"submitted job {r['id']} (run dir {r['run_dir']})")
    if control.ensure_worker_running(runs) is not None:
        print(f"started a background worker (log: {runs}/worker.log)")
    while args.wait:
        time.sleep(2)
        r = control.get_job(r["id"], runs, url)
        print(_line(r), flush=True)
        if r["state"] not in ("queued", "running"):
            return 0 if r["state"] in ("finished", "stopped") else 1
    return 0
