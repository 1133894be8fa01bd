"""Cold start of the lab, the way a user meets it: seconds from spawning `contextrast app --no-worker --port P`
(with `--data SPEC` of the shipped CamVid model's data when it is found, so the page opens on a CamVid image)
until (1) http://127.0.0.1:P/ answers 200 and (2) the first prediction is served: the Predict tab's view
(`/predict`, the same view the page draws when its tabs appear), called through gradio_client with the page's
own default values. The interactions (`benchmarks.app_interactions`) then run on the last server started, which is stopped after.

    python -m benchmarks --only app
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
POLL_S = 0.05  # s between two tries of the page while the app starts: the answer is timed to within this
READY_TARGET_S = 6.0


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_command(port: int, data: str | None = None, runs_dir: str | None = None) -> list[str]:
    """The `contextrast app` console script next to this interpreter (or on PATH), else `python -m contextrast.cli`."""
    script = Path(sys.executable).with_name("contextrast")
    found = str(script) if script.is_file() else shutil.which("contextrast")
    prefix = [found] if found else [sys.executable, "-m", "contextrast.cli"]
    extra = (["--data", data] if data else []) + (["--runs-dir", runs_dir] if runs_dir else [])
    return [*prefix, "app", "--no-worker", "--port", str(port), *extra]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
        return False


def stop(process: subprocess.Popen) -> None:
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


def cold_start(data: str | None = None, timeout_s: float = 240.0, keep: bool = False,
               first_prediction: Callable[[str], Any] | None = None) -> dict[str, Any]:
    """Spawn the app, poll its page until 200, then ask for the first prediction (`first_prediction(url)`,
    default: the Predict view with the page's defaults). With `keep`, the running process is returned under
    'process' (the caller stops it)."""
    port = free_port()
    runs_dir = tempfile.mkdtemp(prefix="bench-app-runs-")
    command = app_command(port, data, runs_dir)
    url = f"http://127.0.0.1:{port}/"
    t0 = time.perf_counter()
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True)
    result: dict[str, Any] = {"command": "contextrast " + " ".join(command[command.index("app"):]), "ok": False}
    try:
        while not _answers(url):
            if process.poll() is not None:
                err = process.stderr.read().decode(errors="replace")[-400:] if process.stderr else ""
                result["error"] = f"app exited with {process.returncode} before answering: {err}"
                return result
            if time.perf_counter() - t0 > timeout_s:
                result["error"] = f"no answer at {url} within {timeout_s:.0f} s"
                return result
            time.sleep(POLL_S)
        result["page_s"] = time.perf_counter() - t0
        try:
            (first_prediction or analyse_defaults)(url)
            result["first_prediction_s"] = time.perf_counter() - t0
            result["ok"] = True
        except Exception as e:  # noqa: BLE001 - the page came up; say why the prediction did not
            result["error"] = f"first prediction failed: {type(e).__name__}: {str(e)[:200]}"
        if keep and result["ok"]:
            result["process"], result["url"], result["runs_dir"] = process, url, runs_dir
        return result
    finally:
        if "process" not in result:
            stop(process)
            shutil.rmtree(runs_dir, ignore_errors=True)


def analyse_defaults(url: str) -> Any:
    """The Predict view with every input at the page's default, as an API client asks for it (`/predict`: the view
    the page draws when it opens, through Gradio's select event of the first tab)."""
    from benchmarks.app_interactions import Endpoints

    return Endpoints(url).call("/predict")


def run(quick: bool = False, data: str | None = None, interactions: Callable[[str], dict[str, Any]] | None = None
        ) -> dict[str, Any]:
    """Cold starts (one in quick mode, five otherwise, each a fresh process): medians of page and first
    prediction; then `interactions(url)` on the last server."""
    tries = []
    count = 1 if quick else 5  # the median of five: single starts here vary by ±15 %
    for i in range(count):
        tries.append(cold_start(data, keep=i == count - 1 and interactions is not None))
    last = tries[-1]
    process, url, runs_dir = (last.pop(k, None) for k in ("process", "url", "runs_dir"))
    result: dict[str, Any] = {"tries": tries, "ready_target_s": READY_TARGET_S, "data": data}
    for key in ("page_s", "first_prediction_s"):
        good = sorted(t[key] for t in tries if key in t)
        if good:
            result[key] = good[len(good) // 2]
    if process is not None:
        try:
            result["interactions"] = interactions(url)
        finally:
            stop(process)
            shutil.rmtree(runs_dir, ignore_errors=True)
    return result
