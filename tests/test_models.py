"""SCRNet, SRM, CRM and backbones."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from contextrast.config import ModelConfig
from contextrast.models import ALIGNS, CONTEXTS, SCRNetOutput, build_model, create_backbone
from contextrast.models.crm import ChannelAttention, ContextualRefinementModule, SpatialAttention
from contextrast.models.srm import SemanticRefinementModule, neighbour_combine, warp

# torchvision's ResNet parameter/buffer naming, written out here so the test needs no torchvision.
RESNET18_KEYS_SAMPLE = [
    "conv1.weight", "bn1.weight", "bn1.bias", "bn1.running_mean", "bn1.running_var", "bn1.num_batches_tracked",
    "layer1.0.conv1.weight", "layer1.0.bn1.weight", "layer1.0.conv2.weight", "layer1.0.bn2.running_var",
    "layer1.1.conv2.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.weight",
    "layer2.0.downsample.1.running_mean", "layer3.1.bn2.bias", "layer4.0.downsample.0.weight", "layer4.1.conv2.weight",
]
RESNET18_SHAPES = {
    "conv1.weight": (64, 3, 7, 7),
    "layer1.0.conv1.weight": (64, 64, 3, 3),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer4.1.conv2.weight": (512, 512, 3, 3),
}
RESNET50_SHAPES = {
    "conv1.weight": (64, 3, 7, 7),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.conv3.weight": (256, 64, 1, 1),
    "layer1.0.downsample.0.weight": (256, 64, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer3.5.bn3.running_mean": (1024,),
    "layer4.2.conv3.weight": (2048, 512, 1, 1),
}


def _torchvision_resnet_key_count(blocks: tuple[int, ...], bottleneck: bool) -> int:
    """Number of state-dict entries torchvision's ResNet has, without fc (counted by hand)."""
    convs_per_block = 3 if bottleneck else 2
    per_bn = 5  # weight, bias, running_mean, running_var, num_batches_tracked
    n = 1 + per_bn  # stem conv1 + bn1
    for stage, count in enumerate(blocks):
        n += count * convs_per_block * (1 + per_bn)
        if stage > 0 or bottleneck:
            n += 1 + per_bn  # downsample conv + bn
    return n


@pytest.mark.parametrize("name,blocks,bottleneck,shapes", [
    ("resnet18", (2, 2, 2, 2), False, RESNET18_SHAPES),
    ("resnet50", (3, 4, 6, 3), True, RESNET50_SHAPES),
])
def test_backbone_state_dict_matches_torchvision_names(name, blocks, bottleneck, shapes):
    sd = create_backbone(name).state_dict()
    assert len(sd) == _torchvision_resnet_key_count(blocks, bottleneck)
    for key, shape in shapes.items():
        assert tuple(sd[key].shape) == shape, key
    if name == "resnet18":
        assert set(RESNET18_KEYS_SAMPLE) <= set(sd)
    assert not any(k.startswith("fc.") for k in sd)


