"""The fusion equations on known tensors."""

from __future__ import annotations

import torch

from mscmt_cli.labels import LABELS
from plugins.fusions import AdditiveFusion, GatedFusion, NoFusion


def _set(linear: torch.nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
    with torch.no_grad():
        linear.weight.copy_(weight)
        linear.bias.copy_(bias)


def test_gated_fusion_equations():
    fusion = GatedFusion(text_dim=2, image_dim=3)
    _set(fusion.proj, torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, 0.0]]), torch.tensor([0.0, 1.0]))  # W_p
    _set(fusion.gate, torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]]), torch.tensor([0.0, -1.0]))  # W_g, b_g
    h = torch.tensor([[[0.5, -1.0], [2.0, 3.0]]])  # (B=1, T=2, H=2)
    v = torch.tensor([[[1.0, 1.0, 5.0]]])  # (B=1, N=1, D=3)
    out = fusion(h, v)
    v_proj = torch.tensor([1.0, 3.0])  # W_p v + b
    for i in range(2):
        g = torch.sigmoid(torch.tensor([h[0, i, 0], v_proj[1] - 1.0]))  # rows of W_g pick h_i[0] and v_proj[1]
        assert torch.allclose(out.gate[0, i], g)
        assert torch.allclose(out.fused[0, i], torch.cat([h[0, i], g * v_proj]))
    assert out.fused.shape == (1, 2, 4) and fusion.output_dim == 4


def test_gate_closed_removes_image():
    fusion = GatedFusion(text_dim=4, image_dim=6)
    _set(fusion.gate, torch.zeros(4, 8), torch.full((4,), -1e4))
    out = fusion(torch.randn(2, 5, 4), torch.randn(2, 1, 6))
    assert torch.all(out.fused[..., 4:] == 0)


def test_additive_and_none():
    add = AdditiveFusion(text_dim=2, image_dim=1)
    _set(add.proj, torch.tensor([[1.0], [-1.0]]), torch.zeros(2))
    h = torch.ones(1, 3, 2)
    out = add(h, torch.tensor([[[2.0]]]))
    assert torch.allclose(out.fused, torch.tensor([3.0, -1.0]).expand(1, 3, 2)) and out.gate is None
    none = NoFusion(text_dim=2, image_dim=0)
    assert torch.equal(none(h, None).fused, h) and none.output_dim == 2


def test_slow_parameter_groups_follow_the_paper(tiny):
    """Encoder and W_p at lr; gate, classifier and CRF at head_lr."""
    from mscmt_cli.model.mner import MNERModel
    from plugins.decoders import CRFDecoder
    from plugins.text_encoders import BertweetEncoder

    model = MNERModel(BertweetEncoder(str(tiny.bertweet)), GatedFusion(32, 24), CRFDecoder(LABELS), 9)
    groups = model.parameter_groups(lr=1.0, head_lr=2.0, weight_decay=0.1)
    by_id = {id(p): g["lr"] for g in groups for p in g["params"]}
    assert by_id[id(model.fusion.proj.weight)] == 1.0
    assert by_id[id(model.fusion.gate.weight)] == 2.0
    assert by_id[id(model.classifier.weight)] == 2.0
    assert by_id[id(model.decoder.crf.transitions)] == 2.0
    assert all(by_id[id(p)] == 1.0 for p in model.text.parameters() if p.requires_grad)
    assert len(by_id) == sum(1 for p in model.parameters() if p.requires_grad)
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert frozen and all(".pooler." in n for n in frozen), "only the unused pooler is frozen (and left out of AdamW)"
