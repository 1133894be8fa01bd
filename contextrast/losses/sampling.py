"""Uniform sampling without Python loops: random keys + top-k (METHOD.md §2 "sampled uniformly").

Giving every candidate an i.i.d. uniform key and keeping the k largest draws a uniform k-subset; adding
an integer bonus to one kind of candidate takes all of those first (BANE before the random fill).
All draws go through an explicit `torch.Generator`, so a fixed seed fixes every sample.
"""

from __future__ import annotations

import torch
from torch import Tensor


def make_generator(device: torch.device, seed: int) -> torch.Generator:
    """A generator on `device` (CUDA draws need a CUDA generator) seeded with `seed`."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def top_keys(keys: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """keys (R, N), -inf for non-candidates → (index (R, k'), chosen (R, k') bool), k' = min(k, N).

    Row r picks its min(k, #candidates) largest keys; `chosen` is False on the slots left over."""
    k = max(1, min(int(k), keys.shape[1]))
    values, index = keys.topk(k, dim=1, sorted=False)
    return index, values > float("-inf")


def random_rank_within_groups(groups: Tensor, num_groups: int, generator: torch.Generator) -> Tensor:
    """groups (M,) long in [0, num_groups) → (M,) long: a uniformly random rank 0..n_g−1 of every
    element among the elements of its group (keep `rank < quota[group]` for a uniform draw per group)."""
    m = groups.numel()
    if m == 0:
        return groups.new_zeros(0)
    perm = torch.randperm(m, generator=generator, device=groups.device)
    order = perm[torch.argsort(groups[perm], stable=True)]
    counts = torch.bincount(groups, minlength=num_groups)
    start = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(groups)
    rank[order] = torch.arange(m, device=groups.device) - start[groups[order]]
    return rank
