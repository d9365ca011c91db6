"""Multi-class and detail views: --topk K --panels and --view guided, from the Explainer to the frame."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import livecam
from livecam.engines.pytorch.engine import Engine, downscale
from livecam.errors import LivecamError
from livecam.render import Label, detail_image, grid, panel_size, tile
from livecam.sources import Frame
from tests.conftest import TOL, gradcam_reference, photo_bgr, relative_error


class FlattenHead(nn.Module):
    """Not GAP -> Linear: the map is flattened into an MLP with a ReLU, so gradients need autograd."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 6, 3, stride=2, padding=1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(6 * 8 * 8, 16), nn.ReLU(), nn.Linear(16, 7))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


@pytest.mark.parametrize("method", ["gradcam", "gradcampp", "layercam", "hirescam", "eigencam"])
def test_topk_explains_k_classes_from_one_batched_backward(method: str) -> None:
    torch.manual_seed(0)
    model = FlattenHead().eval()
    x = torch.randn(3, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with livecam.Explainer(model, method, input_size=(16, 16)) as explainer:
        assert explainer._head_weight is None  # the batched backward path
        result = explainer(x, topk=4)
        assert result.cams.shape == (12, 16, 16)
        top = model(x).topk(4, dim=1).indices
        assert torch.equal(result.classes.view(3, 4), top)
        for j in range(4):
            single = explainer(x, classes=top[:, j])
            assert relative_error(result.raw.view(3, 4, 8, 8)[:, j], single.raw) < TOL
            assert torch.allclose(result.scores.view(3, 4)[:, j], single.scores)
    if method == "gradcam":  # and against the paper's formula in float64
        for j in range(4):
            ref, _, _, _ = gradcam_reference(model, "features", x, top[:, j])
            assert relative_error(result.raw.view(3, 4, 8, 8)[:, j], ref) < TOL


def test_topk_needs_one_backward_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model = FlattenHead().eval()
    calls = []
    real = torch.autograd.grad

    def counting(*args, **kwargs):
        calls.append(kwargs.get("is_grads_batched", False))
        return real(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", counting)
    with livecam.Explainer(model, "gradcam", input_size=(16, 16)) as explainer:
        explainer(torch.randn(2, 3, 16, 16), topk=5)
    assert calls == [True]


def test_render_helpers() -> None:
    assert grid(1) == (1, 1) and grid(2) == (1, 2) and grid(3) == (2, 2) and grid(5) == (2, 3)
    assert panel_size((640, 360), 2) == (320, 180) and panel_size((640, 360), 5) == (213, 120)
    a, b, c = (np.full((4, 6, 3), v, np.uint8) for v in (10, 20, 30))
    out = tile([a, b, c])
    assert out.shape == (8, 12, 3)
    assert (out[:4, :6] == 10).all() and (out[:4, 6:] == 20).all() and (out[4:, :6] == 30).all()
    assert (out[4:, 6:] == 0).all()
    detail = np.zeros((3, 5, 5), np.float32)
    detail[0, 2, 2] = 1.0  # a positive red gradient at the centre
    image = detail_image(detail, (10, 10))
    assert image.shape == (10, 10, 3) and image.dtype == np.uint8
    flat = detail_image(np.zeros((3, 5, 5), np.float32), (5, 5))
    assert (flat == 128).all()  # no gradient is mid-grey
    centre = detail_image(detail, (5, 5))[2, 2]
    assert centre[2] == 255 and centre[0] < 128  # red (BGR order) above grey, blue below


def test_engine_panels_show_each_class_with_its_own_map(lite0) -> None:
    frame = Frame(photo_bgr("astronaut")[:480, :512], 0, 0.0)
    engine = Engine(lite0, "gradcam", topk=3, panels=True)
    out = engine.process(frame)
    assert out.image.shape == (480, 512, 3)  # 2x2 grid of half-size panels, the fourth empty
    assert (out.image[240:, 256:] == 0).all() and out.image[:240, :256].mean() > 20
    explanation = out.explanation
    probs = torch.softmax(explanation.logits[0].float(), 0)
    assert torch.equal(explanation.classes, probs.topk(3).indices)
    small = downscale(frame.image, (256, 240))
    for j, (r, c) in enumerate([(0, 0), (0, 1), (1, 0)]):
        label = Label(f"{j + 1}. {lite0.class_names[int(explanation.classes[j])]}", float(explanation.scores[j]),
                      True)
        expected = engine.annotator.annotate(small, explanation.cams[j].numpy(), [label])
        assert np.array_equal(out.image[r * 240:(r + 1) * 240, c * 256:(c + 1) * 256], expected)
    assert not torch.equal(explanation.cams[0], explanation.cams[1])
    engine.close()


def test_engine_guided_view_puts_the_detail_beside_the_overlay(lite0) -> None:
    frame = Frame(photo_bgr("chelsea"), 0, 0.0)
    engine = Engine(lite0, "gradcam", view="guided")
    out = engine.process(frame)
    h, w = frame.image.shape[:2]
    assert out.image.shape == (h // 2, 2 * (w // 2), 3)
    with livecam.Explainer(lite0, "guidedgradcam") as explainer:
        ref = explainer(livecam.to_input(frame.image, lite0.preprocess))
    assert relative_error(out.explanation.detail, ref.detail) < 1e-4  # Guided Grad-CAM, as the method computes it
    right = out.image[:, w // 2:]
    assert abs(float(right[h // 4:, :].mean()) - 128) < 20  # mostly mid-grey: the guided image
    engine.close()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"panels": True, "view": "guided"}, "do not combine"),
    ({"panels": True, "target_class": 3}, "does not combine with class"),
    ({"view": "sideways"}, "unknown view"),
    ({"method": "guided", "renderer": "device"}, "opencv renderer"),
])
def test_engine_refuses_views_that_do_not_combine(lite0, kwargs: dict, message: str) -> None:
    with pytest.raises(LivecamError, match=message):
        Engine(lite0, **kwargs)


def test_panels_in_a_batch_match_one_frame_at_a_time(lite0) -> None:
    frames = [Frame(photo_bgr(name)[:360, :480], i, 0.0) for i, name in enumerate(("coffee", "rocket"))]
    engine = Engine(lite0, "gradcam", topk=2, panels=True)
    batch = engine.process_batch(frames)
    assert [out.index for out in batch] == [0, 2] and batch[0].explanation.cams.shape[0] == 4
    for out, frame in zip(batch, frames, strict=True):
        single = engine.process(frame)
        assert np.abs(out.image.astype(int) - single.image.astype(int)).max() <= 1
    engine.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_guided_panels_and_scorecam_on_gpu_match_the_cpu(lite0) -> None:
    """The methods outside the device step, on CUDA in fp32, against the same on the CPU."""
    gpu = livecam.load_model(device="cuda")
    x = livecam.to_input([photo_bgr("chelsea"), photo_bgr("coffee")], lite0.preprocess)
    for method, kwargs in [("guidedgradcam", {}), ("gradcam", {"topk": 3, "guided": True}),
                           ("scorecam", {})]:
        layer = "_blocks.15" if method == "scorecam" else None  # 320 channels keep it short
        with livecam.Explainer(lite0, method, layer=layer) as cpu_e, \
                livecam.Explainer(gpu, method, layer=layer) as gpu_e:
            a, b = cpu_e(x, **kwargs), gpu_e(x.cuda(), **kwargs)
        assert torch.equal(a.classes, b.classes.cpu()), method
        assert (a.cams - b.cams.cpu()).abs().max() < 1e-3, method
        if a.detail is not None:
            assert relative_error(b.detail.cpu(), a.detail) < 1e-3, method
    frame = Frame(photo_bgr("astronaut"), 0, 0.0)
    for kwargs in ({"panels": True, "topk": 3}, {"view": "guided"}):
        out = Engine(gpu, "gradcam", **kwargs).process(frame)  # fp16 by default; not the device step
        assert out.image.shape[1] == frame.image.shape[1] // 2 * 2 and out.explanation.cams.is_cuda
