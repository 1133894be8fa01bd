"""A person at the lab, in headless Chromium: `LabPage` clicks, types, uploads and reads the page the way a user
does (Playwright driving the system's chromium, no browser download), `serve` runs `contextrast app` in a process
of its own, `browser` opens a page. Used by the click-to-result benchmark (benchmarks.app_browser) and the browser
test (tests/test_browser.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from benchmarks.app_start import POLL_S, app_command, free_port
from benchmarks.machine import cpu_seconds

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]
# An "Error" badge: what Gradio's status tracker shows on an output whose event raised
ERROR_BADGES_JS = """() => [...document.querySelectorAll('.error, [class*="error"]')]
  .filter(e => e.offsetParent !== null && (e.innerText || '').trim() === 'Error').length"""
PENDING_JS = "() => document.querySelectorAll('.wrap.center.full:not(.hide)').length"
MESSAGES_JS = """() => [...document.querySelectorAll('.lab-message')]
  .filter(e => e.offsetParent !== null && !e.parentElement.closest('.lab-message'))
  .map(e => (e.querySelector('.prose') || e).innerText.trim()).filter(t => t)"""  # the text, not a progress timer
TOASTS_JS = """() => [...document.querySelectorAll('.toast-body, [data-testid="toast-body"]')]
  .map(e => e.innerText.trim()).filter(t => t)"""


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextmanager
def serve(*app_args: str, cwd: str | Path = ROOT, timeout_s: float = 240.0) -> Iterator[str]:
    """`contextrast app --port P --no-worker APP_ARGS` in its own process group, on 127.0.0.1; yields its URL and
    stops it (and anything it started) afterwards. `serve.pid` is the app's process id while it runs."""
    import urllib.request

    port = free_port()
    command = [*app_command(port), *app_args]
    process = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               start_new_session=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + timeout_s
        while time.time() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the app exited: {process.stderr.read().decode(errors='replace')[-800:]}")
            try:
                with urllib.request.urlopen(url, timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                time.sleep(POLL_S)
        else:
            raise RuntimeError(f"no answer at {url} within {timeout_s:.0f} s")
        serve.pid = process.pid  # type: ignore[attr-defined]
        yield url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=15)


def settle(pid: int, timeout_s: float = 120.0, busy: float = 0.1, window_s: float = 2.0) -> float:
    """Seconds until process `pid` (and the threads it runs) uses under `busy` of one core over `window_s`: the
    app's start-up warm-up (UMAP's numba kernels, after the first page) is over. Linux /proc only; elsewhere
    0 at once."""
    t0 = time.perf_counter()
    before = cpu_seconds(pid)
    while before is not None and time.perf_counter() - t0 < timeout_s:
        time.sleep(window_s)
        after = cpu_seconds(pid)
        if after is None or after - before < busy * window_s:
            break
        before = after
    return time.perf_counter() - t0


