"""One real browser: Debian's headless chromium opens the lab and must show its four tabs and a
prediction (the page's load event runs the analysis of the pre-selected toy sample).

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: NUL-separated
JSON on fds 3/4), so the test needs no driver package. Skips only when chromium is absent."""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from lab_helpers import free_port, write_checkpoint  # noqa: E402
from PIL import Image

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser, pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")]


class HeadlessChromium:
    """A minimal DevTools-protocol client over chromium's debugging pipe."""

    def __init__(self, executable: str, window: tuple[int, int] = (1280, 1800)) -> None:
        self.profile = tempfile.mkdtemp(prefix="lab-chromium-")
        to_chrome_r, to_chrome_w = os.pipe()
        from_chrome_r, from_chrome_w = os.pipe()

        def wire_pipes() -> None:  # in the child: chromium reads commands on fd 3, answers on fd 4
            a, b = os.dup(to_chrome_r), os.dup(from_chrome_w)
            os.dup2(a, 3)
            os.dup2(b, 4)

        self.proc = subprocess.Popen(
            [executable, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", f"--user-data-dir={self.profile}",
             f"--window-size={window[0]},{window[1]}", "--remote-debugging-pipe", "about:blank"],
            preexec_fn=wire_pipes, pass_fds=(3, 4, to_chrome_r, from_chrome_w),
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self.write_fd, self.read_fd = to_chrome_w, from_chrome_r
        self.next_id, self.buffer = 0, b""

    def call(self, method: str, session: str | None = None, **params):
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = session
        os.write(self.write_fd, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self.buffer:
                chunk = os.read(self.read_fd, 1 << 16)
                if not chunk:
                    raise RuntimeError("chromium closed its debugging pipe")
                self.buffer += chunk
            raw, self.buffer = self.buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]

    def open(self, url: str) -> str:
        target = self.call("Target.createTarget", url=url)["targetId"]
        return self.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]

    def evaluate(self, session: str, expression: str):
        return self.call("Runtime.evaluate", session=session, expression=expression,
                         returnByValue=True)["result"].get("value")

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait()
        os.close(self.write_fd)
        os.close(self.read_fd)
        shutil.rmtree(self.profile, ignore_errors=True)


def test_page_renders_tabs_and_a_prediction(tmp_path):
    from app.main import launch

    write_checkpoint(tmp_path / "ckpt" / "toy")
    port = free_port()
    args = argparse.Namespace(checkpoint=[], checkpoints_dir=str(tmp_path / "ckpt"), data=None, port=port,
                              host="127.0.0.1", auth=None, insecure=False, max_file_size="5mb", max_side=512,
                              runs_dir=str(tmp_path / "runs"), no_worker=True)
    demo = launch(args, prevent_thread_lock=True)
    browser = HeadlessChromium(CHROMIUM)
    try:
        page = browser.open(f"http://127.0.0.1:{port}/")
        deadline, shown = time.time() + 90, False
        while time.time() < deadline and not shown:
            shown = bool(browser.evaluate(page, "document.body && document.body.innerText.includes('forward pass')"))
            time.sleep(0.5)
        tabs = browser.evaluate(page, "[...document.querySelectorAll('[role=tab]')].map(e => e.innerText.trim())")
        overlay_src = browser.evaluate(
            page, "[...document.querySelectorAll('img')].map(i => i.src).filter(s => s.includes('/file='))")
        shot = base64.b64decode(browser.call("Page.captureScreenshot", session=page, format="png")["data"])
        Path(tmp_path / "lab.png").write_bytes(shot)
    finally:
        browser.close()
        demo.close()
    assert shown, "the prediction's status line never appeared"
    assert tabs[:4] == ["Predict", "SRM offsets", "CRM attention", "BANE"]
    assert len(overlay_src) >= 2  # the input image and the prediction overlay (plus the maps)
    picture = np.asarray(Image.open(io.BytesIO(shot)).convert("RGB"))
    assert picture.shape[0] > 500 and picture.std() > 10  # a drawn page, not a blank one
