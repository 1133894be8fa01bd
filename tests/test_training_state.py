"""engine.training_state: optimizer, grad scaler and RNG saved as safetensors + JSON, restored exactly."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from test_checkpoint import card_for, tiny_model

from contextrast.engine.checkpoint import load_checkpoint
from contextrast.engine.training_state import (
    capture_rng_state,
    from_tensors_and_json,
    load_training_state,
    restore_rng_state,
    save_training_state,
    to_tensors_and_json,
)


def _train_steps(model, optimizer, steps: int, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(steps):
        x = torch.randn(2, 3, 32, 32, generator=g)
        y = torch.randint(0, 3, (2, 32, 32), generator=g)
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(x).logits, y).backward()
        optimizer.step()


@pytest.mark.parametrize("make_opt", [
    lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9, weight_decay=1e-4),
    lambda p: torch.optim.AdamW(p, lr=1e-3, betas=(0.8, 0.95)),
], ids=["sgd-momentum", "adamw"])
def test_training_state_round_trip_restores_optimizer(tmp_path, make_opt):
    model = tiny_model(0)
    opt = make_opt(model.parameters())
    scaler = torch.amp.GradScaler("cpu", init_scale=512.0)
    _train_steps(model, opt, 2, seed=1)
    state = {"iteration": 2, "elapsed": 1.5, "rng": capture_rng_state()}
    save_training_state(tmp_path / "last", model, opt, scaler, state, card=card_for(model))

    fresh = tiny_model(5)
    fresh_opt = make_opt(fresh.parameters())
    fresh_scaler = torch.amp.GradScaler("cpu", init_scale=1.0)
    got = load_training_state(tmp_path / "last", fresh, fresh_opt, fresh_scaler)
    assert got["iteration"] == 2 and got["elapsed"] == 1.5
    assert fresh_scaler.get_scale() == 512.0
    a, b = opt.state_dict(), fresh_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys() and a["state"]
    for pid, entries in a["state"].items():
        for name, value in entries.items():
            other = b["state"][pid][name]
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(other)), (pid, name)
    # training on from both gives identical weights
    _train_steps(model, opt, 1, seed=2)
    _train_steps(fresh, fresh_opt, 1, seed=2)
    for (k, v), w in zip(model.state_dict().items(), fresh.state_dict().values()):
        assert torch.allclose(v, w, atol=1e-6), k
    # the same directory is a model checkpoint too
    assert load_checkpoint(tmp_path / "last")[1].iteration == 7


def test_rng_state_round_trip():
    import random

    import numpy as np

    saved = json.loads(json.dumps(capture_rng_state()))
    first = (random.random(), np.random.rand(), torch.rand(1).item())
    restore_rng_state(saved)
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == first


def test_training_state_files_keep_their_layout(tmp_path):
    """The layout `last/` directories of earlier runs were written in: tensors under `state.<param>.<name>`,
    `{"__tensor__": key}` and `{"__tuple__": [...]}` in the JSON; a run resumes from them."""
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.8, 0.95))
    model(torch.ones(1, 2)).sum().backward()
    opt.step()
    save_training_state(tmp_path / "last", model, opt, torch.amp.GradScaler("cpu", init_scale=4.0), {"iteration": 1})
    assert sorted(load_file(tmp_path / "last" / "optimizer.safetensors")) == [
        "state.0.exp_avg", "state.0.exp_avg_sq", "state.0.step", "state.1.exp_avg", "state.1.exp_avg_sq", "state.1.step"]
    payload = json.loads((tmp_path / "last" / "training_state.json").read_text())
    assert payload["optimizer"]["state"]["1"] == {name: {"__tensor__": f"state.1.{name}"}
                                                  for name in ("step", "exp_avg", "exp_avg_sq")}
    group = payload["optimizer"]["param_groups"][0]
    assert group["betas"] == {"__tuple__": [0.8, 0.95]} and group["params"] == [0, 1]
    assert payload["scaler"]["scale"] == 4.0 and payload["state"] == {"iteration": 1}


def test_nested_state_round_trips_and_names_what_is_missing():
    tree = {"a": [torch.ones(2), (1, torch.zeros(1))], "b": {3: None, "c": (0.5, "x")}}
    tensors, structure = to_tensors_and_json(tree)
    assert sorted(tensors) == ["a.0", "a.1.1"] and json.loads(json.dumps(structure)) == structure
    back = from_tensors_and_json(tensors, json.loads(json.dumps(structure)))
    assert back["b"] == {"3": None, "c": (0.5, "x")} and back["a"][1][0] == 1 and torch.equal(back["a"][0], torch.ones(2))
    with pytest.raises(ValueError, match="tensor a.1.1 is missing from optimizer.safetensors"):
        from_tensors_and_json({"a.0": torch.ones(2)}, structure)
    with pytest.raises(ValueError, match="same key 'a.0'"):
        to_tensors_and_json({"a": [torch.ones(1)], "a.0": torch.ones(1)})
