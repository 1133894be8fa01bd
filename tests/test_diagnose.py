"""`contextrast diagnose`: what a checkpoint's modules do (METHOD.md §4), on the shipped toy model and on
checkpoints without SRM or CRM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lab_helpers import write_checkpoint

from contextrast.cli import main

TOY_CHECKPOINT = Path(__file__).resolve().parents[1] / "checkpoints" / "toy-scrnet"


def run_diagnose(tmp_path: Path, checkpoint: Path, *extra: str) -> dict:
    out = tmp_path / "diag.json"
    code = main(["diagnose", "--checkpoint", str(checkpoint), "--data", "toy:n=4,size=64x96", "--split", "val",
                 "--max-images", "2", "--no-progress", "--json", str(out), *extra])
    assert code == 0
    return json.loads(out.read_text())


def test_diagnose_on_the_toy_checkpoint_reports_every_section(tmp_path, capsys):
    result = run_diagnose(tmp_path, TOY_CHECKPOINT, "--set", "loss.bane_rule=rank", "--set", "loss.bane_distance_stride=2")
    shares = result["bane"]["kept_share"]
    assert set(shares) == {"E1", "E2", "E3", "E4"} and set(shares["E1"]) == {"25", "50", "75"}
    assert shares["E1"]["25"] < shares["E1"]["50"] < shares["E1"]["75"]  # the rank rule: K_s chooses
    assert len(result["srm"]) == 3
    for step in result["srm"]:
        assert set(step) >= {"mean_translation_px", "share_over_2px", "mask_entropy"}
        assert 0.0 <= step["share_over_2px"] <= 1.0 and 0.0 <= step["mask_entropy"] <= step["mask_entropy_max"]
    assert set(result["crm"]) >= {"channel_row_entropy", "channel_row_max", "spatial_row_entropy"}
    assert set(result["interventions"]) == {"as_trained", "offsets_zeroed", "mean_offset_removed",
                                            "mean_offset_only", "mask_off", "crm_off"}
    assert all(0.0 <= v <= 1.0 for v in result["interventions"].values())
    assert "BANE kept share" in capsys.readouterr().out


def test_the_old_percentile_rule_keeps_every_tie(tmp_path):
    old = run_diagnose(tmp_path, TOY_CHECKPOINT, "--set", "loss.bane_rule=percentile", "--set",
                       "loss.bane_distance_stride=0")
    assert old["bane"]["settings"] == {"rule": "percentile", "distance_stride": 0, "k_s": 50.0}
    assert old["bane"]["kept_share"]["E2"]["25"] == old["bane"]["kept_share"]["E2"]["75"]  # K_s changes nothing


@pytest.mark.parametrize("model,missing", [({"align": "bilinear"}, "srm"), ({"context": "ppm"}, "crm")])
def test_sections_that_do_not_apply_are_named_instead_of_failing(tmp_path, model, missing):
    ckpt = write_checkpoint(tmp_path / "ckpt", **model)
    result = run_diagnose(tmp_path, ckpt)
    assert result[missing] is None and missing in result["not_applicable"]
    assert result["interventions"]["as_trained"] >= 0.0
    if missing == "srm":
        assert "offsets_zeroed" not in result["interventions"]
        assert "interventions.offsets_zeroed" in result["not_applicable"]
    else:
        assert "crm_off" not in result["interventions"]


def test_bad_diagnose_arguments_are_clear_errors(tmp_path, capsys):
    assert main(["diagnose", "--checkpoint", str(TOY_CHECKPOINT), "--data", "toy", "--set", "model.align=srm"]) == 2
    assert "loss.* overrides only" in capsys.readouterr().err
    assert main(["diagnose", "--checkpoint", str(tmp_path / "nothing"), "--data", "toy"]) == 2
