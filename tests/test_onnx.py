"""The ONNX Runtime forward pass: same maps as PyTorch, exported once, used only where it can stand in."""

from __future__ import annotations

import logging

import pytest
import torch

import livecam
from livecam import onnx_export
from livecam.engine import Engine
from livecam.errors import LivecamError
from livecam.onnx_export import WithActivation, export_onnx, runtime_for
from livecam.sources import Frame
from tests.conftest import photo_bgr, relative_error


def test_the_cpu_default_is_onnx_runtime_and_gives_the_same_maps(lite0) -> None:
    onnx, torch_ = Engine(lite0, "gradcam"), Engine(lite0, "gradcam", backend="torch")
    assert onnx.backend == "onnx" and onnx.explainer.runtime is not None
    assert torch_.backend == "torch" and torch_.explainer.runtime is None
    for name in ("chelsea", "coffee", "astronaut", "rocket"):
        frame = Frame(photo_bgr(name), 0, 0.0)
        a, b = onnx.process(frame), torch_.process(frame)
        assert torch.equal(a.explanation.classes, b.explanation.classes)
        assert relative_error(a.explanation.logits, b.explanation.logits) < 1e-5
        assert (a.explanation.cams - b.explanation.cams).abs().max() < 1e-4
        assert abs(a.image.astype(int) - b.image.astype(int)).max() <= 2  # rounding of the blended pixels
    onnx.close(), torch_.close()


@pytest.mark.parametrize("method", ["cam", "eigencam", "layercam", "gradcampp"])
def test_every_runtime_method_matches_pytorch_in_a_batch(lite0, method: str) -> None:
    x = livecam.to_input([photo_bgr(n) for n in ("chelsea", "astronaut", "rocket")], lite0.preprocess)
    engine = Engine(lite0, method, channels_last=False, fold_bn=False)
    assert engine.backend == "onnx"
    fast = engine.explainer(x, upsample=False, topk=2)
    engine.explainer.runtime = None
    slow = engine.explainer(x, upsample=False, topk=2)
    assert torch.equal(fast.classes, slow.classes)
    assert relative_error(fast.raw, slow.raw) < 1e-4
    engine.close()


def test_the_export_returns_logits_and_the_untouched_activation(tmp_path) -> None:
    torch.manual_seed(0)
    from tests.test_cams import InplaceHead  # an in-place ReLU right after the target layer

    module = InplaceHead().eval()
    training_before = module.training
    runtime = runtime_for(module, "features", (32, 32))
    x = torch.randn(3, 3, 32, 32)
    logits, activation = runtime(x)
    with torch.no_grad():
        ref_logits, ref_activation = WithActivation(module, "features")(x)
    assert activation.shape == (3, 6, 16, 16) and (activation < 0).any()  # before the ReLU
    assert torch.allclose(activation, ref_activation, atol=1e-5) and torch.allclose(logits, ref_logits, atol=1e-5)
    assert module.training == training_before


def test_exports_are_cached_by_weights(lite0, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))
    calls = []
    real = onnx_export.export_onnx
    monkeypatch.setattr(onnx_export, "export_onnx", lambda *a, **k: calls.append(a) or real(*a, **k))
    Engine(lite0, "gradcam").close()
    Engine(lite0, "gradcam").close()  # the same weights and layer: no second export
    assert len(calls) == 1 and len(list((tmp_path / "onnx").glob("*.onnx"))) == 1
    # a gradient method at an earlier layer needs autograd (the head behind it is not GAP -> Linear) ...
    assert Engine(lite0, "gradcam", layer="_blocks.15").backend == "torch" and len(calls) == 1
    # ... a gradient-free one does not: another layer, another graph
    assert Engine(lite0, "eigencam", layer="_blocks.15").backend == "onnx"
    assert len(calls) == 2 and calls[-1][1] == "_blocks.15"


def test_pytorch_runs_what_onnx_runtime_cannot(lite0) -> None:
    assert Engine(lite0, "guided").backend == "torch"  # needs the input gradient
    assert Engine(lite0, "gradcam", precision="bf16").backend == "torch"
    for kwargs, message in [({"method": "scorecam"}, "second pass"), ({"precision": "bf16"}, "fp32 only")]:
        with pytest.raises(LivecamError, match=message):
            Engine(lite0, backend="onnx", **kwargs)


def test_a_failed_export_falls_back_to_pytorch(lite0, monkeypatch: pytest.MonkeyPatch, tmp_path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))

    def broken(*_args, **_kwargs):
        raise RuntimeError("unsupported operator")

    monkeypatch.setattr(onnx_export, "export_onnx", broken)
    with caplog.at_level(logging.WARNING):
        engine = Engine(lite0, "gradcam")
    assert engine.backend == "torch" and "could not be exported to ONNX" in caplog.text
    with pytest.raises(LivecamError, match="use --backend torch"):
        Engine(lite0, "gradcam", backend="onnx")
    assert not list(tmp_path.rglob("*.onnx"))


def test_export_writes_atomically(tmp_path, lite0) -> None:
    path = export_onnx(lite0.module, "_head_act", tmp_path / "lite0.onnx")
    assert path.stat().st_size > 1_000_000 and not list(tmp_path.glob(".*partial"))
