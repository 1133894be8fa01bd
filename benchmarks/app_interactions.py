"""Each lab interaction as the page asks for it: through the app's own API (gradio_client) on a running
`contextrast app`, timed from request to result, beside the budgets of the lab's interaction target
(idle 2-core machine: ≤ 1 s for the overlay, class toggles and CRM clicks, ≤ 2 s for a new sample or model in
every tab, UMAP of 20k points ≤ 5 s after warm-up).

Endpoints are addressed by api name and called with the page's own default values (from the app's API
description) except for the inputs an interaction changes. A change of image or model runs two events on the
page (new picture and the view of the tab in view, at once; for a model, the menus then the view); its time here
is the sum of the two calls.
An endpoint or input that is gone is reported as "not measured: …", never as a failure of the run.
"""

from __future__ import annotations

import os
import statistics
import time
from typing import Any

SPLIT_IMAGES = "first images of the sample's split"
UMAP_POINTS = 20_000
UMAP_IMAGES = 16


class NotMeasured(Exception):
    """An endpoint or input this interaction needs is not in the running app."""


class Endpoints:
    """The running app's named endpoints, each callable with its defaults and some inputs changed."""

    def __init__(self, url: str, client: Any = None) -> None:
        if client is None:
            from gradio_client import Client

            # no telemetry thread (gradio_client reads the variable, whatever its argument says), and no CA bundle
            # loaded for a plain-http URL (0.15 s a client, nothing to verify)
            os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
            client = Client(url, verbose=False, analytics_enabled=False, ssl_verify=not url.startswith("http://"))
        self.client = client
        api = self.client.view_api(print_info=False, return_format="dict")
        self.named = api["named_endpoints"]
        self._all = False

    def parameters(self, api: str) -> list[dict[str, Any]]:
        if api not in self.named and not self._all:  # one the page fires itself (app.lab.PAGE_EVENT): not listed
            self.named = {**self._all_endpoints(), **self.named}
            self._all = True
        if api not in self.named:
            raise NotMeasured(f"endpoint {api} missing")
        return self.named[api]["parameters"]

    def _all_endpoints(self) -> dict[str, Any]:
        """Every named endpoint, those left off the API page included (`view_api` lists the rest); none when the
        server does not tell."""
        import httpx

        c = self.client
        try:
            r = httpx.get(c.src_prefixed + "info", params={"all_endpoints": "True"}, headers=c.headers,
                          cookies=c.cookies, verify=c.ssl_verify, timeout=15)
            r.raise_for_status()
            return dict(r.json()["named_endpoints"])
        except (httpx.HTTPError, ValueError, KeyError):
            return {}

    def choices(self, api: str, name: str) -> list[Any]:
        for p in self.parameters(api):
            if p["parameter_name"] == name:
                return list(p.get("type", {}).get("enum") or [])
        raise NotMeasured(f"endpoint {api} has no input {name!r}")

    def call(self, api: str, **changed: Any) -> Any:
        """Call `api` with every input at its page default (files: none; the sample names the picture) except
        `changed`; returns the result."""
        params = self.parameters(api)
        names = [p["parameter_name"] for p in params]
        unknown = sorted(set(changed) - set(names))
        if unknown:
            raise NotMeasured(f"endpoint {api} has no input {', '.join(map(repr, unknown))}")
        args = []
        for p in params:
            value = p.get("parameter_default") if p.get("parameter_has_default") else None
            if isinstance(value, dict) and "path" in value:  # a file the server holds: the sample stands for it
                value = None
            args.append(changed.get(p["parameter_name"], value))
        return self.client.predict(*args, api_name=api)


def _timed(calls: list[tuple[str, dict[str, Any]]], endpoints: Endpoints) -> float:
    t0 = time.perf_counter()
    for api, changed in calls:
        endpoints.call(api, **changed)
    return time.perf_counter() - t0


def _other_samples(endpoints: Endpoints, count: int) -> list[str]:
    names = [n for n in endpoints.choices("/load_sample", "sample_name") if not str(n).startswith("(")]
    default = next((p.get("parameter_default") for p in endpoints.parameters("/load_sample")), None)
    return [n for n in names if n != default][:count]


