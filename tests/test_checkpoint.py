"""engine.checkpoint, card, atomic, provenance: safetensors + JSON round trips, atomic swaps, clear errors, no pickle."""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import torch

from contextrast.engine import card as card_module
from contextrast.engine.card import ModelCard, read_card
from contextrast.engine.checkpoint import load_checkpoint, save_checkpoint
from contextrast.engine.provenance import code_version, hardware_string
from contextrast.engine.training_state import load_training_state, save_training_state
from contextrast.models import build_model

TINY = {"num_classes": 3, "decoder_channels": 16, "embed_dim": 8}


def tiny_model(seed: int = 0, **changes):
    torch.manual_seed(seed)
    return build_model({**TINY, **changes}).eval()


def card_for(net, name: str = "tiny", **changes) -> ModelCard:
    k = net.num_classes
    fields = dict(
        name=name,
        model=dict(net.config.__dict__),
        dataset="toy",
        classes=[f"c{i}" for i in range(k)],
        palette=[[10 * i, 20 * i, 30 * i] for i in range(k)],
        metrics={"miou": 0.5, "per_class_iou": {f"c{i}": 0.5 for i in range(k)}},
        iteration=7,
    )
    return ModelCard(**{**fields, **changes})


def no_tmp_dirs(parent: Path) -> bool:
    return not [p for p in parent.iterdir() if p.name.startswith(".")]


def test_round_trip_gives_the_same_logits(tmp_path):
    model = tiny_model()
    x = torch.randn(2, 3, 64, 80)
    path = save_checkpoint(tmp_path / "ck", model, card_for(model))
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "model.safetensors", "model_card.json"]
    loaded, card = load_checkpoint(path)
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(model(x).logits, loaded(x).logits)
    assert card.iteration == 7 and card.classes == ["c0", "c1", "c2"] and card.created
    assert read_card(path) == card
    readme = (path / "README.md").read_text()
    assert "# tiny" in readme and "c2" in readme and "#14283c" in readme and "50.00" in readme
    assert f'load_checkpoint("{path}")' in readme
    assert no_tmp_dirs(tmp_path)


def test_loading_never_unpickles(tmp_path, monkeypatch):
    model = tiny_model()
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    save_checkpoint(tmp_path / "ck", model, card_for(model))
    save_training_state(tmp_path / "state", model, opt, None, {"iteration": 1})

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used while loading a checkpoint")

    for target, name in ((torch, "load"), (pickle, "load"), (pickle, "loads"), (pickle, "Unpickler")):
        monkeypatch.setattr(target, name, refuse)
    load_checkpoint(tmp_path / "ck")
    load_training_state(tmp_path / "state", tiny_model(1), torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9))


def test_failed_write_leaves_the_old_checkpoint_intact(tmp_path, monkeypatch):
    old = tiny_model(0)
    path = save_checkpoint(tmp_path / "ck", old, card_for(old, name="old"))

    def boom(card, location=None):
        raise OSError("disk full (simulated)")

    monkeypatch.setattr(card_module, "render_readme", boom)  # fails after the weights and the JSON are written
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, tiny_model(1), card_for(old, name="new"))
    model, card = load_checkpoint(path)
    assert card.name == "old"
    assert all(torch.equal(v, old.state_dict()[k]) for k, v in model.state_dict().items())
    assert no_tmp_dirs(tmp_path)


def test_interrupted_swap_is_recovered(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "ck", model, card_for(model, name="old"))
    # the instant between "rename old away" and "rename new in", and a temp dir of a killed writer
    os.replace(path, tmp_path / ".ck.old-deadbeef")
    (tmp_path / ".ck.tmp-cafebabe").mkdir()
    (tmp_path / ".ck.tmp-cafebabe" / "model.safetensors").write_bytes(b"half")
    assert read_card(path).name == "old"  # readers find the parked old copy
    save_checkpoint(path, model, card_for(model, name="new"))
    assert read_card(path).name == "new"
    assert not (tmp_path / ".ck.old-deadbeef").exists()


