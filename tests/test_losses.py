"""The training losses (METHOD.md §2): CE, pixel_contrast, CCL, Contextrast (CCL + BANE)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from contextrast.config import LossConfig
from contextrast.losses import LOSSES, LossOutput, build_loss
from contextrast.losses import ccl as ccl_module
from contextrast.losses.anchors import contextual_update
from contextrast.losses.pixel_contrast import hard_anchor_quota, supervised_contrast
from contextrast.losses.record import ANCHOR_SAMPLE, BANE_NEGATIVE, POSITIVE, RANDOM_NEGATIVE
from contextrast.models import SCRNetOutput, build_model
from contextrast.pixel_grid import upsample

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference_ccl import bane_keep_reference, reference_ccl  # noqa: E402

NO_CAPS = dict(max_positives=10**6, max_negatives=10**6)


def fake_output(b=2, k=4, h=32, w=48, d=8, seed=0, logits=None, aux=False) -> SCRNetOutput:
    """Random logits and four L2-normalised embedding maps at strides 4, 8, 16, 32 (leaf tensors)."""
    g = torch.Generator().manual_seed(seed)
    embs = [F.normalize(torch.randn(b, d, h // s, w // s, generator=g), dim=1).requires_grad_() for s in (4, 8, 16, 32)]
    if logits is None:
        logits = torch.randn(b, k, h, w, generator=g)
    aux_logits = torch.randn(b, k, h // 16, w // 16, generator=g) if aux else None
    return SCRNetOutput(logits=logits.requires_grad_(), aux_logits=aux_logits, embeddings=embs)


def blocky_target(b=2, k=4, h=32, w=48, block=8, seed=0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, k, (b, h // block, w // block), generator=g)
    y = y.repeat_interleave(block, 1).repeat_interleave(block, 2)
    y[:, :2] = 255
    return y


def finite_everywhere(out: LossOutput, model_out: SCRNetOutput) -> None:
    assert all(math.isfinite(v) for v in out.terms.values()), out.terms
    out.total.backward()
    for t in [model_out.logits, *model_out.embeddings]:
        assert t.grad is None or torch.isfinite(t.grad).all()


# --- registry and API ---------------------------------------------------------------------------------


def test_registry_and_needs_embeddings():
    assert LOSSES.names() == ["ccl", "ce", "contextrast", "pixel_contrast"]
    flags = {name: build_loss(LossConfig(name=name), 3).needs_embeddings for name in LOSSES.names()}
    assert flags == {"ccl": True, "ce": False, "contextrast": True, "pixel_contrast": True}
    assert build_loss({"name": "ccl"}, 3).negatives == "random"
    assert build_loss(LossConfig(negatives="bane"), 3).negatives == "bane"
    with pytest.raises(ValueError, match="contextrast"):
        build_loss({"name": "focal"}, 3)


def test_ce_accepts_plain_logits_and_aux_and_ignores_void():
    y = blocky_target()
    logits = torch.randn(2, 4, 32, 48)
    out = build_loss(LossConfig(name="ce"), 4)(SCRNetOutput(logits=logits), y)
    assert out.record is None and set(out.terms) == {"ce", "total"}
    assert out.terms["ce"] == pytest.approx(float(F.cross_entropy(logits, y, ignore_index=255)), rel=1e-5)
    mo = fake_output(aux=True)
    out = build_loss(LossConfig(name="ce", aux_weight=0.4), 4)(mo, y)
    aux_ref = F.cross_entropy(upsample(mo.aux_logits, (32, 48)), y, ignore_index=255)  # the network's pixel grid
    assert out.terms["aux"] == pytest.approx(float(aux_ref), rel=1e-5)
    assert out.terms["total"] == pytest.approx(out.terms["ce"] + 0.4 * out.terms["aux"], rel=1e-5)


def test_bad_calls_are_refused():
    loss = build_loss(LossConfig(), 4)
    mo = fake_output()
    with pytest.raises(ValueError, match="return_embeddings"):
        loss(SCRNetOutput(logits=mo.logits), blocky_target())
    with pytest.raises(ValueError, match="progress"):
        loss(mo, blocky_target(), progress=1.5)
    with pytest.raises(ValueError, match="target"):
        loss(mo, blocky_target()[0])
    with pytest.raises(ValueError, match="classes"):
        build_loss(LossConfig(), 5)(mo, blocky_target())


# --- CCL values ---------------------------------------------------------------------------------------


def test_hand_computed_info_nce_two_classes():
    """One image, 1×4 pixels at every layer: classes 0, 0, 1, 1; only layer 0 weighted (λ = 1, 0, 0, 0)."""
    tau, w_h = 0.1, 0.5
    cfg = LossConfig(name="ccl", tau=tau, w_h=w_h, layer_weights=(1.0, 0.0, 0.0, 0.0), alpha=1.0, **NO_CAPS)
    shallow = F.normalize(torch.tensor([[1.0, 0.2, 0.0], [0.8, -0.3, 0.1], [0.1, 1.0, 0.3], [-0.2, 0.7, 0.6]]), dim=1)
    deep = F.normalize(torch.tensor([[0.9, 0.0, 0.4], [0.7, 0.1, 0.5], [0.0, 0.6, -0.8], [0.2, 0.5, -0.5]]), dim=1)
    as_map = lambda z: z.T.reshape(1, 3, 1, 4).clone().requires_grad_()  # noqa: E731
    target = torch.tensor([[[0, 0, 1, 1]]])
    mo = SCRNetOutput(logits=torch.zeros(1, 2, 1, 4), embeddings=[as_map(shallow)] + [as_map(deep)] * 3)
    out = build_loss(cfg, 2)(mo, target)

    def anchor(c):
        a = (1 - w_h) * shallow[2 * c : 2 * c + 2].mean(0) + w_h * deep[2 * c : 2 * c + 2].mean(0)
        return a / a.norm()

    losses = []
    for c in (0, 1):
        a = anchor(c)
        pos = [float(shallow[i] @ a) / tau for i in range(2 * c, 2 * c + 2)]
        neg = [float(shallow[i] @ a) / tau for i in range(4) if i // 2 != c]
        losses.append(sum(-math.log(math.exp(p) / (math.exp(p) + sum(math.exp(q) for q in neg))) for p in pos) / 2)
    assert out.terms["ccl"] == pytest.approx(sum(losses) / 2, abs=1e-5)
    ce = float(F.cross_entropy(mo.logits, target))
    assert out.terms["total"] == pytest.approx(ce + out.terms["ccl"], abs=1e-5)


def test_loss_decreases_when_embeddings_move_toward_their_anchor():
    cfg = LossConfig(name="ccl", **NO_CAPS)
    y = blocky_target()
    mo = fake_output()
    loss = build_loss(cfg, 4)
    before = loss(mo, y, record=True)
    moved = []
    for i, e in enumerate(mo.embeddings):
        anchors = before.record.layers[i].anchors
        labels = before.record.layers[i].labels
        e = e.detach().clone()
        for c, a in anchors.items():
            m = labels == c
            e.permute(0, 2, 3, 1)[m] = F.normalize(e.permute(0, 2, 3, 1)[m] + 2.0 * a, dim=1)
        moved.append(e.requires_grad_())
    after = loss(SCRNetOutput(logits=mo.logits, embeddings=moved), y, record=True)
    assert after.terms["ccl"] < before.terms["ccl"] - 0.1
    for lb, la in zip(before.record.layers, after.record.layers):
        for c in lb.class_loss:
            assert la.class_loss[c] < lb.class_loss[c]


@pytest.mark.parametrize("negatives", ["random", "bane", "bane+random"])
def test_vectorised_matches_loop_reference(negatives):
    cfg = LossConfig(name="contextrast", negatives=negatives, bane_percent=40.0, bane_rule="percentile",
                     bane_distance_stride=0, **NO_CAPS)
    for seed in range(3):
        y = blocky_target(seed=seed)
        y[seed % 2, 10:14, 5:9] = 255
        mo = fake_output(seed=seed)
        out = build_loss(cfg, 4)(mo, y)
        ours = out.total - F.cross_entropy(mo.logits, y, ignore_index=255)
        grads = torch.autograd.grad(ours, mo.embeddings)
        ref_embs = [e.detach().clone().requires_grad_() for e in mo.embeddings]
        ref = cfg.alpha * reference_ccl(mo.logits.detach(), ref_embs, y, cfg, 4, negatives=negatives)
        ref_grads = torch.autograd.grad(ref, ref_embs, allow_unused=True)
        assert float(ours.detach()) == pytest.approx(float(ref.detach()), abs=1e-5)
        for a, b in zip(grads, ref_grads):
            torch.testing.assert_close(a, torch.zeros_like(a) if b is None else b, atol=1e-6, rtol=1e-4)


def test_contextual_update_touches_only_classes_present_at_the_deepest_layer():
    raw = F.normalize(torch.randn(3, 5), dim=1) * 0.7
    deep = torch.randn(3, 5)
    updated = contextual_update(raw, torch.tensor([True, True, True]), deep, torch.tensor([True, False, True]), 0.5)
    torch.testing.assert_close(updated[1], F.normalize(raw[1], dim=0))
    torch.testing.assert_close(updated[0], F.normalize(raw[0] + deep[0], dim=0))
    # end to end: class 2 is a single pixel at (4, 4), seen at layer 0 (stride 4) only
    y = torch.zeros(1, 64, 64, dtype=torch.long)
    y[0, 32:, :] = 1
    y[0, 4, 4] = 2
    mo = fake_output(b=1, k=3, h=64, w=64)
    rec = build_loss(LossConfig(**NO_CAPS), 3)(mo, y, record=True).record
    assert set(rec.layers[0].anchors) == {0, 1, 2} and set(rec.layers[3].anchors) == {0, 1}
    layer0, deepest = rec.layers[0], rec.layers[3]
    torch.testing.assert_close(layer0.anchors[2], F.normalize(layer0.anchors_raw[2], dim=0))
    for c in (0, 1):
        mixed = F.normalize(0.5 * layer0.anchors_raw[c] + 0.5 * deepest.anchors_raw[c], dim=0)
        torch.testing.assert_close(layer0.anchors[c], mixed)
        assert not torch.allclose(layer0.anchors[c], F.normalize(layer0.anchors_raw[c], dim=0))


# --- edge cases ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["ccl", "contextrast", "pixel_contrast"])
def test_no_nan_in_edge_cases(name):
    loss = build_loss(LossConfig(name=name, negatives="bane" if name == "contextrast" else "random"), 3)
    single = torch.ones(2, 32, 32, dtype=torch.long)
    finite_everywhere(loss(mo := fake_output(k=3, h=32, w=32), single), mo)
    one_layer = torch.zeros(2, 32, 32, dtype=torch.long)
    one_layer[0, 4, 4] = 2  # class 2 exists at layer 0 only
    finite_everywhere(loss(mo := fake_output(k=3, h=32, w=32), one_layer), mo)
    ignored = torch.full((2, 32, 32), 255)
    out = loss(mo := fake_output(k=3, h=32, w=32), ignored)
    assert out.terms["total"] == 0.0
    finite_everywhere(out, mo)
    y = blocky_target(k=3, h=32, w=32)
    perfect = F.one_hot(y.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 10
    finite_everywhere(loss(mo := fake_output(k=3, h=32, w=32, logits=perfect), y), mo)


def test_no_errors_means_bane_is_empty_and_random_fills():
    y = blocky_target(k=3, h=64, w=64)
    perfect = F.one_hot(y.clamp(max=2), 3).permute(0, 3, 1, 2).float() * 10
    mo = fake_output(k=3, h=64, w=64, logits=perfect)
    rec = build_loss(LossConfig(name="contextrast"), 3)(mo, y, record=True).record
    for layer in rec.layers:
        assert not (layer.error_distance > 0).any()
        if len(layer.anchors) < 2:
            continue
        neg = layer.samples.role != POSITIVE
        assert neg.any() and (layer.samples.role[neg] == RANDOM_NEGATIVE).all()


# --- record, sampling, determinism ----------------------------------------------------------------------


def test_record_roles_and_coordinates_are_consistent():
    cfg = LossConfig(name="contextrast", max_positives=20, max_negatives=30, bane_percent=50.0,
                     bane_rule="percentile", bane_distance_stride=0)  # the rule the loop reference implements
    y = blocky_target(k=4, h=64, w=64)
    mo = fake_output(k=4, h=64, w=64)
    out = build_loss(cfg, 4)(mo, y, record=True)
    assert out.record is not None and out.record.terms == out.terms and len(out.record.layers) == 4
    saw_bane = False
    for layer in out.record.layers:
        s = layer.samples
        lab = layer.labels[s.image, s.y, s.x]
        pos, bane, rnd = s.role == POSITIVE, s.role == BANE_NEGATIVE, s.role == RANDOM_NEGATIVE
        assert (pos | bane | rnd).all()
        assert (lab[pos] == s.cls[pos]).all()
        assert ((lab[~pos] != s.cls[~pos]) & (lab[~pos] != 255)).all()
        pred = layer.prediction[s.image, s.y, s.x]
        assert (pred[bane] == s.cls[bane]).all() and (layer.error_distance[s.image, s.y, s.x][bane] > 0).all()
        assert torch.isnan(s.distance[~bane]).all() and (s.distance[bane] > 0).all()
        for c in layer.anchors:
            assert int((pos & (s.cls == c)).sum()) <= 20 and int((~pos & (s.cls == c)).sum()) <= 30
            # BANE first: every kept BANE pixel of class c is used when there are fewer than K
            keep = torch.stack(
                [
                    torch.from_numpy(
                        bane_keep_reference(layer.prediction[b].numpy(), layer.labels[b].numpy(), c, 50)[0]
                    )
                    for b in range(layer.labels.shape[0])
                ]
            )
            n_keep, n_bane = int(keep.sum()), int((bane & (s.cls == c)).sum())
            assert n_bane == min(n_keep, 30)
            saw_bane |= n_bane > 0
        assert set(layer.class_loss) == set(layer.anchors)
    assert saw_bane


def test_record_false_does_no_record_work(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("record work done with record=False")

    monkeypatch.setattr(ccl_module.ContextualContrastiveLoss, "_samples", staticmethod(boom))
    monkeypatch.setattr(ccl_module.ContextualContrastiveLoss, "_record", staticmethod(boom))
    assert build_loss(LossConfig(), 4)(fake_output(), blocky_target()).record is None


def test_sampling_is_deterministic_per_seed_and_call():
    cfg = LossConfig(max_positives=5, max_negatives=7)
    y, mo = blocky_target(), fake_output()
    a, b = build_loss(cfg, 4), build_loss(cfg, 4)
    ra, rb = a(mo, y, record=True).record, b(mo, y, record=True).record
    for la, lb in zip(ra.layers, rb.layers):
        assert torch.equal(la.samples.x, lb.samples.x) and torch.equal(la.samples.image, lb.samples.image)
    second = a(mo, y, record=True).record  # next call, next draw
    assert not torch.equal(second.layers[0].samples.x, ra.layers[0].samples.x)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert a(mo, y, generator=g1).terms == b(mo, y, generator=g2).terms


def test_warmup_switches_the_contrastive_term_off():
    y, mo = blocky_target(), fake_output()
    loss = build_loss(LossConfig(contrast_start=0.2), 4)
    early = loss(mo, y, progress=0.1)
    assert early.terms["contextrast"] == 0.0 and early.terms["total"] == pytest.approx(early.terms["ce"])
    assert loss(SCRNetOutput(logits=mo.logits), y, progress=0.1).terms["contextrast"] == 0.0  # no embeddings needed yet
    late = loss(mo, y, progress=0.2)
    assert late.terms["contextrast"] > 0 and late.terms["total"] == pytest.approx(late.terms["ce"] + 0.1 * late.terms["contextrast"])


def test_mixed_precision_keeps_fp32():
    model = build_model({"num_classes": 4})
    model.train()
    y = blocky_target(h=64, w=64)
    loss = build_loss(LossConfig(), 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = loss(model(torch.randn(2, 3, 64, 64), return_embeddings=True), y)
    assert out.total.dtype == torch.float32 and all(math.isfinite(v) for v in out.terms.values())
    out.total.backward()


# --- pixel_contrast ---------------------------------------------------------------------------------------


def test_supervised_contrast_matches_a_loop():
    feats = F.normalize(torch.randn(6, 4), dim=1)
    labels = torch.tensor([0, 0, 1, 1, 1, 2])
    per_view, has_pos = supervised_contrast(feats, labels, 0.1)
    assert has_pos.tolist() == [True] * 5 + [False]
    s = (feats @ feats.T / 0.1).tolist()
    for i in range(5):
        neg = sum(math.exp(s[i][k]) for k in range(6) if labels[k] != labels[i])
        pos = [j for j in range(6) if j != i and labels[j] == labels[i]]
        ref = -sum(s[i][j] - math.log(math.exp(s[i][j]) + neg) for j in pos) / len(pos) * (0.1 / 0.07)
        assert float(per_view[i]) == pytest.approx(ref, rel=1e-5)


def test_hard_anchor_quota_matches_the_reference_if_chain():
    for n_view in (1, 4, 7, 100):
        for hard in range(0, 2 * n_view + 2):
            for easy in range(0, 2 * n_view + 2):
                if hard + easy < n_view:
                    continue  # the reference code never sees these units
                if hard >= n_view / 2 and easy >= n_view / 2:
                    ref = (n_view // 2, n_view - n_view // 2)
                elif hard >= n_view / 2:
                    ref = (n_view - easy, easy)
                else:
                    ref = (hard, n_view - hard)
                got = hard_anchor_quota(torch.tensor([hard]), torch.tensor([easy]), n_view)
                assert (int(got[0]), int(got[1])) == ref


def test_pixel_contrast_sampling_and_record():
    cfg = LossConfig(name="pixel_contrast", pc_max_anchors=24, pc_max_per_class=6)
    y = blocky_target(k=4, h=128, w=128, block=32)
    mo = fake_output(k=4, h=128, w=128)
    out = build_loss(cfg, 4)(mo, y, record=True)
    (layer,) = out.record.layers
    s = layer.samples
    assert layer.layer == LossConfig().pc_layer and len(s) > 0 and (s.role == ANCHOR_SAMPLE).all()
    assert (layer.labels[s.image, s.y, s.x] == s.cls).all()
    units = {(int(b), int(c)) for b, c in zip(s.image, s.cls)}
    n_view = min(6, 24 // len(units))
    for b, c in units:
        m = (s.image == b) & (s.cls == c)
        wrong = layer.prediction[s.image[m], s.y[m], s.x[m]] != c
        assert int(m.sum()) <= n_view
        n_hard_avail = int(((layer.labels[b] == c) & (layer.prediction[b] != c)).sum())
        assert int(wrong.sum()) == min(n_hard_avail, max(n_view // 2, n_view - int((~wrong).sum())))
    assert len(s) <= 24 and math.isfinite(out.terms["pixel_contrast"])
