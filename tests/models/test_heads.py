import torch
from torch import nn

from paramcast.models.heads import DeviceModel, QAHead, StaticHead, per_sample_linear
from paramcast.types import HeadParams


def test_per_sample_linear_equals_loop():
    g = torch.Generator().manual_seed(0)
    x, w, b = torch.randn(5, 3, 8, generator=g), torch.randn(5, 11, 8, generator=g), torch.randn(5, 11, generator=g)
    loop = torch.stack([x[i] @ w[i].T + b[i] for i in range(5)])
    torch.testing.assert_close(per_sample_linear(x, w, b), loop)
    torch.testing.assert_close(per_sample_linear(x[:, 0], w, b), loop[:, 0])


def test_device_model_with_generated_params_equals_plain_linear():
    torch.manual_seed(0)
    static = StaticHead(16, 8)
    model = DeviceModel(static, 11)
    ref = nn.Linear(8, 11)
    model.apply_params(HeadParams("d", "m", "t", "v", weight=ref.weight.detach().clone(), bias=ref.bias.detach().clone()))
    feats = torch.randn(6, 4, 16)
    with torch.no_grad():
        expected = ref(static(feats.mean(1)))
        torch.testing.assert_close(model(feats), expected)
        # the same head passed per sample (one forward for many devices) gives the same answer
        w = ref.weight.expand(6, -1, -1)
        torch.testing.assert_close(model(feats, w, ref.bias.expand(6, -1)), expected)


def test_device_model_rejects_wrong_shapes():
    model = DeviceModel(StaticHead(16, 8), 11)
    bad = HeadParams("d", "m", "t", "v", weight=torch.zeros(10, 8), bias=torch.zeros(10))
    try:
        model.apply_params(bad)
    except ValueError as exc:
        assert "answer vocabulary" in str(exc)
    else:
        raise AssertionError("wrong head shape accepted")


def test_qa_head_pools_frames():
    head = QAHead(16, 5, 8)
    x = torch.randn(3, 4, 16)
    torch.testing.assert_close(head(x), head(x.mean(1)))
