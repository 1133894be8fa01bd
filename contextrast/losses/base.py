"""What every training loss shares (METHOD.md §2): the output type, cross-entropy (plain or OHEM, optionally
class-weighted) with the auxiliary head, the delayed start of the contrastive term, fp32 arithmetic under
autocast, and seeded sampling."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from contextrast.config import IGNORE_INDEX, LossConfig
from contextrast.losses.record import LayerRecord, LossRecord
from contextrast.losses.registry import LOSSES
from contextrast.losses.sampling import make_generator
from contextrast.pixel_grid import upsample

__all__ = ["LOSSES", "LossOutput", "SegmentationLoss", "cross_entropy", "ohem_cross_entropy"]


@dataclass
class LossOutput:
    """total: scalar tensor to back-propagate. terms: plain floats (ce, aux, the contrastive term under the loss's
    name, total). record: what the loss did (only when called with record=True)."""

    total: Tensor
    terms: dict[str, float]
    record: LossRecord | None = None


def _logits_at(logits: Tensor, target: Tensor) -> Tensor:
    """logits (B, K, h, w) in fp32 at the size of target (B, H, W), upsampled in the network's pixel grid."""
    logits = logits.float()
    if tuple(logits.shape[-2:]) != tuple(target.shape[-2:]):
        logits = upsample(logits, tuple(target.shape[-2:]))
    return logits


def cross_entropy(logits: Tensor, target: Tensor, ignore_index: int = IGNORE_INDEX, weight: Tensor | None = None) -> Tensor:
    """Mean CE over non-ignored pixels in fp32; logits (B, K, h, w) are resized to target (B, H, W). With class
    `weight` (K,) the mean is weighted (torch's convention). 0 (still attached to the graph) when every pixel is
    ignored, where torch's mean would give NaN."""
    logits = _logits_at(logits, target)
    summed = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="sum")
    valid = target != ignore_index
    if weight is None:
        return summed / valid.sum().clamp(min=1)
    return summed / weight[target[valid]].sum().clamp(min=1e-12)


def ohem_cross_entropy(
    logits: Tensor, target: Tensor, threshold: float, min_kept: int, ignore_index: int = IGNORE_INDEX,
    weight: Tensor | None = None,
) -> Tensor:
    """Online hard example mining (pixel OHEM, as mmsegmentation's OHEMPixelSampler): CE over the pixels whose
    true-class probability is below `threshold`, and at least the `min_kept` hardest of them.
    logits (B, K, h, w), target (B, H, W) → scalar."""
    logits = _logits_at(logits, target)
    valid = target != ignore_index
    n_valid = int(valid.sum())
    if n_valid == 0:
        return logits.sum() * 0.0
    with torch.no_grad():
        prob = logits.softmax(1).gather(1, torch.where(valid, target, 0)[:, None])[:, 0]  # (B, H, W)
        p_valid = prob[valid]
        k = min(max(int(min_kept), 1), n_valid)
        kth = p_valid.kthvalue(k).values
        hard = valid & (prob < torch.maximum(kth, torch.tensor(threshold, device=prob.device)))
        hard |= valid & (prob <= kth)  # ties at the k-th value keep at least min_kept
    per_pixel = F.cross_entropy(logits, torch.where(valid, target, 0), weight=weight, reduction="none")
    if weight is None:
        return (per_pixel * hard).sum() / hard.sum().clamp(min=1)
    w = weight[torch.where(valid, target, 0)] * hard
    return (per_pixel * hard).sum() / w.sum().clamp(min=1e-12)


class SegmentationLoss(nn.Module):
    """CE (+ aux CE) + α·(contrastive term of the subclass), METHOD.md §2 "total L = L_CE + α·L_CCL".

    Sampling is seeded from `seed` and a call counter, so a run with a fixed seed repeats exactly and a resumed
    run continues the same stream (`resume_at`); pass `generator=` to take control instead. Subclasses with a
    contrastive term set `contrastive_layers` (the encoder layers whose embeddings they read) and implement
    `contrastive`; the term is logged under the loss's name.
    """

    contrastive_layers: tuple[int, ...] = ()

    def __init__(
        self,
        cfg: LossConfig,
        num_classes: int,
        ignore_index: int = IGNORE_INDEX,
        seed: int = 0,
        class_weights: Tensor | None = None,
    ):
        super().__init__()
        if int(num_classes) < 1:
            raise ValueError(f"num_classes must be a positive integer; got {num_classes!r}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} collides with a class id in [0, {num_classes})")
        if class_weights is not None and tuple(class_weights.shape) != (int(num_classes),):
            raise ValueError(f"class_weights must have one value per class ({num_classes}); got {tuple(class_weights.shape)}")
        self.cfg = cfg
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.seed = int(seed)
        self.calls = 0
        self.register_buffer("class_weights", None if class_weights is None else class_weights.float(), persistent=False)

    @property
    def term_name(self) -> str:
        """The key of the contrastive term in `LossOutput.terms` ("" for a loss without one)."""
        return self.cfg.name if self.contrastive_layers else ""

    @property
    def needs_embeddings(self) -> bool:
        return bool(self.contrastive_layers)

    def resume_at(self, calls: int) -> None:
        """Continue the sampling stream as if `calls` calls had been made (a resumed run)."""
        self.calls = int(calls)

    def contrast_active(self, progress: float) -> bool:
        """Whether the contrastive term is on at this fraction of training (`LossConfig.contrast_start`)."""
        return bool(self.contrastive_layers) and float(progress) >= self.cfg.contrast_start

    def embedding_layers(self, progress: float = 1.0) -> tuple[int, ...]:
        """The projection heads the model must run at this point of training: none before the contrastive term
        starts, so that no unused head sits in the graph (DistributedDataParallel needs every output used)."""
        return self.contrastive_layers if self.contrast_active(progress) else ()

    def segmentation_ce(self, logits: Tensor, target: Tensor) -> Tensor:
        if self.cfg.ce == "ohem":
            return ohem_cross_entropy(logits, target, self.cfg.ohem_threshold, self.cfg.ohem_min_kept,
                                      self.ignore_index, self.class_weights)
        return cross_entropy(logits, target, self.ignore_index, self.class_weights)

    def forward(
        self,
        model_out: object,
        target: Tensor,
        progress: float = 1.0,
        record: bool = False,
        generator: torch.Generator | None = None,
    ) -> LossOutput:
        """model_out: an `SCRNetOutput` (anything with .logits, .aux_logits, .embeddings); target (B, H, W) long,
        255 = ignore. progress: fraction of training done in [0, 1]; the contrastive term is 0 before
        cfg.contrast_start."""
        logits = getattr(model_out, "logits", None)
        if not isinstance(logits, Tensor):
            raise ValueError(f"model_out must be an SCRNetOutput (with .logits); got {type(model_out).__name__}")
        aux, embeddings = getattr(model_out, "aux_logits", None), getattr(model_out, "embeddings", None)
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
            terms: dict[str, Tensor] = {"ce": self.segmentation_ce(logits, target)}
            total = terms["ce"]
            if aux is not None:
                terms["aux"] = cross_entropy(aux, target, self.ignore_index, self.class_weights)
                total = total + self.cfg.aux_weight * terms["aux"]
            layers: list[LayerRecord] = []
            if self.contrastive_layers:
                if self.contrast_active(progress):
                    if embeddings is None or any(embeddings[i] is None for i in self.contrastive_layers):
                        raise ValueError(
                            f"loss {self.cfg.name!r} needs the embeddings of layers {list(self.contrastive_layers)}: "
                            f"call model(x, return_embeddings=loss.embedding_layers(progress))"
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
