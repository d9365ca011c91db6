"""Shared fixtures: the real model, real photographs, small generated videos."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
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


# --- livecam annotate: an archive of clips, the command, its outputs and manifest; videos with their index drawn in

ARCHIVE_CLIP_SIZE = (160, 120)
ARCHIVE_CLIPS = {"cat.mp4": ("chelsea", 12), "day1/coffee.avi": ("coffee", 16),
                 "day1/deep/astronaut.mp4": ("astronaut", 14)}
ARCHIVE_BROKEN = "day2/broken.mp4"
ARCHIVE_OUTPUTS = {"cat.mp4": 12, "day1/coffee.mp4": 16, "day1/deep/astronaut.mp4": 14}  # what annotating it gives


def panned(photo: str, count: int) -> list[np.ndarray]:
    image = cv2.resize(photo_bgr(photo), ARCHIVE_CLIP_SIZE, interpolation=cv2.INTER_AREA)
    return [np.roll(image, 3 * i, axis=1) for i in range(count)]


def clip_archive(root: Path, clips: dict[str, tuple[str, int]] = ARCHIVE_CLIPS, broken: bool = True) -> Path:
    """A folder of real clips in subfolders (``clips``: name -> photograph, frames), and a file that is no video."""
    for name, (photo, count) in clips.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        make_video(root / name, panned(photo, count), fps=10.0)
    if broken:
        (root / ARCHIVE_BROKEN).parent.mkdir(parents=True, exist_ok=True)
        (root / ARCHIVE_BROKEN).write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    return root


def annotate_cli(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``livecam annotate ARGS`` in a subprocess."""
    return subprocess.run([sys.executable, "-m", "livecam", "annotate", *map(str, args)], capture_output=True,
                          text=True, timeout=timeout)


def as_the_cli_says(exc: Exception) -> str:
    """An error as the CLI renders it (what it passes as ``describe``): each setting named by its flag."""
    from livecam.cli import flag
    from livecam.errors import LivecamError

    return exc.render(flag) if isinstance(exc, LivecamError) else str(exc)


def manifest_lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]


def latest_lines(out: Path) -> dict[str, dict]:
    """The latest manifest line per input, by the input's file name."""
    return {Path(r["input"]).name: r for r in manifest_lines(out)}


def outputs_of(out: Path) -> dict[str, int]:
    """Every file under out but the manifest (hidden ones too), with its decoded frame count."""
    return {str(p.relative_to(out)): len(read_video(p)[0]) for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "manifest.jsonl"}


ENCODED_FPS = 25
INDEX_BITS = 10  # frame indices up to 1023


def encode_video(path: Path, frames: list[np.ndarray], codec: str = "libx264", options: dict | None = None) -> Path:
    """Write ``frames`` with PyAV as a camera or an editor would: H.264 with B-frames, or Motion JPEG."""
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=ENCODED_FPS)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        if options:
            stream.codec_context.options = options
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="bgr24")
            frame.pts = i
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    return path


def draw_index(image: np.ndarray, index: int) -> np.ndarray:
    """The index in the bottom strip, one bit per pair of blocks: white|black is 1, black|white is 0."""
    out = image.copy()
    width = out.shape[1] // INDEX_BITS
    for bit in range(INDEX_BITS):
        one = (index >> bit) & 1
        left, right = (255, 0) if one else (0, 255)
        x = bit * width
        out[-40:, x:x + width // 2] = left
        out[-40:, x + width // 2:x + width] = right
    return out


def read_index(image: np.ndarray) -> int:
    """The drawn index, read back through the heatmap blended over it and the encoding (pairs compared)."""
    width = image.shape[1] // INDEX_BITS
    strip = image[-34:-6].astype(np.float32).mean(axis=2)
    index = 0
    for bit in range(INDEX_BITS):
        x = bit * width
        left = strip[:, x + 3:x + width // 2 - 3].mean()
        right = strip[:, x + width // 2 + 3:x + width - 3].mean()
        index |= int(left > right) << bit
    return index


def index_video(path: Path, count: int) -> Path:
    """Real photographs panning, each frame's index drawn in; H.264 with B-frames, a keyframe every second."""
    return encode_video(path, [draw_index(image, i) for i, image in enumerate(moving_photos(count, (320, 240)))],
                        options={"bf": "2", "g": str(ENCODED_FPS)})
