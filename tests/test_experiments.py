"""contextrast.experiments: runs → evaluated table + claims, computed, never typed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from contextrast.cli import main
from contextrast.config import load_config
from contextrast.engine.card import read_card
from contextrast.engine.trainer import TrainHooks, train
from contextrast.experiments.claims import check_chains, check_claims, seed_standard_error
from contextrast.experiments.report import build_report, render_markdown
from contextrast.experiments.runs import RunResult, read_val_curve


def _result(run: str, loss: str, seed: int, miou: float, align: str = "srm", curve=(), iterations: int = 10) -> RunResult:
    return RunResult(run, {"backbone": "b", "align": align, "context": "crm", "loss": loss}, seed, iterations, 10, 10,
                     miou, 0.5, {"a": miou}, 1, 1.0, 60.0, "cpu", tuple(curve))


def test_claims_pair_runs_differing_in_one_switch_and_average_seeds():
    results = [_result("ce0", "ce", 0, 0.50), _result("ce1", "ce", 1, 0.52),
               _result("cx0", "contextrast", 0, 0.55), _result("cx1", "contextrast", 1, 0.53),
               _result("bil", "ce", 0, 0.60, align="bilinear")]
    claims = {c["claim"]: c for c in check_claims(results)}
    main = claims["[A] Contextrast (CCL + BANE) beats CE"]
    assert main["held"] and abs(main["delta"] - 0.03) < 1e-9 and main["seeds_better"] == [0, 1]
    srm = claims["[B] SRM beats bilinear upsampling"]  # srm/ce (2 seeds, mean .51) vs bilinear/ce (.60)
    assert not srm["held"] and abs(srm["delta"] + 0.09) < 1e-9
    assert "[A] CCL with random negatives beats CE" not in claims  # no ccl run
    # seeds run on both sides are paired: differences +0.05 and +0.01, standard error 0.02, and 0.03 ≤ 2 × 0.02
    assert main["per_seed_delta"] == pytest.approx({0: 0.05, 1: 0.01})
    assert main["seed_se"] == pytest.approx(0.02) and main["within_noise"]
    # one bilinear seed and no late-curve wobble: the noise is not measured, so the claim stays undecided
    assert srm["seed_se"] is None and srm["noise_measured"] is False and srm["within_noise"]
    assert srm["verdict"] == "undecided"
    text = render_markdown(results, list(claims.values()), "toy", "val", "c")
    assert "## Spread between seeds" in text and "| b | srm | crm | contextrast | 0, 1 | 54.00 ± 1.41 |" in text
    assert "per seed 0: +5.00, 1: +1.00; standard error over seeds 2.00" in text
    assert "within noise: |Δ| ≤ 2 × the seed standard error (2.00)" in text and "at 1–2 seed(s)" in text
    assert "seeds [0, 1] / [0]; seed spread (std) 1.41 / 0.00; per seed 0: -10.00)" in text  # srm/ce vs bilinear


def test_seed_standard_error_unpaired_when_no_two_seeds_are_shared():
    a = [_result("a1", "ce", 1, 0.50), _result("a2", "ce", 2, 0.54)]
    b = [_result("b3", "ce", 3, 0.40), _result("b4", "ce", 4, 0.44)]
    assert seed_standard_error(a, b) == pytest.approx((0.0008 / 2 + 0.0008 / 2) ** 0.5)
    assert seed_standard_error(a[:1], b) is None


def test_build_report_from_real_runs(tmp_path):
    sets = ["train.data=toy:n=8,size=64x80", "train.crop=[64,64]", "train.batch_size=4", "train.workers=0",
            "train.iterations=2", "model.decoder_channels=16", "model.embed_dim=16", "loss.contrast_start=0.0"]
    runs = []
    for loss in ("ce", "contextrast"):
        cfg = load_config(None, sets + [f"loss.name={loss}", f"train.run_dir={tmp_path / loss}"])
        runs.append(train(cfg, TrainHooks(progress_bar=False)).run_dir)
    out, js = tmp_path / "r.md", tmp_path / "r.json"
    shipped = tmp_path / "checkpoints" / "toy-ce"
    results = build_report(runs, "toy:n=3,size=64x80", "val", out, js, "contextrast report ...", ship={shipped: runs[0]})
    text = out.read_text()
    assert "| ce |" in text and "| contextrast |" in text and "Contextrast (CCL + BANE) beats CE" in text
    data = json.loads(js.read_text())
    assert [r["variant"]["loss"] for r in data["runs"]] == ["ce", "contextrast"]
    assert all(0.0 <= r.miou <= 1.0 and r.gmacs_360x480 > 0 for r in results)
    assert data["claims"][0]["delta"] == results[1].miou - results[0].miou
    card = read_card(shipped)  # the shipped card carries the numbers of the table, and its own name
    assert card.name == "toy-ce" and card.metrics["val_miou"] == results[0].miou and card.loss["name"] == "ce"
    with pytest.raises(ValueError, match="not among the reported runs"):
        build_report(runs[:1], "toy:n=3,size=64x80", "val", out, None, "c", ship={shipped: runs[1]})
    assert main(["report", str(runs[0]), "--data", "toy:n=3,size=64x80", "--split", "test", "--out", str(out),
                 "--ship", f"{shipped}={runs[0]}"]) == 2
    assert main(["report", str(runs[0]), "--data", "toy:n=3,size=64x80", "--out", str(out), "--ship", "nope"]) == 2


def test_val_curve_is_read_deduplicated_and_summarised(tmp_path):
    rows = [{"iter": 10, "ce": 1.0}, {"iter": 250, "val": {"miou": 0.30}}, {"iter": 500, "val": {"miou": 0.40}},
            {"iter": 500, "val": {"miou": 0.41}},  # a resumed run validates the same iteration again: keep the last
            {"iter": 750, "val": {"miou": 0.44}}, {"iter": 1000, "val": {"miou": 0.45}}]
    (tmp_path / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + '\n{"iter": 1010, "val')
    curve = read_val_curve(tmp_path)
    assert curve == ((250, 0.30), (500, 0.41), (750, 0.44), (1000, 0.45))
    r = _result("x", "ce", 0, 0.45, curve=curve)
    assert abs(r.late_gain - (0.45 - 0.44)) < 1e-12  # 2/3 of 1000 is nearest to 750
    assert abs(r.late_wobble - 0.037417) < 1e-5  # std of the steps (.11, .03, .01) over √2
    assert abs(r.late_mean - 0.40) < 1e-12
    assert read_val_curve(tmp_path / "nothing") == ()


def test_claims_flag_noise_and_unfinished_runs_and_chains_name_what_is_missing():
    wobbly = [(1, 0.50), (2, 0.56), (3, 0.50), (4, 0.56)]  # wobble ≈ 4.9 points
    results = [_result("ce", "ce", 0, 0.50, curve=wobbly), _result("cx", "contextrast", 0, 0.52, iterations=5,
                                                                       curve=[(i, 0.52) for i in range(1, 5)]),
               _result("ccl", "ccl", 0, 0.51)]
    claims = {c["claim"]: c for c in check_claims(results)}
    claim = claims["[A] Contextrast (CCL + BANE) beats CE"]
    assert claim["held"] and claim["within_noise"] and not claim["finished"]
    assert abs(claim["late_mean_delta"] - (0.52 - 0.53)) < 1e-12
    text = render_markdown(results, list(claims.values()), "d", "val", "cmd")
    assert "last-4 means differ by -1.00 points, which disagrees" in text
    assert "In all: 3 of 3 checked claims held in direction; 2 of the 3 differences are within noise" in text
    assert "| ce | 50.00 | 56.00 | 50.00 | 56.00 |" in text and "| ccl | – | – | – | – |" in text  # the curves
    text = render_markdown(results, list(claims.values()), "d", "val", "cmd")
    assert "within noise" in text and "stopped before its schedule ended" in text and "+1.18 to +2.16" in text
    assert "Not checked (one of the two variants was not run): " in text and "pixel-to-pixel contrast (ICCV 2021) beats CE" in text
    chains = {c["chain"]: c for c in check_chains(results)}
    loss = chains["Contextrast > CCL-random > CE"]
    assert loss["held"] is True and loss["missing"] == []
    align = chains["SRM > SRM-without-mask > bilinear"]
    assert align["held"] is None and align["missing"] == ["srm_nomask", "bilinear"]
    results.append(_result("ccl1", "ccl", 1, 0.60))  # seeds are averaged: ccl now (0.51 + 0.60) / 2 > contextrast
    loss = {c["chain"]: c for c in check_chains(results)}["Contextrast > CCL-random > CE"]
    assert loss["held"] is False and loss["observed"].startswith("ccl (55.50) > contextrast (52.00)")


def test_committed_results_table_is_what_its_json_renders_to():
    """results/camvid.md is generated: re-rendering the committed results/camvid.json gives it byte for byte."""
    root = Path(__file__).resolve().parents[1]
    data = json.loads((root / "results" / "camvid.json").read_text())
    table = (root / "results" / "camvid.md").read_text()
    runs = [RunResult(**{**r, "val_curve": tuple(tuple(p) for p in r["val_curve"])}) for r in data["runs"]]
    command = table.split("Generated by `", 1)[1].split("`; do not edit by hand", 1)[0]
    kind = data.get("checkpoint_kind", "best")
    assert render_markdown(runs, check_claims(runs), data["data"], data["split"], command, kind) == table
    assert render_markdown(runs, data["claims"], data["data"], data["split"], command, kind) == table


def test_claims_get_a_verdict_and_the_reading_says_it_in_words():
    results = [_result(f"ce{s}", "ce", s, 0.50 + 0.001 * s) for s in range(3)]
    results += [_result(f"cx{s}", "contextrast", s, 0.55 + 0.001 * s) for s in range(3)]  # +5 points, SE 0
    results += [_result(f"ccl{s}", "ccl", s, 0.45 + 0.002 * s) for s in range(3)]  # −10 points vs contextrast
    results += [_result(f"bil{s}", "ce", s, v, align="bilinear") for s, v in enumerate((0.49, 0.52, 0.50))]
    claims = {c["claim"]: c for c in check_claims(results)}
    assert claims["[A] Contextrast (CCL + BANE) beats CE"]["verdict"] == "held"
    assert claims["[A] CCL with random negatives beats CE"]["verdict"] == "refuted"
    assert claims["[B] SRM beats bilinear upsampling"]["verdict"] == "undecided"  # +0.0033 vs an SE of 0.009
    text = render_markdown(results, list(claims.values()), "toy", "val", "c")
    reading = text.split("## Reading", 1)[1].split("Generated by", 1)[0]
    assert "**Held**" in reading and "Contextrast (CCL + BANE) beats CE (+5.00 points, 3 seed(s))" in reading
    assert "**Refuted**" in reading and "**Undecided**" in reading


def test_every_split_is_reported_with_flip_and_held_out_marks():
    r = _result("cx0", "contextrast", 0, 0.55)
    r.splits = {"train:only=0006R0": {"miou": 0.55, "boundary_iou": 0.4, "per_class_iou": {"a": 0.55},
                                      "flip_miou": 0.56, "held_out": True},
                "val": {"miou": 0.65, "boundary_iou": 0.5, "per_class_iou": {"a": 0.65}, "flip_miou": None,
                        "held_out": False}}
    r.train_split = "train:without=0006R0"
    text = render_markdown([r], [], "toy", "train:only=0006R0", "c", "final")
    assert "| cx0 | train:without=0006R0 | 55.00 (56.00), held out | 65.00, seen in training |" in text
    assert "end of its schedule" in text
