"""Click to result in a real browser: each interaction of the lab's target timed in headless Chromium from the
click or keypress a person makes to the moment the page shows its result (the watched element's text or picture
has changed and no output is pending), on `contextrast app` served in a process of its own, once the app's
start-up warm-up (UMAP's numba kernels; its length is recorded) is over. Before that, the cold start as a user
meets it: from spawning the app (the browser already open) until its page answers, and until the browser has drawn
the first prediction (budget: ready ≤ 6 s); the median of three starts, each a fresh app and browser.

Budgets (idle 2-core machine): ≤ 1 s for the overlay, class toggles and CRM clicks, ≤ 2 s for a new sample or a
new model in every tab, UMAP of 20k points ≤ 5 s after warm-up. Each interaction is repeated and alternates
between two values (two opacities, two samples, two models), so every timed event changes what is shown; the
first UMAP projection is the warm-up and is reported apart; each later one draws a new sample of pixels
(another seed), as the tab caches a projection per seed. Needs playwright and a system chromium; without
them the section says "not measured" and why.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from typing import Any

from benchmarks.app_start import READY_TARGET_S
from benchmarks.lab_page import PENDING_JS, LabPage, browser, chromium, serve, settle

BUDGETS = {"overlay opacity": 1.0, "class toggle": 1.0, "CRM click": 1.0, "new sample": 2.0, "new model": 2.0,
           "UMAP 20k points": 5.0}
WAIT_S = 240.0
COLD_STARTS = 3  # in a full run; the median is reported (one start here varies by ±15 %)
UMAP_POINTS, UMAP_IMAGES = 20_000, 16
SPLIT_IMAGES = "first images of the sample's split"
# what a tab shows for the current input: its info text (names the image and model) and its first picture
TAB_VIEWS = {"Predict": "predict-info", "SRM offsets": "srm-info", "CRM attention": "crm-info", "BANE": "bane-info",
             "Intervene": "intervene-info", "Errors": "errors-info"}
SIGNATURE_JS = """(id) => { const e = document.getElementById(id); if (!e) return '';
  const i = e.querySelector('img') || e.querySelector('image');
  return (e.innerText || '') + '|' + (i ? (i.getAttribute('src') || i.getAttribute('href') || '') : ''); }"""


def signature(page: LabPage, elem_id: str) -> str:
    return str(page.page.evaluate(SIGNATURE_JS, elem_id))


def until_changed(page: LabPage, elem_id: str, act: Callable[[], None], timeout_s: float = WAIT_S,
                  prepare: Callable[[], Any] | None = None) -> float:
    """Seconds from `act()` (the click or keypress) until `elem_id` shows something new and nothing is pending.
    `prepare()` (opening a menu and typing, before the click that picks) is not timed; its result is `act`'s
    argument."""
    before = signature(page, elem_id)
    if prepare is not None:
        prepared = prepare()
        act = functools.partial(act, prepared)
    start = time.perf_counter()
    act()
    page.page.wait_for_function(
        f"([id, b]) => ({SIGNATURE_JS})(id) !== b && ({PENDING_JS})() === 0", arg=[elem_id, before],
        timeout=timeout_s * 1000, polling=20)
    return time.perf_counter() - start


def timed(results: dict[str, Any], name: str, budget: str, runs: list[float], **extra: Any) -> None:
    results[name] = {"median_s": round(statistics.median(runs), 3), "runs_s": [round(r, 3) for r in runs],
                     "budget_s": BUDGETS[budget], **extra}


def menu_options(page: LabPage, label: str) -> list[str]:
    """The entries of the dropdown labelled `label`, read by opening it."""
    menu = page.page.get_by_label(label, exact=True)
    menu.click()
    names = [t.replace("✓", "").strip() for t in page.page.get_by_role("option").all_inner_texts()]  # ✓: the chosen one
    names = [n for n in names if n]
    menu.press("Escape")
    return names


def predict_clicks(page: LabPage, repeats: int, out: dict[str, Any]) -> None:
    page.wait_text("predict-info", "forward pass", WAIT_S)
    page.wait_idle(WAIT_S)
    runs = [until_changed(page, "predict-overlay", lambda v=v: page.type_number("predict-opacity", v))
            for v in [0.3, 0.7] * repeats]
    timed(out, "overlay opacity (Predict)", "overlay opacity", runs)
    toggle = page.page.locator("#predict-classes label").first
    timed(out, "class toggle (Predict)", "class toggle",
          [until_changed(page, "predict-overlay", toggle.click) for _ in range(2 * repeats)])


def crm_clicks(page: LabPage, repeats: int, out: dict[str, Any]) -> None:
    page.tab("CRM attention")
    page.wait_text("crm-info", "Query pixel", WAIT_S)
    page.wait_idle(WAIT_S)
    spots = [(0.25, 0.3), (0.7, 0.6)] * repeats
    timed(out, "CRM click", "CRM click",
          [until_changed(page, "crm-info", lambda s=s: page.click_picture("crm-overlay", *s)) for s in spots])


def new_inputs(page: LabPage, repeats: int, out: dict[str, Any]) -> None:
    """A new sample, then a new model, picked from the menus while each tab is in view."""
    samples = [n for n in menu_options(page, "Sample") if not n.startswith("(")][:2]
    models = menu_options(page, "Model")[:2]
    current_sample = page.page.get_by_label("Sample", exact=True).input_value()
    current_model = page.page.get_by_label("Model", exact=True).input_value()
    samples = [s for s in samples if s != current_sample][:1] + [current_sample]
    models = [m for m in models if m != current_model][:1] + [current_model]
    for tab, elem_id in TAB_VIEWS.items():
        page.tab(tab)
        page.page.wait_for_function(f"() => ({SIGNATURE_JS})('{elem_id}').length > 40", timeout=WAIT_S * 1000)
        page.wait_idle(WAIT_S)
        for what, label, names in (("sample", "Sample", samples), ("model", "Model", models)):
            if len(names) == 2:  # timed from the click on the menu entry (opening the menu and typing before it)
                timed(out, f"new {what} ({tab})", f"new {what}",
                      [until_changed(page, elem_id, lambda entry: entry.click(),
                                     prepare=lambda n=n, label=label: page.menu_entry(label, n))
                       for n in names * repeats])


def umap_projections(page: LabPage, repeats: int, out: dict[str, Any]) -> None:
    page.tab("Embeddings")
    page.choose(SPLIT_IMAGES)
    page.type_number("embeddings-count", UMAP_IMAGES)
    page.type_number("embeddings-points", UMAP_POINTS)
    page.wait_idle(WAIT_S)
    project = page.page.get_by_role("button", name="Project embeddings", exact=True)

    seed = page.page.get_by_label("Sample seed", exact=True)

    def umap_once(seed_value: int) -> float:
        """A projection of a new sample of pixels: the tab caches each (images, layer, points, seed)."""
        seed.fill(str(seed_value))
        seed.press("Tab")
        page.wait_idle(WAIT_S)
        before = page.text("embeddings-info")
        start = time.perf_counter()
        project.click()
        page.page.wait_for_function(
            "(b) => { const t = document.getElementById('embeddings-info')?.innerText || '';"
            f" return t !== b && t.includes('UMAP ·') && ({PENDING_JS})() === 0; }}", arg=before,
            timeout=WAIT_S * 1000, polling=50)
        return time.perf_counter() - start

    warm = umap_once(0)
    timed(out, f"UMAP {UMAP_POINTS // 1000}k points of {UMAP_IMAGES} images (Embeddings)", "UMAP 20k points",
          [umap_once(k) for k in range(1, max(2, repeats))], warm_up_s=round(warm, 3),
          header=page.text("embeddings-info").split("\n")[0][:160])


STEPS = (predict_clicks, crm_clicks, new_inputs, umap_projections)


def measure(page: LabPage, repeats: int) -> dict[str, Any]:
    """Every step in turn; one that fails is recorded beside the figures of the others."""
    out: dict[str, Any] = {}
    failed: dict[str, str] = {}
    for step in STEPS:
        try:
            step(page, repeats, out)
        except Exception as e:  # noqa: BLE001 - a timed-out wait must not lose the other steps' figures
            shown = "; ".join(page.messages() + page.problems())[:200]  # what the page said when it stopped changing
            failed[step.__name__] = (f"{type(e).__name__}: {str(e).splitlines()[0][:200]}"
                                     + (f" (the page showed: {shown})" if shown else ""))
    return {"interactions": out, "problems": page.problems(), **({"failed": failed} if failed else {})}


def run(quick: bool, data: str | None) -> dict[str, Any]:
    """Serve the lab (on `data`, e.g. camvid:ROOT, when given) and time every interaction in Chromium, after the
    cold starts (one in quick mode, three otherwise, each a fresh app and browser: the median is reported)."""
    try:
        import playwright  # noqa: F401
    except ImportError:
        return {"not_measured": "playwright is not installed (pip install -e '.[test]')"}
    if chromium() is None:
        return {"not_measured": "no chromium on this machine (apt-get install chromium)"}
    args = ["--data", data] if data else []
    repeats = 2 if quick else 4
    count = 1 if quick else COLD_STARTS
    starts = []
    for i in range(count):
        with browser() as page:
            t0 = time.perf_counter()  # the browser is open already: a user's is too
            with serve(*args) as url:
                answered = time.perf_counter() - t0
                opened = page.open(url)
                starts.append({"answered_s": round(answered, 3), "page_open_s": round(opened, 3),
                               "cold_start_drawn_s": round(answered + opened, 3)})
                if i == count - 1:  # the interactions, on the last server, once its warm-up is over
                    settled = settle(serve.pid)  # type: ignore[attr-defined]
                    result = measure(page, repeats)
    median = sorted(starts, key=lambda f: f["cold_start_drawn_s"])[len(starts) // 2]
    command = "contextrast app" + (f" --data {data.split(':')[0]}:$CAMVID" if data else "")
    return {"command": command, **median, "cold_starts": starts, "ready_target_s": READY_TARGET_S,
            "warm_up_after_open_s": round(settled, 1), "repeats": repeats, **result}
