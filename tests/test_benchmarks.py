"""The benchmark machinery on a tiny configuration: it runs, writes the results JSON with the expected keys and
the generated docs page; the limit is derived from what the CPU says and every share is divided by it.
Timings are never asserted (the machine is shared)."""

from __future__ import annotations

import json

import pytest
import torch
from data_paths import CAMVID
from torch import nn

from benchmarks import app_interactions, gpu, limits, report
from benchmarks.__main__ import parse_sections, run_benchmarks
from benchmarks.inference import judge
from benchmarks.machine import machine_slug, slugify
from benchmarks.training import bane_edt
from contextrast.cli import main as cli_main
from contextrast.models.cost import count_cost

ZEN3 = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
model name\t: AMD EPYC
physical id\t: 0
core id\t\t: 0
bogomips\t: 4890.80
flags\t\t: fpu sse avx fma avx2 {extra}

processor\t: 1
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 1
physical id\t: 0
core id\t\t: {second_core}
"""


def cpuinfo(extra: str = "", second_core: int = 1) -> limits.CpuInfo:
    return limits.read_cpuinfo(ZEN3.format(extra=extra, second_core=second_core), affinity={0, 1})


def test_slug_is_file_name_safe_and_names_the_vector_unit():
    assert slugify("AMD EPYC 7B13 (2 cores)") == "amd-epyc-7b13-2-cores"
    assert slugify("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert slugify("!!") == "unknown-machine"
    assert machine_slug() == slugify(machine_slug())


def test_fp32_limit_is_cores_times_fma_lanes_times_two_times_clock(monkeypatch):
    monkeypatch.setattr(limits, "CPUFREQ", limits.Path("/nonexistent"))
    info = cpuinfo()
    assert (info.physical_cores, info.family, info.bogomips) == (2, 25, 4890.80)
    lim = limits.derive_cpu_limit(info, threads=2, measured=None, measure=False)  # no cpufreq: base = BogoMIPS / 2
    assert lim.fp32_flop_per_cycle_per_core == 2 * 2 * 8  # 2 FMA units × 8 fp32 lanes × 2 FLOPs
    assert lim.fp32_gflops == pytest.approx(2 * 32 * 2.4454)
    assert lim.bf16_gflops is None and "emulated" in lim.bf16_note
    faster = limits.derive_cpu_limit(info, threads=2, measured=2.9)  # cores ran above base: the limit follows
    assert faster.clock_ghz == 2.9 and "measured" in faster.clock_source
    slower = limits.derive_cpu_limit(info, threads=2, measured=2.0)  # never below the base clock
    assert slower.clock_ghz == pytest.approx(2.4454)
    assert limits.derive_cpu_limit(info, threads=1, measure=False).cores == 1  # one thread uses one core's units
    smt = cpuinfo(second_core=0)  # two logical CPUs on one core share its FMA units
    assert limits.derive_cpu_limit(smt, threads=2, measure=False).cores == 1


def test_cpufreq_maximum_wins_and_bf16_units_double_or_tile(tmp_path, monkeypatch):
    (tmp_path / "cpuinfo_max_freq").write_text("3500000\n")
    monkeypatch.setattr(limits, "CPUFREQ", tmp_path)
    lim = limits.derive_cpu_limit(cpuinfo("avx512f avx512_bf16"), threads=2, measured=5.0)
    assert lim.clock_ghz == 3.5 and "cpufreq" in lim.clock_source
    assert lim.bf16_units == "avx512_bf16" and lim.bf16_gflops == pytest.approx(2 * lim.fp32_gflops)
    amx = limits.derive_cpu_limit(cpuinfo("avx512f avx512_bf16 amx_bf16"), threads=2, measured=None)
    assert amx.bf16_gflops == pytest.approx(2 * limits.AMX_BF16_FLOP_PER_CYCLE * 3.5)
    amx_core, known = limits.fma_design("GenuineIntel", 6, 143, frozenset({"avx2", "fma", "avx512f", "amx_tile"}))
    assert known and (amx_core.units, amx_core.lanes) == (2, 16)
    unknown, known = limits.fma_design("SomeVendor", None, None, frozenset({"avx2", "fma"}))
    assert not known and unknown.units == 2  # outside the table: the most any x86 core has, so the limit errs high


def test_a_faster_fma_loop_raises_the_clock_and_an_implausible_one_is_flagged(monkeypatch):
    monkeypatch.setattr(limits, "CPUFREQ", limits.Path("/nonexistent"))
    info = cpuinfo()  # Zen 3: 32 fp32 FLOP/cycle/core
    slower = limits.derive_cpu_limit(info, threads=2, measured=3.0, fma_gflops=2 * 32 * 2.5)
    assert slower.clock_ghz == 3.0 and "measured" in slower.clock_source  # the loop ran below the clock read
    faster = limits.derive_cpu_limit(info, threads=2, measured=3.0, fma_gflops=2 * 32 * 3.3)
    assert faster.clock_ghz == pytest.approx(3.3) and faster.fp32_gflops == pytest.approx(2 * 32 * 3.3)
    assert "FMA loop" in faster.clock_source and "undercount" not in faster.clock_source
    doubled = limits.derive_cpu_limit(info, threads=2, measured=3.0, fma_gflops=2 * 64 * 3.0)  # a wider core
    assert doubled.clock_ghz == pytest.approx(6.0) and "undercount" in doubled.clock_source


def test_fma_loop_reaches_at_most_the_derived_limit_or_says_why_not(monkeypatch):
    fma = limits.fma_peak(threads=1, rounds=2_000_000, repeats=1)
    if "not_measured" in fma:
        assert fma["not_measured"]
    else:
        assert fma["threads"] == 1 and fma["width"] in (256, 512) and fma["gflops"] > 0
        lim = limits.derive_cpu_limit(threads=1, fma_gflops=fma["gflops"])
        assert limits.share(fma["gflops"], lim.fp32_gflops) <= 1 + 1e-9  # it sets the clock where it beats it
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert "no C compiler" in limits.fma_peak(threads=1, rounds=1, repeats=1)["not_measured"]
    no_vectors = limits.read_cpuinfo(ZEN3.format(extra="", second_core=1).replace("avx fma avx2", "avx"), affinity={0})
    assert "AVX" in limits.fma_peak(threads=1, info=no_vectors)["not_measured"]


def test_matmul_as_a_one_by_one_convolution_counts_the_same_flops():
    mm = limits.matmul_rate(size=128, repeats=1)
    conv = limits.matmul_rate(size=128, repeats=1, as_conv=True)
    assert mm["size"] == conv["size"] == 128 and conv["gflops"] == pytest.approx(2 * 128**3 / conv["seconds"] / 1e9)
    with pytest.raises(ValueError, match="divisible by 64"):
        limits.matmul_rate(size=100, as_conv=True)


def test_measured_clock_is_plausible():
    clock = limits.measured_clock_ghz(repeats=2, steps=2_000_000)
    assert clock is None or 0.3 < clock < 8.0


def test_share_counts_two_flops_per_mac_against_the_derived_limit():
    conv = nn.Conv2d(16, 32, 3, padding=1, bias=False)
    assert count_cost(nn.Sequential(conv), (32, 32), in_channels=16).gmacs * 1e9 == 16 * 32 * 9 * 32 * 32  # MACs
    shapes = limits.conv_shapes(nn.Sequential(conv, nn.Conv2d(32, 8, 1)), (32, 32))
    assert [s.macs for s in shapes] == [16 * 32 * 9 * 32 * 32]  # the 3×3 one only
    timings = {"eager": {"best_s": 1.0, "median_s": 2.0, "dtype": "fp32"},
               "bf16": {"best_s": 0.5, "median_s": 1.0, "dtype": "bf16"}}
    judge(timings, 1.0, {"fp32": 4.0, "bf16": None}, "eager")  # 1 GMAC in 1 s = 2 GFLOP/s
    assert timings["eager"]["share_of_limit"] == pytest.approx(0.5) and timings["eager"]["limit"] == "fp32"
    assert timings["bf16"]["limit"] == "fp32"  # emulated bf16 is judged against the fp32 units it runs on
    judge(timings, 1.0, {"fp32": 4.0, "bf16": 16.0}, "eager")
    assert timings["bf16"]["share_of_limit"] == pytest.approx(0.25) and timings["bf16"]["limit"] == "bf16"


def test_a_share_above_one_is_flagged():
    variant = {"median_s": 1.0, "best_s": 1.0, "images_per_s": 1.0, "achieved_gflops": 120.0, "limit": "fp32",
               "limit_gflops": 100.0, "share_of_limit": 1.2, "speedup_vs_baseline": 1.0, "agreement": 1.0,
               "dtype": "fp32"}
    result = {"targets": {"fp32": 0.6, "bf16": 0.5},
              "models": [{"name": "m", "profile": None, "sizes": [{"size": [1024, 2048], "gmacs": 60.0,
                                                                    "variants": {"eager": variant}, "winner": "eager"}]}]}
    verdicts = {measure: verdict for _, measure, _, _, verdict in report.rows({"inference": {"result": result}})}
    assert verdicts["every share of a derived limit"] == "MISS"
    assert verdicts["  1024×2048 eager *"] == "ok"  # ≥ 0.6 of the limit: the target row alone would not show it


def test_a_section_is_loaded_by_other_processes_not_by_its_own_threads():
    """The load average counts the benchmark's own threads (an idle 2-core machine running a section reads ~2):
    what makes figures inflated is CPU time of processes outside the benchmark's tree (the apps and browsers it
    starts are its own)."""
    from benchmarks.machine import others_cpu_seconds

    before = {1: (0, 5.0), 10: (1, 1.0), 20: (0, 3.0), 40: (0, 2.0)}
    # 11: started by 10; 30: started during the section and re-parented (a browser's helper); 40 ended
    after = {1: (0, 9.0), 10: (1, 4.0), 11: (10, 6.0), 20: (0, 3.5), 30: (0, 1.5)}
    assert others_cpu_seconds(before, after, root=1) == pytest.approx(0.5)  # only 20, alive before, is another's
    assert others_cpu_seconds(before, after, root=10) == pytest.approx(4.0 + 0.5)  # now 1 is another's
    idle = {"load_average_before": [1.9], "load_average": [2.1], "others_cpu_share": 0.02}
    busy = {**idle, "others_cpu_share": 0.4}
    assert not report._loaded(idle, 2) and report._loaded(busy, 2)
    assert report._loaded({"load_average_before": [1.9], "load_average": [2.1]}, 2)  # older results: load average


def test_unknown_section_is_refused_with_the_known_ones():
    assert parse_sections("cost,inference") == ["inference", "cost"]
    with pytest.raises(ValueError, match="inference"):
        parse_sections("inference,speed")


def test_tiny_run_writes_results_and_docs(tmp_path, capsys):
    docs = tmp_path / "performance.md"
    results = run_benchmarks(["limit", "inference", "cost", "training", "gpu"], quick=True, out_dir=tmp_path,
                             docs=docs, tiny=True, checkpoints_dir=tmp_path / "none")
    path = tmp_path / f"{machine_slug()}.json"
    saved = json.loads(path.read_text())
    assert saved["sections"].keys() == {"limit", "inference", "cost", "training", "gpu"}
    assert {"slug", "hardware", "cpu", "cores", "torch_threads", "load_average_start"} <= saved["machine"].keys()
    for entry in saved["sections"].values():
        assert len(entry["load_average_before"]) == len(entry["load_average"]) == 3
    limit = saved["sections"]["limit"]["result"]["limit"]
    inference = saved["sections"]["inference"]["result"]
    assert inference["limit"] == limit  # one derived limit serves every share of the run
    (model,) = inference["models"]
    assert "random weights" in model["name"]
    (size,) = model["sizes"]
    assert size["winner"] in size["variants"]
    for v in size["variants"].values():
        assert {"median_s", "best_s", "images_per_s", "share_of_limit", "agreement", "speedup_vs_baseline"} <= v.keys()
        expected = limit["bf16_gflops"] if v["limit"] == "bf16" else limit["fp32_gflops"]
        assert v["limit_gflops"] == expected
        assert v["share_of_limit"] == pytest.approx(v["achieved_gflops"] / expected)
    assert size["variants"]["channels_last"]["agreement"] == 1.0  # channels_last computes the same predictions
    assert size["conv3x3"]["fp32"]["shapes"] and size["conv3x3"]["fp32"]["gmacs"] <= size["gmacs"]
    found = list(report.shares(saved["sections"]))
    assert found and all(0 < value <= 1 for _, value in found), found
    assert model["profile"]["top_ops"] and 0 < model["profile"]["top_ops"][0]["share"] <= 1
    cost = saved["sections"]["cost"]["result"]
    assert [r["align"] for r in cost["rows"]] == ["srm", "bilinear"]
    assert cost["rows"][0]["gmacs"] > cost["rows"][1]["gmacs"] > 0  # SRM costs more than bilinear upsampling
    assert saved["sections"]["training"]["result"]["bane_edt"]["torch_s"] > 0
    if torch.cuda.is_available():
        assert "finetune_job" in saved["sections"]["gpu"]["result"]
    else:
        assert saved["sections"]["gpu"]["result"] == {"skipped": "not run: no GPU"}
    assert results["sections"].keys() == saved["sections"].keys()
    page = docs.read_text()
    assert saved["machine"]["cpu"] in page and "| cost |" in page and "not run: no GPU" in page
    assert "dynamic=True" in page and "## How figures are judged" in page and "## The limit of this machine" in page
    assert "**cores = " in page and "**clock = " in page and "measured rate" in page
    assert "fp32 limit (derived)" in capsys.readouterr().out

    # a later run of one section keeps the other sections' figures
    run_benchmarks(["cost"], quick=True, out_dir=tmp_path, docs=None, tiny=True)
    again = json.loads(path.read_text())
    assert again["sections"].keys() == saved["sections"].keys()
    assert again["sections"]["inference"] == saved["sections"]["inference"]


class FakeClient:
    """gradio_client's view_api / predict for an app that has only a /predict endpoint."""

    src_prefixed = "http://127.0.0.1:9/gradio_api/"  # nothing listens there: no further endpoints to be found
    headers: dict = {}
    cookies: dict = {}
    ssl_verify = False

    def __init__(self) -> None:
        self.calls = []

    def view_api(self, print_info=False, return_format="dict"):
        params = [{"parameter_name": "model", "parameter_has_default": True, "parameter_default": "m"},
                  {"parameter_name": "image", "parameter_has_default": True, "parameter_default": {"path": "/x"}},
                  {"parameter_name": "opacity_value", "parameter_has_default": True, "parameter_default": 0.5},
                  {"parameter_name": "shown", "parameter_has_default": True, "parameter_default": ["a"]}]
        return {"named_endpoints": {"/predict": {"parameters": params}}}

    def predict(self, *args, api_name):
        self.calls.append((api_name, args))
        return None


