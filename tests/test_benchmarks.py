"""The benchmark machinery (issue 9) on a tiny configuration: it runs, writes the results JSON with the
expected keys and the generated docs page; timings are not asserted (the machine is shared)."""

from __future__ import annotations

import json

import pytest
import torch

from benchmarks import report
from benchmarks.__main__ import parse_sections, run_benchmarks
from benchmarks.machine import machine_slug, matmul_peak_gflops, slugify
from benchmarks.training import bane_edt
from contextrast.cli import main as cli_main


def test_slug_is_file_name_safe():
    assert slugify("AMD EPYC 7B13 (2 cores)") == "amd-epyc-7b13-2-cores"
    assert slugify("NVIDIA H100 80GB HBM3") == "nvidia-h100-80gb-hbm3"
    assert slugify("!!") == "unknown-machine"
    assert machine_slug() == slugify(machine_slug())


def test_matmul_peak_is_positive_and_checks_arguments():
    assert matmul_peak_gflops(size=64, repeats=1, inner=1) > 0
    with pytest.raises(ValueError, match="positive"):
        matmul_peak_gflops(size=0)


def test_unknown_section_is_refused_with_the_known_ones():
    assert parse_sections("cost,inference") == ["inference", "cost"]
    with pytest.raises(ValueError, match="inference"):
        parse_sections("inference,speed")


def test_tiny_run_writes_results_and_docs(tmp_path, capsys):
    docs = tmp_path / "performance.md"
    results = run_benchmarks(["inference", "cost", "training", "gpu"], quick=True, out_dir=tmp_path,
                             docs=docs, tiny=True, checkpoints_dir=tmp_path / "none")
    path = tmp_path / f"{machine_slug()}.json"
    saved = json.loads(path.read_text())
    assert saved["sections"].keys() == {"inference", "cost", "training", "gpu"}
    assert {"slug", "hardware", "cores", "torch_threads", "load_average_start"} <= saved["machine"].keys()
    inference = saved["sections"]["inference"]["result"]
    assert inference["peak_fp32_gflops"] > 0
    (model,) = inference["models"]
    assert "random weights" in model["name"]
    (size,) = model["sizes"]
    assert size["winner"] in size["variants"]
    for v in size["variants"].values():
        assert {"median_s", "best_s", "images_per_s", "efficiency", "agreement", "speedup_vs_baseline"} <= v.keys()
        assert v["agreement"] == 1.0  # channels_last computes the same predictions
    assert model["profile"]["top_ops"] and 0 < model["profile"]["top_ops"][0]["share"] <= 1
    cost = saved["sections"]["cost"]["result"]
    assert [r["align"] for r in cost["rows"]] == ["srm", "bilinear"]
    assert cost["rows"][0]["gmacs"] > cost["rows"][1]["gmacs"] > 0  # SRM costs more than bilinear upsampling
    edt = saved["sections"]["training"]["result"]["bane_edt"]
    assert edt["torch_s"] > 0
    if torch.cuda.is_available():
        assert "training" in saved["sections"]["gpu"]["result"]
    else:
        assert "skipped" in saved["sections"]["gpu"]["result"]
    assert results["sections"].keys() == saved["sections"].keys()
    page = docs.read_text()
    assert saved["machine"]["hardware"] in page and "| cost |" in page
    assert "fp32 matmul peak" in capsys.readouterr().out

    # a later run of one section keeps the other sections' figures
    run_benchmarks(["cost"], quick=True, out_dir=tmp_path, docs=None, tiny=True)
    again = json.loads(path.read_text())
    assert again["sections"].keys() == saved["sections"].keys()
    assert again["sections"]["inference"] == saved["sections"]["inference"]


def test_bane_edt_agrees_with_scipy():
    pytest.importorskip("scipy")
    result = bane_edt(1, 1, (64, 96))
    assert result["masks"] > 0 and result["max_abs_difference"] < 1e-4


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


def test_bench_command_is_wired(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["bench", "--help"])
    assert exit_info.value.code == 0
    assert "--quick" in capsys.readouterr().out
