"""Resource bounds, set once here and enforced wherever input turns into memory or compute.

Each bound is a field of `Limits` with a default and an environment variable that raises or
lowers it for a whole process (read once, at import):

    pixels of one decoded or generated image   CONTEXTRAST_MAX_IMAGE_PIXELS   40 000 000
    channels of one model layer (width)        CONTEXTRAST_MAX_MODEL_WIDTH    1 024
    parameters of one model                    CONTEXTRAST_MAX_MODEL_PARAMS   300 000 000
    memory of one training job's process       CONTEXTRAST_JOB_MEMORY_GB      3/4 of this machine's RAM
    bytes of analysis results the app caches   CONTEXTRAST_APP_CACHE_MB       1 536
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

MAX_CLASSES = 255  # label maps are uint8 with 255 = ignore (METHOD.md §2 "ignore label")


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 16 << 30


def _env_number(name: str, default: float) -> float:
    text = os.environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r} must be a number") from None
    if not value > 0:
        raise ValueError(f"{name}={text!r} must be positive")
    return value


@dataclass(frozen=True)
class Limits:
    max_image_pixels: int = 40_000_000
    max_model_width: int = 1024
    max_model_parameters: int = 300_000_000
    job_memory_bytes: int = int(0.75 * _physical_memory())
    app_cache_bytes: int = 1536 << 20

    @classmethod
    def from_env(cls) -> Limits:
        d = cls()
        return cls(
            max_image_pixels=int(_env_number("CONTEXTRAST_MAX_IMAGE_PIXELS", d.max_image_pixels)),
            max_model_width=int(_env_number("CONTEXTRAST_MAX_MODEL_WIDTH", d.max_model_width)),
            max_model_parameters=int(_env_number("CONTEXTRAST_MAX_MODEL_PARAMS", d.max_model_parameters)),
            job_memory_bytes=int(_env_number("CONTEXTRAST_JOB_MEMORY_GB", d.job_memory_bytes / 2**30) * 2**30),
            app_cache_bytes=int(_env_number("CONTEXTRAST_APP_CACHE_MB", d.app_cache_bytes / 2**20) * 2**20),
        )


_PROCESS = Limits.from_env()


def current() -> Limits:
    """The bounds of this process."""
    return _PROCESS


class ImageTooLarge(ValueError):
    """A picture above the pixel bound, refused before decoding."""


def check_image_size(width: int, height: int, what: str = "the image", limit: int | None = None,
                     why: str = "this lab decodes") -> None:
    """Refuse a picture of `width`×`height` px above `limit` (default: the pixel bound) before any pixel
    is decoded or drawn."""
    limit = current().max_image_pixels if limit is None else int(limit)
    if int(width) * int(height) > limit:
        raise ImageTooLarge(f"{what} is {width}×{height} px ({int(width) * int(height) / 1e6:.1f} MP), more than the "
                         f"{limit / 1e6:.1f} MP {why}; use a smaller image")


def _without_initialisation() -> Any:
    """A torch function mode in which the in-place fills of `torch.nn.init` do nothing. On the meta device they
    would run PyTorch's Python reference kernels, whose first call imports torch._dynamo (~2.3 s of every
    command's and the app's start-up) to count parameters that hold no values anyway."""
    import torch
    from torch.overrides import TorchFunctionMode

    skipped = {torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.fill_, torch.Tensor.zero_,
               torch.Tensor.erfinv_, torch.Tensor.clamp_, torch.Tensor.mul_, torch.Tensor.add_, torch.Tensor.copy_}

    class WithoutInitialisation(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
            return args[0] if func in skipped else func(*args, **(kwargs or {}))

    return WithoutInitialisation()


def check_model_size(config: Any) -> int:
    """Refuse a model wider or larger than the bounds. `config`: a ModelConfig or a dict of its fields.
    Builds it on the meta device (no memory, no weights, no initialisation) to count its parameters. → the count."""
    import torch

    from contextrast.config import model_config_from_card
    from contextrast.models import build_model

    if not isinstance(config, dict) and not hasattr(config, "decoder_channels"):
        raise ValueError(f"the model must be a mapping of ModelConfig fields; got {config!r}")
    cfg = model_config_from_card(config) if isinstance(config, dict) else config
    bounds = current()
    for name in ("decoder_channels", "embed_dim"):
        if int(getattr(cfg, name)) > bounds.max_model_width:
            raise ValueError(f"model.{name}={getattr(cfg, name)} is wider than the bound of {bounds.max_model_width} "
                             "channels (CONTEXTRAST_MAX_MODEL_WIDTH)")
    if not 1 <= int(cfg.num_classes) <= MAX_CLASSES:
        raise ValueError(f"model.num_classes={cfg.num_classes} must lie in 1..{MAX_CLASSES} (label ids are 8-bit, "
                         "255 = ignore)")
    if int(cfg.in_channels) > 16:
        raise ValueError(f"model.in_channels={cfg.in_channels} must be at most 16")
    with torch.device("meta"), _without_initialisation():
        model = build_model(cfg)
    count = sum(p.numel() for p in model.parameters())
    if count > bounds.max_model_parameters:
        raise ValueError(f"the model has {count / 1e6:.0f} M parameters, more than the bound of "
                         f"{bounds.max_model_parameters / 1e6:.0f} M (CONTEXTRAST_MAX_MODEL_PARAMS)")
    return count
