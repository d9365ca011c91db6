"""export_onnx: the model with its target activation as a second output, for users' own maps."""

from __future__ import annotations

import onnxruntime as ort
import torch

from livecam.export.activation import WithActivation, export_onnx


def test_the_export_returns_logits_and_the_untouched_activation(tmp_path) -> None:
    torch.manual_seed(0)
    from tests.conftest import InplaceHead  # an in-place ReLU right after the target layer

    module = InplaceHead().eval()
    path = export_onnx(module, "features", tmp_path / "head.onnx", (32, 32))
    assert not module.training and not list(tmp_path.glob(".*partial"))
    x = torch.randn(3, 3, 32, 32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits, activation = (torch.from_numpy(a) for a in session.run(["logits", "activation"], {"x": x.numpy()}))
    with torch.no_grad():
        ref_logits, ref_activation = WithActivation(module, "features")(x)
    assert activation.shape == (3, 6, 16, 16) and (activation < 0).any()  # before the ReLU
    assert torch.allclose(activation, ref_activation, atol=1e-5) and torch.allclose(logits, ref_logits, atol=1e-5)
