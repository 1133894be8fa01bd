"""Which processes exist: worker names (`host:pid`), liveness of a pid, and the watch that makes a
training process leave when the worker that started it is gone."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

WATCH_INTERVAL_S = 0.5


def worker_identity() -> str:
    """`host:pid`, the name a worker writes into the records it claims."""
    return f"{socket.gethostname()}:{os.getpid()}"


def pid_alive(pid: int | None) -> bool:
    """True when process `pid` exists on this machine and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a SIGKILLed process stays a zombie until its parent reaps it
        stat = Path(f"/proc/{int(pid)}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def exit_when_gone(pid: int, parent: int = 0) -> None:
    """Run in a daemon thread of a training process: leave at once (exit code 3) when process `pid`
    (the worker) is gone, or when `parent` is given and this process was re-parented, so no orphan
    trains on."""
    while True:
        time.sleep(WATCH_INTERVAL_S)
        if not pid_alive(pid) or (parent and os.getppid() != parent):
            os._exit(3)