class LabPage:
    """One browser tab on the lab, with the few moves a person makes."""

    def __init__(self, page: Any) -> None:
        self.page = page

    def open(self, url: str, timeout_s: float = 180.0) -> float:
        t0 = time.perf_counter()
        self.page.goto(url)
        self.wait_text("predict-info", "forward pass", timeout_s)
        return time.perf_counter() - t0

    def text(self, elem_id: str) -> str:
        return self.page.evaluate(f"() => document.getElementById('{elem_id}')?.innerText || ''")

    def wait_text(self, elem_id: str, words: str | list[str], timeout_s: float = 60.0) -> None:
        """Until the element's text holds `words` (every one of a list)."""
        self.page.wait_for_function(
            "([id, ws]) => ws.every(w => (document.getElementById(id)?.innerText || '').includes(w))",
            arg=[elem_id, [words] if isinstance(words, str) else list(words)], timeout=timeout_s * 1000, polling=50)

    def wait_idle(self, timeout_s: float = 120.0) -> None:
        """Until no output shows a pending status."""
        self.page.wait_for_function(f"() => ({PENDING_JS})() === 0", timeout=timeout_s * 1000, polling=100)

    def picture(self, elem_id: str) -> str:
        """The source of an image component's picture, or of a plotly figure's image."""
        return self.page.evaluate(f"""() => {{ const e = document.getElementById('{elem_id}');
            const i = e && (e.querySelector('img') || e.querySelector('image'));
            return i ? (i.getAttribute('src') || i.getAttribute('href') || '') : ''; }}""")

    def wait_picture_change(self, elem_id: str, before: str, timeout_s: float = 60.0) -> None:
        self.page.wait_for_function(
            """([id, b]) => { const e = document.getElementById(id);
               const i = e && (e.querySelector('img') || e.querySelector('image'));
               const s = i ? (i.getAttribute('src') || i.getAttribute('href') || '') : '';
               return s !== '' && s !== b; }""", arg=[elem_id, before], timeout=timeout_s * 1000, polling=50)

    def tab(self, name: str) -> None:
        self.page.get_by_role("tab", name=name, exact=True).click()

    def error_badges(self) -> int:
        return int(self.page.evaluate(ERROR_BADGES_JS))

    def messages(self) -> list[str]:
        """The lab's message boxes that say something (a refused input or choice)."""
        return self.page.evaluate(MESSAGES_JS)

    def toasts(self) -> list[str]:
        return self.page.evaluate(TOASTS_JS)

    def problems(self) -> list[str]:
        """Everything on the page that says something went wrong: "Error" badges, toasts and lab messages."""
        return ([f"{n} 'Error' badge(s)" for n in [self.error_badges()] if n] + [f"toast: {t}" for t in self.toasts()]
                + [f"message: {m}" for m in self.messages()])

    def shot(self, path: str | Path) -> None:
        """A screenshot of the whole page, once its visible pictures have loaded. Pictures in tabs not shown are not
        waited for (lazy images there load only when shown); the ones shown are made eager so that those below the
        fold load for the full-page shot."""
        self.page.wait_for_function(
            "() => [...document.images].filter(i => i.offsetParent !== null)"
            ".every(i => { if (i.loading === 'lazy') i.loading = 'eager'; return i.complete; })",
            timeout=30000, polling=100)
        self.page.screenshot(path=str(path), full_page=True)

    def upload(self, label: str, path: str | Path) -> None:
        """Drop a file on the upload component labelled `label` (its file input)."""
        box = self.page.locator(".block", has=self.page.get_by_text(label, exact=False)).last
        box.locator("input[type=file]").first.set_input_files(str(path))

    def type_number(self, elem_id: str, value: float) -> None:
        """Type `value` into the number box of the slider `elem_id` and press Enter."""
        box = self.page.locator(f"#{elem_id} input[type=number]")
        box.fill(f"{value:g}")
        box.press("Enter")

    def click_button(self, name: str) -> None:
        self.page.get_by_role("button", name=name, exact=True).click()

    def choose(self, label: str) -> None:
        """Tick the radio button or checkbox labelled `label`."""
        self.page.get_by_label(label, exact=True).check()

    def click_picture(self, elem_id: str, fx: float, fy: float) -> None:
        """Click an image component's picture at a fraction (fx, fy) of its shown size."""
        picture = self.page.locator(f"#{elem_id} img").first
        box = picture.bounding_box()
        picture.click(position={"x": fx * box["width"], "y": fy * box["height"]})

    def menu_entry(self, label: str, name: str) -> Any:
        """Open the menu labelled `label` and type `name` as a person does; returns the entry to click."""
        menu = self.page.get_by_label(label, exact=True)
        menu.click()
        menu.fill(name)
        entry = self.page.get_by_role("option", name=name, exact=True)
        entry.wait_for()
        return entry


@contextmanager
def browser(window: tuple[int, int] = (1400, 1600)) -> Iterator[LabPage]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), args=CHROMIUM_FLAGS)
        try:
            yield LabPage(b.new_page(viewport={"width": window[0], "height": window[1]}))
        finally:
            b.close()