class EmbeddingsClient(FakeClient):
    """An app with only the Embeddings view: each call records its seed."""

    def view_api(self, print_info=False, return_format="dict"):
        params = [{"parameter_name": n, "parameter_has_default": True, "parameter_default": d}
                  for n, d in (("n", 5000), ("source_value", "this image"), ("count_value", 4), ("seed_value", 0))]
        return {"named_endpoints": {"/embeddings": {"parameters": params}}}


@pytest.mark.parametrize("quick", [True, False])
def test_the_first_umap_projection_of_new_images_is_reported_apart_from_the_judged_ones(quick):
    client = EmbeddingsClient()
    out = app_interactions.run("http://unused", quick=quick, client=client)
    seeds = [args[3] for api, args in client.calls if args[0] == app_interactions.UMAP_POINTS]
    assert seeds == ([0, 1] if quick else [0, 1, 2])  # a new sample of pixels each time
    first = out["UMAP 20k points, first (16 forward passes included)"]
    judged = out["UMAP 20k points"]
    assert len(first["times"]) == 1 and first["budget_s"] is None
    assert len(judged["times"]) == len(seeds) - 1 and judged["budget_s"] == 5.0


def test_interactions_of_a_missing_endpoint_are_not_measured_rather_than_failed():
    client = FakeClient()
    out = app_interactions.run("http://unused", quick=True, client=client)
    assert out["overlay opacity"]["calls"] == ["/predict"] and out["overlay opacity"]["budget_s"] == 1.0
    assert client.calls[0] == ("/predict", ("m", None, 0.3, ["a"]))  # page defaults, the server's file left out
    assert out["CRM click"] == {"not_measured": "endpoint /crm missing"}
    assert "not_measured" in out["new sample"] and "not_measured" in out["UMAP 20k points"]
    rows = report.rows({"app": {"result": {"cold_start": {"tries": [{"ok": True, "command": "contextrast app"}],
                                                          "ready_target_s": 6.0, "page_s": 1.0,
                                                          "first_prediction_s": 2.0, "interactions": out}}}})
    assert ("app", "interaction: CRM click", "endpoint /crm missing", "", "") in rows


