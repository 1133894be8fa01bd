"""`contextrast app`: start the Contextrast Lab web app (Gradio)."""

from __future__ import annotations

import argparse

HELP = "start the Contextrast Lab web app (predictions, SRM offsets, CRM attention, BANE, embeddings, errors, training)"
EXAMPLES = """  contextrast app                                   # every checkpoint in checkpoints/, on 127.0.0.1:7860
  contextrast app --checkpoint runs/toy/final --data camvid:/data/camvid
  contextrast app --data camvid:/data/camvid --data-root /data   # clients may evaluate datasets under /data
  contextrast app --host 0.0.0.0 --auth-file ~/.contextrast-login --port 8080   # the file holds user:password
  CONTEXTRAST_AUTH=alice:secret contextrast app --host 0.0.0.0"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--checkpoint", action="append", default=[], metavar="DIR",
                   help="a checkpoint directory to load besides those in --checkpoints-dir (repeatable)")
    p.add_argument("--checkpoints-dir", default="checkpoints", metavar="DIR",
                   help="load every sub-directory with a model_card.json (default: checkpoints)")
    p.add_argument("--data", metavar="SPEC", help="a dataset spec, e.g. camvid:/data/camvid, whose val (or test, "
                   "train) split is listed before the built-in toy samples and opens the page")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--host", default="127.0.0.1", help="address to bind; other than localhost needs --auth or --insecure")
    p.add_argument("--auth", metavar="USER:PASS", help="require this user name and password (visible to other "
                   "users in `ps`: prefer --auth-file or $CONTEXTRAST_AUTH)")
    p.add_argument("--auth-file", metavar="FILE", help="require the user:password on the first line of FILE")
    p.add_argument("--data-root", action="append", default=[], metavar="DIR",
                   help="a folder whose datasets clients may name in dataset specs (repeatable); the --data "
                        "spec's folder is allowed too, and nothing else on disk")
    p.add_argument("--insecure", action="store_true", help="allow a non-local --host without --auth")
    p.add_argument("--max-file-size", default="20mb", help="largest upload accepted, e.g. 20mb (default)")
    p.add_argument("--max-side", type=int, default=2048,
                   help="images with a longer side are shrunk to this many pixels, with a notice (default 2048)")
    p.add_argument("--runs-dir", default="runs", metavar="DIR",
                   help="where fine-tuning jobs, their queue and their checkpoints live (default: runs)")
    p.add_argument("--no-worker", action="store_true",
                   help="do not start a background fine-tuning worker (jobs then wait for `contextrast worker`)")


def run(args: argparse.Namespace) -> int:
    from app.access import check_host, resolve_auth

    check_host(args.host, resolve_auth(args.auth, args.auth_file), args.insecure)  # before the torch-heavy imports
    if not 1 <= args.port <= 65535:
        raise ValueError(f"--port must be 1..65535; got {args.port}")
    from app.first_page import start  # torch and the models, not Gradio yet

    first_page = start(args)  # its thread prepares the first page while Gradio is imported and the page built
    from app.main import launch

    launch(args, first_page=first_page)
    return 0
