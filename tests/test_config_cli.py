"""Config parsing, overrides and the CLI front door."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from contextrast.cli import main
from contextrast.config import ExperimentConfig, load_config, save_config

ROOT = Path(__file__).resolve().parents[1]


def test_yaml_round_trip_and_overrides(tmp_path):
    cfg = load_config(None, ["model.align=bilinear", "train.crop=[360,480]", "train.lr=1", "loss.layer_weights=[1,1,1,1]"])
    assert cfg.model.align == "bilinear" and cfg.train.crop == (360, 480)
    assert isinstance(cfg.train.lr, float) and cfg.loss.layer_weights == (1.0, 1.0, 1.0, 1.0)
    save_config(cfg, tmp_path / "c.yaml")
    assert load_config(tmp_path / "c.yaml") == cfg


@pytest.mark.parametrize("override,match", [
    ("model.nope=1", "unknown model key 'nope'"),
    ("bogus.x=1", "unknown config section"),
    ("train.lr", "section.key=value"),
    ("loss.name=focal", "loss must be one of ce, pixel_contrast, ccl, contextrast"),
    ("loss.negatives=hard", "bane\\+random, bane, random"),
    ("train.crop=[16,16]", "crop must be two sizes"),
])
def test_bad_overrides_name_what_is_allowed(override, match):
    with pytest.raises(ValueError, match=match):
        load_config(None, [override])


def test_shipped_configs_parse():
    configs = sorted((ROOT / "configs").glob("*.yaml"))
    assert configs
    for path in configs:
        assert isinstance(load_config(path), ExperimentConfig)


def test_cli_flops_and_errors(capsys):
    assert main(["flops", "--size", "64", "96", "--set", "model.decoder_channels=16"]) == 0
    out = capsys.readouterr().out
    assert "GMACs" in out and "backbone" in out and "total (inference)" in out
    assert main(["flops", "--set", "model.context=aspp"]) == 2
    assert "context must be one of crm, crm_f4, ppm, none" in capsys.readouterr().err


def test_console_help_lists_commands():
    out = subprocess.run([sys.executable, "-m", "contextrast.cli", "--help"], capture_output=True, text=True, check=True).stdout
    for command in ("flops", "train", "summary"):
        assert command in out


def test_examples_name_files_that_exist():
    """`contextrast CMD --help` examples are what users copy: every config or checkpoint they name must ship."""
    import importlib
    import re

    from contextrast.cli import COMMANDS

    for module in COMMANDS.values():
        examples = importlib.import_module(f"contextrast.commands.{module}").EXAMPLES
        for path in re.findall(r"(?:configs|checkpoints)/[\w.\-/]+", examples):
            assert (ROOT / path).exists(), f"`contextrast` {module} help names {path}, which does not exist"