def test_browser_rows_judge_each_click_against_its_budget_and_flag_what_the_page_showed():
    result = {"command": "contextrast app", "page_open_s": 3.2, "answered_s": 4.0, "cold_start_drawn_s": 7.2,
              "ready_target_s": 6.0, "repeats": 2, "problems": ["toast: boom"],
              "interactions": {"CRM click": {"median_s": 0.4, "runs_s": [0.4, 0.4], "budget_s": 1.0},
                               "new model (SRM offsets)": {"median_s": 2.5, "runs_s": [2.5, 2.5], "budget_s": 2.0},
                               "UMAP 20k points of 16 images (Embeddings)": {"median_s": 4.0, "runs_s": [4.0],
                                                                             "budget_s": 5.0, "warm_up_s": 9.0}}}
    table = report.rows({"browser": {"result": result}})
    verdicts = {measure: (value, verdict) for _, measure, value, _, verdict in table}
    assert verdicts["click to result: CRM click"] == ("0.40 s", "ok")
    assert verdicts["click to result: new model (SRM offsets)"][1] == "MISS"
    assert verdicts["click to result: UMAP 20k points of 16 images (Embeddings)"] == ("4.00 s (warm-up 9.00 s)", "ok")
    assert verdicts["the page showed a problem"] == ("toast: boom", "MISS")
    assert verdicts["browser: `contextrast app` cold start to first prediction drawn"] == (
        "7.2 s (page answered 4.0 s)", "MISS")
    starts = [{"answered_s": a, "page_open_s": 2.0, "cold_start_drawn_s": a + 2.0} for a in (3.0, 5.0, 4.0)]
    median = {**result, "cold_starts": starts, **starts[2]}
    verdicts = {measure: (value, verdict) for _, measure, value, _, verdict in report.rows({"browser": {"result": median}})}
    assert verdicts["browser: `contextrast app` cold start to first prediction drawn (median of 3)"] == (
        "6.0 s (page answered 4.0 s; the starts: 5.0, 7.0, 6.0 s)", "ok")
    assert report.rows({"browser": {"result": {"not_measured": "no chromium"}}}) == [
        ("browser", "click to result", "no chromium", "", "")]


