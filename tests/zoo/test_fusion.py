"""BatchNorm folding: the folded model computes what the original did, or stays unfolded."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from livecam.engines.pytorch.engine import Engine, to_input
from livecam.sources import Frame
from livecam.zoo.analysis import probe_input
from livecam.zoo.fusion import fold_batchnorm, fold_scale_shift
from tests.conftest import random_torchvision


def _count(module: nn.Module, kind: type) -> int:
    return sum(isinstance(m, kind) for m in module.modules())


def _randomize_bn_stats(module: nn.Module, seed: int = 0) -> None:
    """Default BN statistics (mean 0, var 1) would hide a wrong fold."""
    gen = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.randn(m.num_features, generator=gen))
            m.running_var.copy_(torch.rand(m.num_features, generator=gen) + 0.5)
            m.weight.data.copy_(torch.randn(m.num_features, generator=gen))
            m.bias.data.copy_(torch.randn(m.num_features, generator=gen))


def test_scale_shift_is_the_eval_batchnorm() -> None:
    bn = nn.BatchNorm2d(4, eps=1e-3).eval()
    _randomize_bn_stats(bn)
    x = torch.randn(2, 4, 5, 5)
    s, t = fold_scale_shift(bn)
    assert torch.allclose(bn(x), x * s.view(1, -1, 1, 1) + t.view(1, -1, 1, 1), atol=1e-5)


def test_lite0_folds_every_pair_and_keeps_logits_and_target_activation(lite0, chelsea_bgr) -> None:
    module = copy.deepcopy(lite0.module)
    x = to_input(chelsea_bgr, lite0.preprocess)
    acts = []
    hook = lambda _m, _i, out: acts.append(out.detach().clone())  # noqa: E731
    h1 = lite0.module.get_submodule("_head_act").register_forward_hook(hook)
    with torch.no_grad():
        before = lite0.module(x)
    h1.remove()
    n = fold_batchnorm(module, probe_input(module, (224, 224)), "_head_act")
    assert n == 49 and _count(module, nn.BatchNorm2d) == 0
    h2 = module.get_submodule("_head_act").register_forward_hook(hook)
    with torch.no_grad():
        after = module(x)
    h2.remove()
    assert torch.allclose(after, before, rtol=1e-4, atol=1e-4)
    assert torch.allclose(acts[1], acts[0], rtol=1e-4, atol=1e-4)
    assert after.argmax() == before.argmax()


def test_resnet_folds_with_random_statistics() -> None:
    module = random_torchvision("resnet18")
    _randomize_bn_stats(module)
    ref = copy.deepcopy(module)
    x = torch.randn(2, 3, 64, 64)
    assert fold_batchnorm(module, x[:1], "layer4") == _count(ref, nn.BatchNorm2d) == 20
    with torch.no_grad():
        assert torch.allclose(module(x), ref(x), rtol=1e-4, atol=1e-4 * float(ref(x).abs().max()))


class ConvBnNet(nn.Module):
    """conv1 -> bn1 -> relu -> conv2 -> bn2, where conv2's output can also feed a skip."""

    def __init__(self, reuse: bool = False) -> None:
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.reuse = reuse
        self.fc = nn.Linear(8, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(torch.relu(self.bn1(self.conv1(x))))
        z = self.bn2(y) + (y if self.reuse else 0)
        return self.fc(z.mean((2, 3)))


def test_the_target_layer_pair_is_left_alone() -> None:
    module = ConvBnNet().eval()
    _randomize_bn_stats(module)
    assert fold_batchnorm(module, torch.randn(1, 3, 8, 8), "conv2") == 1
    assert isinstance(module.bn1, nn.Identity) and isinstance(module.bn2, nn.BatchNorm2d)
    module = ConvBnNet().eval()
    assert fold_batchnorm(module, torch.randn(1, 3, 8, 8), "bn1") == 1
    assert isinstance(module.bn1, nn.BatchNorm2d) and isinstance(module.bn2, nn.Identity)


def test_a_fold_that_changes_the_output_is_undone() -> None:
    module = ConvBnNet(reuse=True).eval()  # conv2's output also feeds the skip: folding bn2 would be wrong
    _randomize_bn_stats(module)
    x = torch.randn(1, 3, 8, 8)
    assert fold_batchnorm(module, x, "bn2") == 1  # bn2 is the target: only bn1 folds, and that is right...
    module = ConvBnNet(reuse=True).eval()
    _randomize_bn_stats(module)
    ref = copy.deepcopy(module)
    assert fold_batchnorm(module, x, "fc") == 0  # ...but folding bn2 too breaks the skip, so nothing folds
    assert isinstance(module.bn1, nn.BatchNorm2d) and isinstance(module.bn2, nn.BatchNorm2d)
    for (name, p), q in zip(module.named_parameters(), ref.parameters(), strict=True):
        assert torch.equal(p, q), name
    with torch.no_grad():
        assert torch.equal(module(x), ref(x))


def test_training_models_are_not_folded() -> None:
    module = ConvBnNet().train()
    assert fold_batchnorm(module, torch.randn(2, 3, 8, 8), "bn2") == 0


@pytest.mark.parametrize("method", ["gradcam", "layercam"])
def test_engine_with_and_without_folding_agree(lite0, coffee_bgr, method: str) -> None:
    frame = Frame(coffee_bgr, 0, 0.0)
    folded, plain = Engine(lite0, method), Engine(lite0, method, fold_bn=False)
    assert folded.folded == 49 and plain.folded == 0
    a, b = folded.process(frame).explanation, plain.process(frame).explanation
    assert torch.equal(a.classes, b.classes)
    assert torch.allclose(a.cams, b.cams, atol=1e-4)
    assert _count(lite0.module, nn.BatchNorm2d) == 49  # the caller's model is untouched
    folded.close()
    plain.close()


def test_densenet_pairs_only_what_feeds_each_batchnorm() -> None:
    """DenseNet's BatchNorms mostly take concatenations; only conv -> norm pairs may fold."""
    module = random_torchvision("densenet121")
    _randomize_bn_stats(module)
    ref = copy.deepcopy(module)
    x = torch.randn(1, 3, 64, 64)
    n = fold_batchnorm(module, x, "features")
    assert n == 59  # conv0 -> norm0, and conv1 -> norm2 in each of the 58 dense layers
    with torch.no_grad():
        assert torch.allclose(module(x), ref(x), rtol=1e-4, atol=1e-4 * float(ref(x).abs().max()))