def run(url: str, quick: bool = False, client: Any = None) -> dict[str, Any]:
    """{interaction: {median_s, times, budget_s, calls} or {"not_measured": why}} on the app at `url`
    (`client`: a gradio_client.Client, or a stand-in with its `view_api` and `predict`)."""
    endpoints = Endpoints(url, client)
    repeats = 2 if quick else 3
    out: dict[str, Any] = {}

    def measure(name: str, budget: float | None, plan) -> None:
        try:
            times, calls = [], None
            for i in range(repeats):
                calls = plan(i)
                times.append(_timed(calls, endpoints))
            out[name] = {"median_s": statistics.median(times), "times": times, "budget_s": budget,
                         "calls": [api for api, _ in calls or []]}
        except NotMeasured as e:
            out[name] = {"not_measured": str(e)}
        except Exception as e:  # noqa: BLE001 - the app answered with an error: record it, keep measuring
            out[name] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}

    try:
        classes = endpoints.choices("/bane", "cls_name")[1:]
    except NotMeasured:
        classes = []
    measure("overlay opacity", 1.0, lambda i: [("/predict", {"opacity_value": 0.3 + 0.1 * i})])
    measure("class toggle", 1.0, lambda i: [("/predict", {"shown": classes[: len(classes) - 1 - i]})])
    measure("CRM click", 1.0, lambda i: [("/crm", {"y_value": 60 + 40 * i, "x_value": 100 + 50 * i})])
    measure("SRM step", None, lambda i: [("/srm", {"step_index": ["1/32 → 1/16", "1/16 → 1/8", "1/8 → 1/4"][i % 3]})])
    measure("BANE class", None, lambda i: [("/bane", {"cls_name": classes[i % len(classes)] if classes else None})])
    try:
        samples = _other_samples(endpoints, repeats)
        models = endpoints.choices("/model_menus", "model_name")
    except NotMeasured as e:
        out["new sample"] = out["new model"] = {"not_measured": str(e)}
    else:
        current = [next((p.get("parameter_default") for p in endpoints.parameters("/model_menus")), None)]
        # another model of the page model's dataset (same name prefix), so the sample's labels still apply
        prefix = str(current[0]).split("-")[0]
        others = [m for m in models if m != current[0] and str(m).split("-")[0] == prefix]

        def new_sample(i: int):
            s, m = samples[i % len(samples)], current[0]
            return [("/load_sample", {"sample_name": s}), ("/view_sample", {"sample": s, "model": m})]

        def new_model(i: int):  # on the sample just loaded: the other model has not seen it yet
            s, m = samples[i % len(samples)], others[i % len(others)] if others else current[0]
            return [("/model_menus", {"model_name": m}), ("/view_model", {"sample": s, "model": m})]

        pairs = {"new sample": [], "new model": []}
        try:
            for i in range(min(repeats, len(samples))):
                for name, plan in (("new sample", new_sample), ("new model", new_model)):
                    pairs[name].append(_timed(plan(i), endpoints))
            for name, plan in (("new sample", new_sample), ("new model", new_model)):
                out[name] = {"median_s": statistics.median(pairs[name]), "times": pairs[name], "budget_s": 2.0,
                             "calls": [api for api, _ in plan(0)]}
        except NotMeasured as e:
            out["new sample"] = out["new model"] = {"not_measured": str(e)}
        except Exception as e:  # noqa: BLE001
            out["new sample"] = out["new model"] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    # UMAP: a small projection first waits for the start-up warm-up of numba to finish, then 20k points of the
    # split's first images (forward passes, sampling, PCA and UMAP: a new point count is a new sample)
    try:
        t0 = time.perf_counter()
        endpoints.call("/embeddings", n=1000)
        out["embeddings warm-up (first projection)"] = {"median_s": time.perf_counter() - t0, "budget_s": None,
                                                        "calls": ["/embeddings"]}
        times = []
        # the first projection of the images also runs their forward passes (reported apart, as the browser
        # benchmark does); each later one draws a new sample of pixels (a new seed) and projects it again
        for i in range(2 if quick else 3):
            t0 = time.perf_counter()
            endpoints.call("/embeddings", n=UMAP_POINTS, source_value=SPLIT_IMAGES, count_value=UMAP_IMAGES,
                           seed_value=i)
            times.append(time.perf_counter() - t0)
        out[f"UMAP {UMAP_POINTS // 1000}k points, first ({UMAP_IMAGES} forward passes included)"] = {
            "median_s": times[0], "times": times[:1], "budget_s": None, "calls": ["/embeddings"]}
        out[f"UMAP {UMAP_POINTS // 1000}k points"] = {"median_s": statistics.median(times[1:]), "times": times[1:],
                                                      "budget_s": 5.0, "calls": ["/embeddings"]}
    except NotMeasured as e:
        out[f"UMAP {UMAP_POINTS // 1000}k points"] = {"not_measured": str(e)}
    except Exception as e:  # noqa: BLE001
        out[f"UMAP {UMAP_POINTS // 1000}k points"] = {"error": f"{type(e).__name__}: {str(e)[:200]}"}
    return out
