"""Bad values and bad files at every door get one clear line, never a traceback or a signal: `--set` values
(YAML 1.2 numbers, each checked against its field's type), the CLI on bomb / tiny images and odd paths, a
read-only runs dir, broken model cards, and the lab's start-up arguments."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from lab_helpers import png_claiming, write_checkpoint
from PIL import Image

from contextrast.cli import main
from contextrast.config import ExperimentConfig, apply_overrides

# ------------------------------------------------------------------------------------- --set values


def test_set_values_are_yaml_1_2_numbers_checked_against_each_field():
    cfg = apply_overrides(ExperimentConfig(), ["train.lr=1e-3", "loss.alpha=2", "train.crop=[64, 96]"])
    assert cfg.train.lr == 0.001 and isinstance(cfg.train.lr, float)
    assert cfg.loss.alpha == 2.0 and cfg.train.crop == (64, 96)


@pytest.mark.parametrize("override,message", [
    ("train.lr=abc", "train.lr must be a number; got 'abc'"),
    ("train.momentum=abc", "train.momentum must be a number; got 'abc'"),
    ("train.crop=64", "train.crop must be a list of 2 whole numbers"),
    ("train.iterations=1.5", "train.iterations must be a whole number; got 1.5"),
    ("model.aux_head=maybe", "model.aux_head must be true or false"),
    ("train.lr=.inf", "train.lr must be a finite number"),
])
def test_a_bad_set_value_is_one_line_naming_the_key(override, message, capsys):
    assert main(["train", "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_the_same_values_in_a_yaml_file(tmp_path, capsys):
    from contextrast.config import load_config

    path = tmp_path / "c.yaml"
    path.write_text("train:\n  lr: 1e-3\n")
    assert load_config(path).train.lr == 0.001
    path.write_text("train:\n  momentum: abc\n")
    assert main(["train", "--config", str(path)]) == 2
    assert "train.momentum must be a number" in capsys.readouterr().err


# ------------------------------------------------------------------------------------------ CLI files


def test_predict_reports_bad_images_and_segments_the_rest(tmp_path, capsys):
    ckpt = write_checkpoint(tmp_path / "ckpt", decoder_channels=16, embed_dim=16)
    good = tmp_path / "good.png"
    Image.fromarray((np.random.default_rng(0).random((64, 80, 3)) * 255).astype(np.uint8)).save(good)
    tiny = tmp_path / "tiny.png"
    Image.fromarray(np.zeros((10, 10, 3), np.uint8)).save(tiny)
    bomb = png_claiming(tmp_path / "bomb.png", 60000, 60000)  # under 100 bytes
    big = png_claiming(tmp_path / "big.png", 8000, 8000)
    out = tmp_path / "out"
    code = main(["predict", "--checkpoint", str(ckpt), str(bomb), str(tiny), str(big), str(good), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "skipping" in err and "at least 32 px" in err and "8000×8000 px" in err and "3 of 4 images" in err
    assert (out / "good_mask.png").is_file()  # one bad image no longer aborts the rest
    (tmp_path / "a-file").write_text("x")
    assert main(["predict", "--checkpoint", str(ckpt), str(good), "--out", str(tmp_path / "a-file")]) == 2
    assert "is a file; give a directory" in capsys.readouterr().err


def test_folder_eval_refuses_an_image_claiming_a_huge_size(tmp_path, capsys):
    from contextrast.data.toy import TOY

    ckpt = write_checkpoint(tmp_path / "ckpt", decoder_channels=16, embed_dim=16)
    root = tmp_path / "folder"
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True)
        png_claiming(root / sub / "a.png", 60000, 60000)
    (root / "classes.json").write_text(json.dumps({"classes": list(TOY.classes)}))
    code = main(["eval", "--checkpoint", str(ckpt), "--data", f"folder:{root}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "far larger than this lab decodes" in err and "cv2.error" not in err


# -------------------------------------------------------------------------------------- runs dir, cards


def _unwritable_dir(tmp_path: Path) -> Path:
    if os.geteuid() == 0:  # root writes anywhere it may; /proc refuses new files even to root
        return Path("/proc")
    path = tmp_path / "read-only"
    path.mkdir()
    path.chmod(0o555)
    return path


@pytest.mark.parametrize("command", [["jobs", "submit", "--data", "toy", "--iterations", "2"], ["worker"],
                                     ["jobs", "resume", "nosuch"]])
def test_a_read_only_runs_dir_is_a_message(tmp_path, command):
    runs = _unwritable_dir(tmp_path)
    argv = [command[0], "--runs-dir", str(runs), *command[1:]]
    done = subprocess.run([sys.executable, "-m", "contextrast.cli", *argv], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"cannot write in the runs directory {runs}" in done.stderr


def test_reading_jobs_of_a_read_only_runs_dir_works(tmp_path, capsys):
    assert main(["jobs", "--runs-dir", str(_unwritable_dir(tmp_path)), "list"]) == 0
    assert "no jobs" in capsys.readouterr().out


def test_broken_model_cards_are_skipped_with_a_reason(tmp_path):
    from app.state import ModelStore
    from contextrast.engine.card import read_card

    nested, resnet = tmp_path / "nested", tmp_path / "resnet"
    for path in (nested, resnet):
        write_checkpoint(path, decoder_channels=16, embed_dim=16)
    (nested / "model_card.json").write_text("[" * 100_000 + "]" * 100_000)
    card = json.loads((resnet / "model_card.json").read_text())
    (resnet / "model_card.json").write_text(json.dumps({**card, "model": "resnet"}))
    with pytest.raises(ValueError, match="corrupt"):
        read_card(nested)
    with pytest.raises(ValueError, match="invalid model card"):
        read_card(resnet)  # refused when read, not when first used
    store = ModelStore([nested, resnet])
    assert store.names() == [] and len(store.problems) == 2


# ------------------------------------------------------------------------------------------ the lab


@pytest.mark.parametrize("argv,message", [
    (["--max-side", "0"], "--max-side must be at least 32"),
    (["--host", "0.0.0.0", "--auth-file", "/no/such/login"], "cannot read --auth-file"),
    (["--host", "0.0.0.0", "--auth", "nocolon"], "user:password"),
])
def test_the_lab_refuses_bad_arguments_at_start(argv, message, capsys):
    assert main(["app", "--checkpoints-dir", "/nonexistent", "--no-worker", *argv]) == 2
    assert message in capsys.readouterr().err