def test_gpu_section_says_not_run_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu.run(quick=True) == {"skipped": "not run: no GPU"}
    assert limits.gpu_limit("NVIDIA H100 PCIe")["fp32_gflops"] == 51_000
    assert limits.gpu_limit("NVIDIA H200")["bf16_gflops"] == 989_500
    assert limits.gpu_limit("Some GPU")["fp32_gflops"] is None


def test_the_worker_fine_tuning_job_of_the_gpu_section_runs_on_cpu():
    job = gpu.finetune_job("cpu", iterations=2, data="toy:n=4,size=64x80", batch_size=2, crop=(64, 64), timeout_s=240)
    assert job["state"] == "finished", job
    assert job["seconds"] > 0


def test_rows_report_misses_against_targets():
    section = {"result": {"step_ratio_target": 1.15, "loss_speedup_target": 5.0,
                          "loss_speed": {"input": [2, 3, 8, 8], "step_ce_s": 1.0, "step_contextrast_s": 2.0,
                                         "step_ratio": 2.0, "images_per_s_ce": 2.0, "images_per_s_contextrast": 1.0,
                                         "loss_speedup": 6.0, "loss_reference_s": 6.0, "loss_vectorised_s": 1.0},
                          "bane_edt": {"input": [1, 8, 8], "torch_s": 0.1, "scipy": "not installed"}}}
    table = report.rows({"training": section})
    verdicts = {measure: verdict for _, measure, _, _, verdict in table}
    assert verdicts["step ratio contextrast/ce (wall)"] == "MISS"
    assert verdicts["loss alone: loop reference / vectorised"] == "ok"


