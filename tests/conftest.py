"""Shared fixtures: the real model, real photographs, small generated videos."""

from __future__ import annotations

import copy
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

CAT_CLASSES = {"tabby", "tiger cat", "Egyptian cat", "Persian cat", "Siamese cat"}


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Keep the demo clip and torch hub out of the user's cache folders."""
    mp = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("cache")
    mp.setenv("LIVECAM_CACHE_DIR", str(root / "livecam"))
    mp.setenv("TORCH_HOME", str(root / "torch"))
    mp.delenv("DISPLAY", raising=False)
    mp.delenv("WAYLAND_DISPLAY", raising=False)
    yield
    mp.undo()


@pytest.fixture(scope="session")
def lite0():
    import livecam

    return livecam.load_model("efficientnet_lite0")


def photo_bgr(name: str) -> np.ndarray:
    import skimage.data as data

    image = getattr(data, name)()
    if isinstance(image, tuple):
        image = image[0]
    return np.ascontiguousarray(image[..., ::-1])


@pytest.fixture(scope="session")
def chelsea_bgr() -> np.ndarray:
    return photo_bgr("chelsea")


@pytest.fixture(scope="session")
def coffee_bgr() -> np.ndarray:
    return photo_bgr("coffee")


def random_torchvision(name: str, seed: int = 0) -> torch.nn.Module:
    import torchvision

    torch.manual_seed(seed)
    return torchvision.models.get_model(name, weights=None).eval()


def random_batch(seed: int, n: int = 2, size: int = 224) -> torch.Tensor:
    """A fixed pseudo-random input batch (N, 3, size, size) for the reference tests."""
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def gradcam_reference(module: torch.nn.Module, layer: str, x: torch.Tensor, classes: torch.Tensor | None = None):
    """Grad-CAM from the paper's formula, in float64, written independently of livecam.

    alpha_k = mean_ij d y^c / d A^k_ij ; L = ReLU(sum_k alpha_k A^k). Returns (L, classes, A, logits).
    """
    ref = copy.deepcopy(module).double().eval()
    store = {}

    def hook(_m, _i, out):
        store["A"] = out
        return out.clone()  # an in-place op downstream must not change the stored A

    handle = ref.get_submodule(layer).register_forward_hook(hook)
    try:
        xd = x.double().requires_grad_(True)  # so that A is part of a graph
        logits = ref(xd)
    finally:
        handle.remove()
    if classes is None:
        classes = logits.argmax(1)
    score = logits[torch.arange(len(classes)), classes].sum()
    (grads,) = torch.autograd.grad(score, store["A"])
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    cam = F.relu((alpha * store["A"]).sum(1))
    return cam.detach(), classes, store["A"].detach(), logits.detach()


def normalize_reference(maps: torch.Tensor, size: tuple[int, int] | None = None) -> torch.Tensor:
    """Upsample (bilinear) and min-max normalize each map, in float64."""
    m = maps.double()
    if size is not None:
        m = F.interpolate(m[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    lo = m.amin(dim=(1, 2), keepdim=True)
    hi = m.amax(dim=(1, 2), keepdim=True)
    return (m - lo) / (hi - lo)


def relative_error(actual: torch.Tensor, reference: torch.Tensor) -> float:
    reference = reference.double()
    return float((actual.double() - reference).abs().max() / reference.abs().max().clamp_min(1e-30))


class InplaceHead(torch.nn.Module):
    """A target module followed by an in-place ReLU (as DenseNet does)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1),
                                            torch.nn.Conv2d(8, 6, 3, stride=2, padding=1))
        self.fc = torch.nn.Linear(6, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = F.relu(self.features(x), inplace=True)
        return self.fc(a.mean(dim=(2, 3)))


def make_video(path: Path, frames: list[np.ndarray], fps: float = 10.0) -> Path:
    from livecam.sinks import write_frames

    return write_frames(path, frames, fps)


def read_video(path: Path) -> tuple[list[np.ndarray], float]:
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"{path} does not open"
    fps = cap.get(cv2.CAP_PROP_FPS)
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(frame)
    cap.release()
    return frames, fps


def cat_on_background(cat: np.ndarray, canvas: tuple[int, int], top_left: tuple[int, int],
                      background: int = 127) -> np.ndarray:
    """Paste ``cat`` on a plain grey canvas (h, w) at (x, y)."""
    out = np.full((*canvas, 3), background, np.uint8)
    x, y = top_left
    out[y:y + cat.shape[0], x:x + cat.shape[1]] = cat
    return out


@pytest.fixture(scope="session")
def cat_video(tmp_path_factory: pytest.TempPathFactory, chelsea_bgr: np.ndarray) -> Path:
    """24 frames, 320x240: the cat moving across a grey background."""
    cat = cv2.resize(chelsea_bgr, (150, 100), interpolation=cv2.INTER_AREA)
    frames = [cat_on_background(cat, (240, 320), (7 * i, 20 + 4 * i)) for i in range(24)]
    return make_video(tmp_path_factory.mktemp("video") / "cat.mp4", frames, fps=12.0)


@pytest.fixture(scope="session")
def lite0_graph(tmp_path_factory: pytest.TempPathFactory, lite0) -> Path:
    """Lite0 and its Grad-CAM exported once (livecam export): runs start in a fraction of a second."""
    from livecam.export import export_explainer

    return export_explainer(lite0, tmp_path_factory.mktemp("graph") / "lite0.onnx")


def moving_photos(count: int, size: tuple[int, int] = (320, 240)) -> list[np.ndarray]:
    """``count`` frames (w, h) panning across real photographs, a new photograph every 20 frames."""
    names = ["chelsea", "coffee", "astronaut", "rocket"]
    w, h = size
    frames = []
    for i in range(count):
        photo = photo_bgr(names[(i // 20) % len(names)])
        scale = 1.25 * max(w / photo.shape[1], h / photo.shape[0])
        big = cv2.resize(photo, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        x = (i % 20) * (big.shape[1] - w) // 20
        frames.append(np.ascontiguousarray(big[:h, x:x + w]))
    return frames


@pytest.fixture(scope="session")
def long_video(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """120 frames, 320x240, 25 fps, of real photographs panning (Motion JPEG in AVI)."""
    return make_video(tmp_path_factory.mktemp("video") / "walk.avi", moving_photos(120), fps=25.0)
