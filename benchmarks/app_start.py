"""Cold start of the lab (issue 9 §4): seconds from spawning `contextrast app --port <free> --no-worker` until
http://127.0.0.1:<port>/ answers 200; the process is then stopped.

    python -m benchmarks --only app
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.25


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_command(port: int) -> list[str]:
    """The `contextrast app` console script next to this interpreter (or on PATH), else `python -m contextrast.cli`."""
    script = Path(sys.executable).with_name("contextrast")
    found = str(script) if script.is_file() else shutil.which("contextrast")
    prefix = [found] if found else [sys.executable, "-m", "contextrast.cli"]
    return [*prefix, "app", "--port", str(port), "--no-worker"]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def _stop(process: subprocess.Popen) -> None:
    """Stop the app and whatever it started (its own process group), politely first."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=10)
    except (ProcessLookupError, PermissionError):
        pass
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def cold_start(timeout_s: float = 180.0, cwd: str | Path = ROOT) -> dict[str, Any]:
    """Spawn the app, poll its page until 200 or `timeout_s`; return seconds, command and outcome."""
    port = free_port()
    command = app_command(port)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    try:
        while time.perf_counter() - t0 < timeout_s:
            if _answers(url):
                return {"cold_start_s": time.perf_counter() - t0, "command": " ".join(command[-4:]), "ok": True}
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace")[-400:] if process.stderr else ""
                return {"ok": False, "error": f"app exited with {process.returncode} before answering: {err}"}
            time.sleep(POLL_S)
        return {"ok": False, "error": f"no answer at {url} within {timeout_s:.0f} s"}
    finally:
        _stop(process)


def run(quick: bool = False) -> dict[str, Any]:
    """One cold start in quick mode, the median of three otherwise (each a fresh process)."""
    tries = [cold_start() for _ in range(1 if quick else 3)]
    good = sorted(t["cold_start_s"] for t in tries if t["ok"])
    result: dict[str, Any] = {"tries": tries}
    if good:
        result["cold_start_s"] = good[len(good) // 2]
    return result
