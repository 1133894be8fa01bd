"""Issue 5's results generator: runs → evaluated table + claims, computed, never typed."""

from __future__ import annotations

import json

from contextrast.config import load_config
from contextrast.engine.report import RunResult, build_report, check_claims
from contextrast.engine.trainer import TrainHooks, train


def _result(run: str, loss: str, seed: int, miou: float, align: str = "srm") -> RunResult:
    return RunResult(run, {"backbone": "b", "align": align, "context": "crm", "loss": loss}, seed, 10, 10, 10, miou,
                     0.5, {"a": miou}, 1, 1.0, 60.0, "cpu")


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


def test_build_report_from_real_runs(tmp_path):
    sets = ["train.data=toy:n=8,size=64x80", "train.crop=[64,64]", "train.batch_size=4", "train.workers=0",
            "train.iterations=2", "model.decoder_channels=16", "model.embed_dim=16", "loss.warmup=0.0"]
    runs = []
    for loss in ("ce", "contextrast"):
        cfg = load_config(None, sets + [f"loss.name={loss}", f"train.run_dir={tmp_path / loss}"])
        runs.append(train(cfg, TrainHooks(progress_bar=False)).run_dir)
    out, js = tmp_path / "r.md", tmp_path / "r.json"
    results = build_report(runs, "toy:n=3,size=64x80", "val", out, js, "contextrast report ...")
    text = out.read_text()
    assert "| ce |" in text and "| contextrast |" in text and "Contextrast (CCL + BANE) beats CE" in text
    data = json.loads(js.read_text())
    assert [r["variant"]["loss"] for r in data["runs"]] == ["ce", "contextrast"]
    assert all(0.0 <= r.miou <= 1.0 and r.gmacs_360x480 > 0 for r in results)
    assert data["claims"][0]["delta"] == results[1].miou - results[0].miou