@pytest.mark.parametrize("name", ["resnet18", "resnet50", "resnet18_light"])
def test_backbone_strides_and_channels(name):
    bb = create_backbone(name)
    feats = bb(torch.randn(1, 3, 64, 96))
    assert [f.shape[1] for f in feats] == list(bb.channels)
    assert [f.shape[-2:] for f in feats] == [(64 // s, 96 // s) for s in (4, 8, 16, 32)]


def test_timm_backbone_optional():
    timm = pytest.importorskip("timm")
    del timm
    bb = create_backbone("timm:resnet18")
    feats = bb(torch.randn(1, 3, 64, 64))
    assert [f.shape[-1] for f in feats] == [16, 8, 4, 2]


@pytest.mark.parametrize("align,context", list(itertools.product(ALIGNS.names(), CONTEXTS.names())))
def test_every_switch_shapes_and_gradients(align, context):
    torch.manual_seed(0)
    model = build_model({"align": align, "context": context, "aux_head": True, "num_classes": 5, "decoder_channels": 32, "embed_dim": 16})
    # Zero-initialised parameters (γ, the last offset conv, residual-branch BN scales) block
    # gradients at init; perturb them so this tests the wiring, not the initialisation.
    with torch.no_grad():
        for p in model.parameters():
            if p.abs().sum() == 0:
                p.add_(0.1 * torch.randn_like(p))
    x = torch.randn(2, 3, 64, 96)
    out = model(x, return_intermediates=True, return_embeddings=True)
    assert isinstance(out, SCRNetOutput)
    assert out.logits.shape == (2, 5, 64, 96)
    assert out.aux_logits.shape == (2, 5, 4, 6)
    assert [tuple(e.shape) for e in out.embeddings] == [(2, 16, 64 // s, 96 // s) for s in (4, 8, 16, 32)]
    for e in out.embeddings:
        torch.testing.assert_close(e.norm(dim=1), torch.ones_like(e[:, 0]))
    assert len(out.srm) == 3
    for inter, s in zip(out.srm, (16, 8, 4)):
        if align == "bilinear":
            assert inter is None
            continue
        assert inter.offset.shape == inter.offset_init.shape == (2, 2, 64 // s, 96 // s)
        assert (inter.mask is None) == (align == "srm_nomask")
    if context.startswith("crm"):
        n = 2 * 3
        assert out.crm.spatial_attn.shape == (2, n, n) and out.crm.grid == (2, 3)
        assert out.crm.channel_attn.shape == (2, 32, 32)
    else:
        assert out.crm is None
    loss = out.logits.square().mean() + out.aux_logits.square().mean() + sum(e.sum() for e in out.embeddings)
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all() or p.grad.abs().sum() == 0]
    assert not missing, missing


def test_plain_forward_returns_logits_only_in_eval():
    model = build_model({"num_classes": 3, "aux_head": True}).eval()
    out = model(torch.randn(1, 3, 64, 64))
    assert isinstance(out, SCRNetOutput) and out.logits.shape == (1, 3, 64, 64)
    assert out.aux_logits is None and out.embeddings is None and out.srm == [] and out.crm is None


def test_srm_with_zero_offsets_equals_bilinear_plus_fusion():
    torch.manual_seed(0)
    srm = SemanticRefinementModule(8, 6, "srm").eval()
    coarse, fine = torch.randn(2, 8, 5, 7), torch.randn(2, 6, 10, 14)
    out, inter = srm(coarse, fine)
    assert inter.offset.abs().max() == 0  # last offset conv is zero-initialised
    up = F.interpolate(coarse, size=(10, 14), mode="bilinear", align_corners=False)
    expected = srm.fuse(up + srm.lateral(fine))
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_warp_zero_offset_is_identity_and_constant_offset_shifts():
    img = torch.zeros(1, 1, 20, 30)
    img[0, 0, 8:12, 10:14] = 1.0  # a square
    torch.testing.assert_close(warp(img, torch.zeros(1, 2, 20, 30)), img, atol=1e-6, rtol=0)
    offset = torch.zeros(1, 2, 20, 30)
    offset[:, 0] = 3.0  # dx = +3: each output pixel samples 3 pixels to its right
    offset[:, 1] = -2.0  # dy = −2: and 2 pixels above
    shifted = warp(img, offset)
    expected = torch.zeros_like(img)
    expected[0, 0, 10:14, 7:11] = 1.0  # the square moves 3 left and 2 down
    torch.testing.assert_close(shifted, expected, atol=1e-5, rtol=0)


def test_softmax_mask_rows_sum_to_one_and_neighbour_combine():
    srm = SemanticRefinementModule(8, 6, "srm")
    _, inter = srm(torch.randn(1, 8, 4, 4), torch.randn(1, 6, 8, 8))
    torch.testing.assert_close(inter.mask.sum(dim=1), torch.ones(1, 8, 8))
    # Δ = Σ_k M_w(k) Δ′(p+k): a one-hot mask picking the right-hand neighbour shifts Δ′ left by one.
    d0 = torch.arange(2 * 3 * 4, dtype=torch.float).view(1, 2, 3, 4)
    weights = torch.zeros(1, 9, 3, 4)
    weights[:, 5] = 1.0  # k = (dy=0, dx=+1)
    combined = neighbour_combine(d0, weights)
    torch.testing.assert_close(combined[..., :-1], d0[..., 1:])
    assert combined[..., -1].abs().sum() == 0  # zero padding outside the image


def test_crm_attention_with_zero_gamma_is_identity():
    crm = ContextualRefinementModule((4, 8, 16, 32), 16).eval()
    x = torch.randn(2, 16, 3, 5)
    y, a_c, a_s = crm.attend(x)
    torch.testing.assert_close(y, x)
    torch.testing.assert_close(a_c.sum(-1), torch.ones(2, 16))
    torch.testing.assert_close(a_s.sum(-1), torch.ones(2, 15))
    assert a_c.shape == (2, 16, 16) and a_s.shape == (2, 15, 15)


def test_attention_blocks_change_input_when_gamma_nonzero():
    x = torch.randn(1, 16, 3, 5)
    for block in (ChannelAttention(), SpatialAttention(16)):
        with torch.no_grad():
            block.gamma.fill_(1.0)
        y, _ = block(x)
        assert not torch.allclose(y, x)


@pytest.mark.parametrize("bad,match", [
    ({"align": "deformable"}, "srm, srm_nomask, srm_sigmoid, bilinear"),
    ({"context": "aspp"}, "crm, crm_f4, ppm, none"),
    ({"backbone": "vgg16"}, "resnet18, resnet18_light, resnet50"),
    ({"num_classes": 0}, "num_classes"),
    ({"unknown_key": 1}, "unknown ModelConfig keys"),
])
def test_bad_config_names_allowed_values(bad, match):
    with pytest.raises(ValueError, match=match):
        build_model(bad)


def test_bad_input_channels_and_size():
    model = build_model({"num_classes": 3}).eval()
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        model(torch.randn(1, 4, 64, 64))
    with pytest.raises(ValueError, match="smaller than the network's stride 32"):
        model(torch.randn(1, 3, 16, 64))


def test_cost_report_counts_params_and_macs():
    from contextrast.models.cost import count_cost

    model = build_model(ModelConfig(num_classes=11))
    rep = count_cost(model, (64, 96))
    assert rep.params_total == sum(p.numel() for p in model.parameters())
    assert rep.params_inference < rep.params_total  # projection heads are training-only
    # the backbone stem alone: 7×7 conv, 3→32 channels on a 32×48 output grid
    assert rep.modules["backbone"][1] > 7 * 7 * 3 * 32 * 32 * 48 / 1e9
    assert rep.gmacs == pytest.approx(sum(g for _, g in rep.modules.values()), rel=1e-6)
    # MACs scale with the pixel count for a fully convolutional net (CRM's N×N term aside)
    rep2 = count_cost(model, (128, 192))
    assert 3.5 < rep2.gmacs / rep.gmacs < 4.5


def test_projection_normalize_matches_f_normalize_and_gradcheck():
    from contextrast.models.heads import _ChannelL2Normalize

    torch.manual_seed(0)
    z = torch.randn(2, 5, 3, 4, dtype=torch.double, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: _ChannelL2Normalize.apply(t, 1e-12), (z,))
    with torch.no_grad():
        z[0, :, 0, 0] = 0.0  # a zero vector: the norm is clamped to eps (not differentiable; match F.normalize)
    g = torch.randn(2, 5, 3, 4, dtype=torch.double)
    ours = torch.autograd.grad(_ChannelL2Normalize.apply(z, 1e-12), z, g)[0]
    ref = torch.autograd.grad(F.normalize(z, dim=1), z, g)[0]
    torch.testing.assert_close(_ChannelL2Normalize.apply(z, 1e-12), F.normalize(z, dim=1))
    torch.testing.assert_close(ours, ref)


@pytest.mark.parametrize("energy,stable", [("mean", True), ("none", False)])
def test_channel_attention_entropy_is_stable_across_input_sizes(energy, stable):
    """Rows of A_c at a 256² crop's F4 (8×8) and at 360×480's (12×15) on the same feature statistics."""
    torch.manual_seed(0)
    attention = ChannelAttention(energy)
    entropies = []
    for h, w in ((8, 8), (12, 15)):
        x = torch.relu(torch.randn(4, 64, h, w))
        _, attn = attention(x)
        entropies.append(float(-(attn * attn.clamp_min(1e-12).log()).sum(-1).mean()))
    ratio = entropies[1] / entropies[0]
    assert (abs(ratio - 1) <= 0.2) == stable, entropies
    if stable:
        assert entropies[0] > 0.5  # rows are not one-hot


def test_srm_offsets_are_bounded_and_the_mask_starts_at_the_centre():
    srm = SemanticRefinementModule(8, 6, "srm", offset_bound=2.0, mask_init="centre").eval()
    with torch.no_grad():
        srm.offset_head[-1].bias.fill_(50.0)  # a head that asks for a huge shift
        _, inter = srm(torch.randn(1, 8, 5, 7), torch.randn(1, 6, 10, 14))
    assert inter.offset_init.abs().max() <= 2.0
    assert torch.allclose(inter.mask[:, 4], torch.full_like(inter.mask[:, 4], 0.5))


def test_old_model_cards_load_with_the_switches_they_were_trained_with():
    from contextrast.config import LEGACY_MODEL, model_config_from_card

    cfg = model_config_from_card({"backbone": "resnet18_light", "num_classes": 3})
    assert all(getattr(cfg, k) == v for k, v in LEGACY_MODEL.items())
    assert model_config_from_card({"num_classes": 3, "grid": "strided"}).offset_bound == ModelConfig().offset_bound


def test_folding_batch_norm_into_the_convolutions_keeps_the_output():
    from contextrast.models.fusion import fold_batch_norms

    torch.manual_seed(0)
    model = build_model({"num_classes": 5, "decoder_channels": 16})
    model.train()
    for _ in range(3):  # running statistics that differ from the initial 0 / 1
        model(torch.randn(2, 3, 64, 96))
    model.eval()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batch_norms(build_model({"num_classes": 5, "decoder_channels": 16}).train())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        before = model(x).logits
        folded = fold_batch_norms(model)
        after = model(x).logits
    assert folded > 20 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert torch.allclose(before, after, atol=1e-4)
