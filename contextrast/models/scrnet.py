"""SCRNet: encoder → context module (CRM) → FPN decoder with SRMs → segmentation head (METHOD.md §1),
plus the four Contextrast projection heads on the encoder stages (METHOD.md §2)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from torch import Tensor, nn

from contextrast.config import ModelConfig
from contextrast.models.backbones import create_backbone
from contextrast.models.crm import CRMIntermediates
from contextrast.models.heads import AuxHead, ProjectionHead, SegmentationHead
from contextrast.models.intervention import Intervention
from contextrast.models.registry import ALIGNS, CONTEXTS
from contextrast.models.srm import SRMIntermediates
from contextrast.pixel_grid import upsample

ALL_LAYERS = (0, 1, 2, 3)


@dataclass
class SCRNetOutput:
    """Everything one forward returns.

    logits (B, K, H, W) at input size.  aux_logits (B, K, H/16, W/16) in training or with intermediates, else None.
    embeddings: [E1..E4], Ei (B, D, H/s_i, W/s_i), L2-normalised, None for a layer not asked for; or None.
    srm: per top-down step 1/32→1/16, 1/16→1/8, 1/8→1/4, an `SRMIntermediates` (None for bilinear).
    crm: `CRMIntermediates` for crm/crm_f4, else None.
    """

    logits: Tensor
    aux_logits: Tensor | None = None
    embeddings: list[Tensor | None] | None = None
    srm: list[SRMIntermediates | None] = field(default_factory=list)
    crm: CRMIntermediates | None = None


class SCRNet(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.backbone = create_backbone(config.backbone, config.in_channels)
        ch = tuple(self.backbone.channels)
        c = config.decoder_channels
        self.context = CONTEXTS.get(config.context)(ch, c, config)
        self.decoder = nn.ModuleList(ALIGNS.get(config.align)(c, ch[i], config) for i in (2, 1, 0))
        self.head = SegmentationHead(c, config.num_classes, grid=config.grid)
        self.aux_head = AuxHead(ch[2], config.num_classes) if config.aux_head else None
        self.projection_heads = nn.ModuleList(ProjectionHead(ci, config.embed_dim) for ci in ch)

    @property
    def num_classes(self) -> int:
        return self.config.num_classes

    def forward(
        self,
        x: Tensor,
        return_intermediates: bool = False,
        return_embeddings: bool | Sequence[int] = False,
        intervention: Intervention | None = None,
    ) -> SCRNetOutput:
        """x (B, in_channels, H, W) → `SCRNetOutput` (logits (B, K, H, W) and what else was asked for).

        `return_embeddings`: True for all four projection heads, or the layers (0..3) to run (the others stay
        None, so a loss that reads one layer trains only its head and DDP sees the rest as unused);
        `return_intermediates`: SRM offsets/masks, CRM attention and aux logits.
        `intervention`: parts switched off (`contextrast.models.intervention`), for analysis.
        """
        feats = self.backbone(x)
        top, crm = self.context(feats, intervention)
        levels = [top]
        srm: list[SRMIntermediates | None] = []
        for step, fine in zip(self.decoder, (feats[2], feats[1], feats[0])):
            p, inter = step(levels[-1], fine, intervention)
            levels.append(p)
            srm.append(inter)
        logits = upsample(self.head(levels[::-1]), tuple(x.shape[-2:]), self.config.grid)
        run_aux = self.aux_head is not None and (self.training or return_intermediates)
        out = SCRNetOutput(logits=logits, aux_logits=self.aux_head(feats[2]) if run_aux else None)
        layers = ALL_LAYERS if return_embeddings is True else tuple(return_embeddings or ())
        if layers:
            out.embeddings = self.embed(feats, layers)
        if return_intermediates:
            out.srm, out.crm = srm, crm
        return out

    def embed(self, feats: list[Tensor], layers: Sequence[int] = ALL_LAYERS) -> list[Tensor | None]:
        """Projection heads on [F1..F4] → [E1..E4], each L2-normalised (METHOD.md §2); None off `layers`."""
        return [head(f) if i in layers else None for i, (head, f) in enumerate(zip(self.projection_heads, feats))]