_KILL_SCRIPT = textwrap.dedent("""
    import sys, torch
    from contextrast.engine.card import ModelCard
    from contextrast.engine.checkpoint import save_checkpoint
    from contextrast.models import build_model
    model = build_model({"num_classes": 3, "decoder_channels": 16, "embed_dim": 8})
    i = 0
    print("ready", flush=True)
    while True:
        i += 1
        card = ModelCard(name=f"v{i}", model=dict(model.config.__dict__), dataset="toy", classes=["a", "b", "c"],
                         palette=[[0, 0, 0]] * 3, iteration=i)
        save_checkpoint(sys.argv[1], model, card)
""")


def test_kill_during_repeated_saves_leaves_a_complete_checkpoint(tmp_path):
    target = tmp_path / "ck"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", _KILL_SCRIPT, str(target)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout.readline().strip() == b"ready"
        deadline = time.time() + 60
        while not (target / "model_card.json").exists() and time.time() < deadline:
            time.sleep(0.05)
        time.sleep(0.7)  # let it go through a few more swaps
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    model, card = load_checkpoint(target)
    assert card.iteration >= 1 and card.name == f"v{card.iteration}"


def test_missing_and_corrupt_checkpoints_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="model.safetensors and model_card.json"):
        load_checkpoint(tmp_path / "nothing")
    model = tiny_model()
    path = save_checkpoint(tmp_path / "ck", model, card_for(model))
    weights = path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        load_checkpoint(path)
    weights.unlink()
    with pytest.raises(FileNotFoundError, match="no model.safetensors"):
        load_checkpoint(path)
    (path / "model_card.json").write_text('{"name": "x", "mod')
    with pytest.raises(ValueError, match="corrupt or truncated"):
        read_card(path)


def test_class_count_mismatches_are_named(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "ck", model, card_for(model))
    with pytest.raises(ValueError, match="predicts 3 classes but 5 were expected"):
        load_checkpoint(path, num_classes=5)
    # a card that claims 4 classes over 3-class weights: the shape mismatch is listed
    card = json.loads((path / "model_card.json").read_text())
    card["model"]["num_classes"] = 4
    card["classes"].append("c3")
    card["palette"].append([1, 2, 3])
    (path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match=r"shape mismatches: .*\(3, .*vs model \(4, "):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="model predicts 3 classes but the card lists 2"):
        two = card_for(model, model={**card["model"], "num_classes": 2}, classes=["a", "b"], palette=[[0, 0, 0]] * 2)
        save_checkpoint(tmp_path / "bad", model, two)
    with pytest.raises(ValueError, match="model.num_classes=3 but the card lists 2 classes"):
        card_for(model, classes=["a", "b"], palette=[[0, 0, 0]] * 2)


def test_state_dict_key_mismatch_lists_keys(tmp_path):
    model = tiny_model()
    path = save_checkpoint(tmp_path / "ck", model, card_for(model))
    card = json.loads((path / "model_card.json").read_text())
    card["model"]["aux_head"] = True  # the rebuilt model has an aux head the weights lack
    (path / "model_card.json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="missing keys: aux_head"):
        load_checkpoint(path)


def test_card_refuses_unknown_keys_and_bad_palettes():
    model = tiny_model()
    d = card_for(model).to_dict()
    assert ModelCard.from_dict(d) == card_for(model)
    with pytest.raises(ValueError, match=r"unknown model card keys \['colour'\]"):
        ModelCard.from_dict({**d, "colour": 1})
    with pytest.raises(ValueError, match="lacks required keys"):
        ModelCard.from_dict({k: v for k, v in d.items() if k != "classes"})
    with pytest.raises(ValueError, match="palette has 2 colours for 3 classes"):
        card_for(model, palette=[[0, 0, 0]] * 2)


def test_provenance_strings(monkeypatch):
    from contextrast import __version__

    assert code_version().startswith(__version__)
    assert hardware_string()

    def no_git(*args, **kwargs):
        raise FileNotFoundError("git")

    monkeypatch.setattr(subprocess, "run", no_git)
    assert code_version() == __version__
