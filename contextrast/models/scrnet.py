"""SCRNet: encoder → context module (CRM) → FPN decoder with SRMs → segmentation head (METHOD.md §1),
plus the four Contextrast projection heads on the encoder stages (METHOD.md §2)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch.nn.functional as F
from torch import Tensor, nn

from contextrast.config import ModelConfig
from contextrast.models.backbones import create_backbone
from contextrast.models.crm import CONTEXTS, CRMIntermediates
from contextrast.models.heads import AuxHead, ProjectionHead, SegmentationHead
from contextrast.models.srm import BilinearFuse, SemanticRefinementModule, SRMIntermediates


@dataclass
class SCRNetOutput:
    """Everything one forward can return.

    logits (B, K, H, W) at input size.  aux_logits (B, K, H/16, W/16) or None.
    embeddings: [E1..E4], Ei (B, D, H/s_i, W/s_i), L2-normalised (only when asked).
    srm: per top-down step 1/32→1/16, 1/16→1/8, 1/8→1/4, an `SRMIntermediates` (None for bilinear).
    crm: `CRMIntermediates` for crm/crm_f4, else None.
    """

    logits: Tensor
    aux_logits: Tensor | None = None
    embeddings: list[Tensor] | None = None
    srm: list[SRMIntermediates | None] = field(default_factory=list)
    crm: CRMIntermediates | None = None


class SCRNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = create_backbone(config.backbone, config.in_channels)
        ch = tuple(self.backbone.channels)
        c = config.decoder_channels
        self.context = CONTEXTS.get(config.context)(ch, c)
        if config.align == "bilinear":
            self.decoder = nn.ModuleList(BilinearFuse(c, ch[i]) for i in (2, 1, 0))
        else:
            self.decoder = nn.ModuleList(SemanticRefinementModule(c, ch[i], config.align) for i in (2, 1, 0))
        self.head = SegmentationHead(c, config.num_classes)
        self.aux_head = AuxHead(ch[2], config.num_classes) if config.aux_head else None
        self.projection_heads = nn.ModuleList(ProjectionHead(ci, config.embed_dim) for ci in ch)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(
        self, x: Tensor, return_intermediates: bool = False, return_embeddings: bool = False
    ) -> Tensor | SCRNetOutput:
        """x (B, in_channels, H, W) → logits (B, K, H, W); an `SCRNetOutput` when anything more is asked.

        `return_embeddings` runs the projection heads (training with a contrastive loss, analysis);
        `return_intermediates` also returns SRM offsets/masks, CRM attention and aux logits.
        """
        feats = self.backbone(x)
        top, crm = self.context(feats)
        levels = [top]
        srm: list[SRMIntermediates | None] = []
        for step, fine in zip(self.decoder, (feats[2], feats[1], feats[0])):
            p, inter = step(levels[-1], fine)
            levels.append(p)
            srm.append(inter)
        logits = self.head(levels[::-1])
        logits = F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)
        aux = self.aux_head(feats[2]) if self.aux_head is not None and (self.training or return_intermediates) else None
        if not (return_intermediates or return_embeddings or aux is not None):
            return logits
        out = SCRNetOutput(logits=logits, aux_logits=aux)
        if return_embeddings:
            out.embeddings = self.embed(feats)
        if return_intermediates:
            out.srm, out.crm = srm, crm
        return out

    def embed(self, feats: list[Tensor]) -> list[Tensor]:
        """Projection heads on [F1..F4] → [E1..E4], each L2-normalised (METHOD.md §2)."""
        return [head(f) for head, f in zip(self.projection_heads, feats)]
