"""Resource bounds (contextrast.limits) and where the lab enforces them: the run cache in bytes, Gradio's
cache cleaned, models bounded in width and parameters, and a CPU training process under a memory limit."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from lab_helpers import write_checkpoint

from contextrast import limits


def test_the_run_cache_is_bounded_in_bytes_not_only_in_entries(tmp_path):
    from app.state import ModelStore, nbytes_of

    ckpt = write_checkpoint(tmp_path / "toy", decoder_channels=16, embed_dim=16)
    rng = np.random.default_rng(0)
    images = [(rng.random((256, 256, 3)) * 255).astype(np.uint8) for _ in range(6)]
    _, one = ModelStore([ckpt]).run("toy", images[0])
    size = nbytes_of(one)
    assert size > 256 * 256 * 3  # the forward pass, its embeddings and intermediates are counted
    store = ModelStore([ckpt], runs_cached=8, cache_bytes=int(2.5 * size / 0.75))
    for rgb in images:
        store.run("toy", rgb)
    assert len(store.runs) == 2 and store.runs.nbytes <= store.runs.max_bytes  # 8 entries would fit by count
    tiny = ModelStore([ckpt], cache_bytes=size // 2)
    tiny.run("toy", images[0])
    assert len(tiny.runs) == 0  # bigger than the whole budget: computed, returned, not kept


def test_the_run_cache_makes_a_value_once_for_concurrent_requests_and_passes_a_failure_on():
    """Two requests for the same forward pass at once (the head start and the first page) run it once."""
    import threading
    import time

    from app.state import LRU

    cache, calls, results = LRU(4), [], []

    def slow() -> str:
        calls.append(1)
        time.sleep(0.3)
        return "run"

    threads = [threading.Thread(target=lambda: results.append(cache.get_or_make("k", slow))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == ["run"] * 3 and len(calls) == 1

    failures: list[BaseException] = []
    tries = []

    def fails() -> str:
        tries.append(1)
        time.sleep(0.3)
        raise ValueError("bad input")

    def ask() -> None:
        try:
            cache.get_or_make("bad", fails)
        except ValueError as e:
            failures.append(e)

    threads = [threading.Thread(target=ask) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [str(e) for e in failures] == ["bad input"] * 2 and len(tries) == 1  # the waiter got the maker's failure
    assert cache.get_or_make("bad", lambda: "retried") == "retried"  # a failure is not cached


def test_the_run_cache_keeps_the_embeddings_tabs_images_of_two_checkpoints(tmp_path):
    """A second projection of the same 16 images (another seed or point count) finds their forward passes."""
    from app.state import ModelStore
    from app.tabs.embeddings import MAX_IMAGES

    ckpt = write_checkpoint(tmp_path / "toy", decoder_channels=16, embed_dim=16)
    rng = np.random.default_rng(0)
    store = ModelStore([ckpt])
    images = [(rng.random((32, 32, 3)) * 255).astype(np.uint8) for _ in range(2 * MAX_IMAGES)]
    first = [store.run("toy", rgb)[1] for rgb in images]
    assert all(store.run("toy", rgb)[1] is run for rgb, run in zip(images, first))


def test_the_lab_cleans_gradios_cache():
    from app.main import DELETE_CACHE, build_ui

    demo = build_ui([], None, toy_spec=None, warm_up_umap=False)
    assert demo.delete_cache == DELETE_CACHE and DELETE_CACHE[1] <= 24 * 3600


def test_model_bounds_are_checked_on_the_meta_device(monkeypatch):
    import dataclasses

    from contextrast.config import ModelConfig

    assert 0 < limits.check_model_size(ModelConfig(decoder_channels=16, embed_dim=16)) < 20_000_000
    with pytest.raises(ValueError, match="embed_dim=5000 is wider than the bound of 1024"):
        limits.check_model_size(ModelConfig(embed_dim=5000))
    monkeypatch.setattr(limits, "_PROCESS", dataclasses.replace(limits.current(), max_model_parameters=1_000_000))
    with pytest.raises(ValueError, match="M parameters, more than the bound of 1 M"):
        limits.check_model_size(ModelConfig(decoder_channels=16, embed_dim=16))


def test_counting_a_cards_parameters_is_exact_and_imports_no_compiler(tmp_path):
    """The meta-device count equals the built model's; and reading a card does not initialise meta tensors, whose
    Python reference kernels import torch._dynamo (2.3 s of the app's start-up)."""
    from contextrast.config import ModelConfig
    from contextrast.models import build_model

    cfg = ModelConfig(decoder_channels=16, embed_dim=16, aux_head=True)
    assert limits.check_model_size(cfg) == sum(p.numel() for p in build_model(cfg).parameters())
    ckpt = write_checkpoint(tmp_path / "toy", decoder_channels=16, embed_dim=16)
    code = (f"import sys; from contextrast.engine.card import read_card; read_card({str(ckpt)!r}); "
            "print('torch._dynamo' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"


def test_bounds_come_from_the_environment_and_bad_values_are_named():
    code = ("from contextrast import limits; l = limits.current(); "
            "print(l.max_image_pixels, l.job_memory_bytes)")
    env = {"CONTEXTRAST_MAX_IMAGE_PIXELS": "1000", "CONTEXTRAST_JOB_MEMORY_GB": "2", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.split() == ["1000", str(2 << 30)]
    bad = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env={**env, "CONTEXTRAST_MAX_IMAGE_PIXELS": "lots"})
    assert bad.returncode != 0 and "CONTEXTRAST_MAX_IMAGE_PIXELS='lots' must be a number" in bad.stderr


def test_a_cpu_training_process_that_outgrows_its_memory_limit_fails_alone_with_that_reason():
    """The job's own process, capped by limit_memory (RLIMIT_DATA), fails with an out-of-memory reason instead
    of taking the machine down."""
    code = """
import torch
from contextrast.jobs.training import failure_text, limit_memory
limit = limit_memory("cpu")
try:
    torch.empty(2 * limit, dtype=torch.uint8).fill_(1)
except BaseException as e:
    print(failure_text(e, limit))
"""
    env = {"CONTEXTRAST_JOB_MEMORY_GB": "1", "OMP_NUM_THREADS": "1", "PATH": ""}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "out of memory: the job needed more than its limit of 1.0 GiB (CONTEXTRAST_JOB_MEMORY_GB)" in out.stdout
