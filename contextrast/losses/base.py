"""What every training loss shares (METHOD.md §2): the registry, the output type, cross-entropy with
the auxiliary head, the warm-up gate, fp32 arithmetic under autocast, and seeded sampling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contextrast.config import IGNORE_INDEX, LossConfig
from contextrast.losses.record import LayerRecord, LossRecord
from contextrast.losses.sampling import make_generator
from contextrast.registry import Registry

LOSSES: Registry[nn.Module] = Registry("loss")


@dataclass
class LossOutput:
    """total: scalar tensor to back-propagate. terms: plain floats (ce, aux, ccl|pixel_contrast, total).
    record: what the loss did (only when called with record=True)."""

    total: Tensor
    terms: dict[str, float]
    record: LossRecord | None = None


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX) -> Tensor:
    """Mean CE over non-ignored pixels in fp32; logits (B, K, h, w) are bilinearly resized to target (B, H, W).
    0 (still attached to the graph) when every pixel is ignored, where torch's mean would give NaN."""
    if tuple(logits.shape[-2:]) != tuple(target.shape[-2:]):
        logits = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
    summed = F.cross_entropy(logits.float(), target, ignore_index=ignore_index, reduction="sum")
    return summed / (target != ignore_index).sum().clamp(min=1)


def unpack(model_out: object) -> tuple[Tensor, Tensor | None, list[Tensor] | None]:
    """SCRNetOutput (or anything with .logits/.aux_logits/.embeddings) or a plain logits tensor."""
    if isinstance(model_out, Tensor):
        return model_out, None, None
    if not hasattr(model_out, "logits"):
        raise ValueError(f"model_out must be a logits Tensor or an SCRNetOutput; got {type(model_out).__name__}")
    return model_out.logits, getattr(model_out, "aux_logits", None), getattr(model_out, "embeddings", None)


class SegmentationLoss(nn.Module):
    """CE (+ aux CE) + α·(contrastive term of the subclass), METHOD.md §2 "total L = L_CE + α·L_CCL".

    Sampling is seeded from `seed` and a call counter (`calls`), so a run with a fixed seed repeats
    exactly; pass `generator=` to take control instead. Subclasses with a contrastive term set
    `needs_embeddings = True`, `term_name`, and implement `contrastive`.
    """

    needs_embeddings: bool = False
    term_name: str = ""

    def __init__(self, cfg: LossConfig, num_classes: int, ignore_index: int = IGNORE_INDEX):
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} collides with a class id in [0, {num_classes})")
        self.cfg = cfg
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.seed = 0
        self.calls = 0

    def forward(
        self,
        model_out: object,
        target: Tensor,
        progress: float = 1.0,
        record: bool = False,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        """model_out: SCRNetOutput (or logits (B, K, H, W) for ce); target (B, H, W) long, 255 = ignore.
        progress: fraction of training done in [0, 1]; the contrastive term is 0 while progress < cfg.warmup."""
        logits, aux, embeddings = unpack(model_out)
        if target.dim() != 3 or target.shape[0] != logits.shape[0]:
            raise ValueError(f"target must be (B, H, W) with B={logits.shape[0]}; got {tuple(target.shape)}")
        if logits.shape[1] != self.num_classes:
            raise ValueError(f"logits have {logits.shape[1]} classes; the loss was built for {self.num_classes}")
        if not 0.0 <= float(progress) <= 1.0:
            raise ValueError(f"progress must lie in [0, 1]; got {progress}")
        target = target.long()
        if generator is None:
            generator = make_generator(logits.device, self.seed * 1_000_003 + self.calls)
        self.calls += 1
        with torch.autocast(device_type=logits.device.type, enabled=False):  # logits/similarities in fp32
            terms: dict[str, Tensor] = {"ce": cross_entropy(logits, target, self.ignore_index)}
            total = terms["ce"]
            if aux is not None:
                terms["aux"] = cross_entropy(aux, target, self.ignore_index)
                total = total + self.cfg.aux_weight * terms["aux"]
            layers: list[LayerRecord] = []
            if self.term_name:
                if float(progress) >= self.cfg.warmup:
                    if embeddings is None:
                        raise ValueError(
                            f"loss {self.cfg.name!r} needs embeddings: call model(x, return_embeddings=True)"
                        )
                    term, layers = self.contrastive(logits, embeddings, target, generator, record)
                    total = total + self.cfg.alpha * term
                else:
                    term = total.new_zeros(())
                terms[self.term_name] = term
            terms["total"] = total
        values = torch.stack([t.detach().float() for t in terms.values()]).tolist()  # one device sync
        floats = dict(zip(terms, values))
        rec = LossRecord(loss=self.cfg.name, layers=layers, terms=floats) if record else None
        return LossOutput(total=total, terms=floats, record=rec)

    def contrastive(
        self, logits: Tensor, embeddings: list[Tensor], target: Tensor, generator: torch.Generator, record: bool
    ) -> tuple[Tensor, list[LayerRecord]]:
        raise NotImplementedError
