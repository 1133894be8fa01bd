"""`contextrast` console command: one subcommand per module in `contextrast.commands`.

Each command module defines `HELP` (one line), `EXAMPLES` (text), `add_arguments(parser)` and
`run(args) -> int`. Modules are imported only when their command runs, so `contextrast --help`
stays fast and `contextrast flops` never imports gradio.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from contextrast.allocator import restart_with_jemalloc

# name → module under contextrast.commands. Add a line here when adding a command.
COMMANDS: dict[str, str] = {
    "summary": "summary",
    "flops": "flops",
    "train": "train",
    "eval": "evaluate",
    "diagnose": "diagnose",
    "predict": "predict",
    "data": "data",
    "app": "app",
    "worker": "worker",
    "jobs": "jobs",
    "report": "report",
    "bench": "bench",
}


def _available() -> dict[str, str]:
    """Commands whose module exists."""
    found = {}
    for name, module in COMMANDS.items():
        if importlib.util.find_spec(f"contextrast.commands.{module}") is not None:
            found[name] = module
    return found


def build_parser(load: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="contextrast",
        description="Contextrast Lab: train, evaluate, benchmark and inspect SCRNet / Contextrast segmentation "
        "models. `contextrast COMMAND --help` shows each command's options and examples.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, module_name in _available().items():
        if load is not None and name != load:
            sub.add_parser(name, help=f"(run `contextrast {name} --help`)", add_help=False)
            continue
        module = importlib.import_module(f"contextrast.commands.{module_name}")
        p = sub.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            epilog="examples:\n" + module.EXAMPLES,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def entry() -> int:
    """The `contextrast` program: restarted with jemalloc first where the system has it (`contextrast.allocator`),
    then `main` on the command line."""
    restart_with_jemalloc()
    return main()


def main(argv: list[str] | None = None) -> int:
    """One command: the command line's (`argv` None) or `argv`'s, in this process."""
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(load=command if command in _available() else None)
    args = parser.parse_args(argv)
    if not getattr(args, "_run", None):
        parser.print_help()
        return 0 if args.command is None else 2
    try:
        return int(args._run(args) or 0)
    except (ValueError, OSError) as e:  # bad input and file-system refusals: a message, not a traceback
        print(f"contextrast {args.command}: error: {e}", file=sys.stderr)
        return 2
    except FloatingPointError as e:  # a diverged run: its reason, and a failure exit code
        print(f"contextrast {args.command}: stopped: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(entry())