def test_bane_edt_agrees_with_scipy():
    pytest.importorskip("scipy")
    result = bane_edt(1, 1, (64, 96))
    assert result["masks"] > 0 and result["max_abs_difference"] < 1e-4


def test_bench_command_is_wired(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out


def test_trainer_throughput_runs_each_variant_in_its_own_process_on_the_same_crops():
    from benchmarks import trainer_speed

    toy = ["train.data=toy:n=4,size=64x96", "train.train_split=train", "train.val_split=val", "train.crop=[64,64]",
           "train.workers=0"]
    names = [trainer_speed.BASELINE, "channels_last"]
    out = trainer_speed.run(warmup=1, timed=1, variants=names, extra=toy, timeout_s=240)
    assert list(out["variants"]) == names and out["batch"] == trainer_speed.BATCH
    for name in names:
        v = out["variants"][name]
        assert "error" not in v, v
        assert v["overrides"] == trainer_speed.VARIANTS[name] and v["crop"] == [64, 64]
        assert len(v["losses"]) == 2 and v["images_per_s"] > 0 and v["ratio_to_configured"] > 0
    assert out["variants"][trainer_speed.BASELINE]["ratio_to_configured"] == 1.0
    assert out["variants"]["channels_last"]["max_loss_difference"] < 0.01  # same crops, same arithmetic
    rows = report._trainer_rows(out)
    assert len(rows) == 3 and "×1.00 of configured" in rows[1][2]
    broken = trainer_speed._in_process("channels_last", 1, 1, [*toy, "train.optimizer=none"], 240)
    assert "error" in broken and "optimizer" in broken["error"]  # a failing variant becomes a note


def test_eval_and_bare_forward_run_over_the_same_images(monkeypatch):
    from benchmarks import evaluation

    monkeypatch.setenv("CAMVID", str(CAMVID))

    found = evaluation.camvid_subject()
    if isinstance(found, str):
        pytest.skip(found)
    r = evaluation.eval_run(quick=True, images=4, cli=False)
    assert r["forward_images"] == r["evaluate_images"] == r["images"] == 4
    assert r["ratio"] == pytest.approx(r["evaluate_s"] / r["forward_s"]) and r["ratio_target"] == 1.3
    assert "cli" not in r and 0 <= r["miou"] <= 1
    table = report.rows({"eval": {"result": {**r, "cli": {"error": "not run"}}}})
    assert "images forwarded / evaluated 4 / 4" in table[0][1]


def test_derived_limit_of_this_machine_bounds_every_share():
    lim = limits.derive_cpu_limit(threads=torch.get_num_threads())  # the clock as measured, like the run
    info = limits.read_cpuinfo()
    assert lim.cores <= info.physical_cores and lim.fp32_flop_per_cycle_per_core in (16, 32, 64)
    if lim.fp32_gflops is not None:
        assert lim.fp32_gflops == pytest.approx(lim.cores * lim.fp32_flop_per_cycle_per_core * lim.clock_ghz)
        assert (lim.bf16_gflops is None) == (lim.bf16_units is None)
        assert lim.bf16_gflops is None or lim.bf16_gflops >= lim.fp32_gflops
        rate = limits.matmul_rate(size=256, repeats=1)
        assert 0 < limits.share(rate["gflops"], lim.fp32_gflops) <= 1


def test_frozen_compile_variants_return_the_runners_fp32_logits_and_run_in_full_mode_only():
    """The frozen-compile variants compile `_FloatLogits` (the model's logits cast to fp32, under autocast for
    bf16), which every other variant's runner calls too: eager, it returns the model's logits as fp32. They are timed in full mode only, the bf16
    one only where bf16 runs on its own units."""
    from benchmarks.inference import VARIANTS, _FloatLogits, _runner, variants_for
    from contextrast.models import build_model

    torch.manual_seed(0)
    model = build_model({"num_classes": 3, "decoder_channels": 16, "embed_dim": 8}).eval()
    x = torch.randn(1, 3, 64, 96)
    for dtype in (None, torch.bfloat16):
        with torch.no_grad():
            wrapped = _FloatLogits(model, dtype)(x)
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is not None):
            expected = model(x).logits.float()
        assert wrapped.dtype == torch.float32 and torch.equal(wrapped, expected)
        assert torch.equal(_runner(model, torch.no_grad, dtype)(x), expected)
    cpu = torch.device("cpu")
    assert {"compile_frozen", "compile_frozen_bf16"} <= set(VARIANTS.names())
    assert {"compile_frozen", "compile_frozen_bf16"} <= set(variants_for(cpu, False, (1024, 2048), True))
    assert "compile_frozen_bf16" not in variants_for(cpu, False, (1024, 2048), False)
    assert not any(n.startswith("compile") for n in variants_for(cpu, True, (1024, 2048), True))
