"""The explanation inside one ONNX graph: ONNX Runtime alone gives the PyTorch path's logits, classes and maps.

Each export takes 4 to 8 s on this 2-core machine (the exporter traces and
decomposes the whole model), and this file needs about twenty. The ones that
the parity tests read are made once per module, by two worker processes
started at the top of the module, while the tests that need no export (or
export in this process) run; a test waits only for the file it reads.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import time
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from click.testing import CliRunner
from torch import nn

import livecam
from livecam.cams import Capture
from livecam.cams.activation import EigenCAM, eigen_maps_power
from livecam.cli import main
from livecam.sources.demo import demo_frames
from livecam.engines.pytorch.device_step import preprocess_frames
from livecam.errors import LivecamError
from livecam.export import CLOSED_FORM, exportable, export_explainer
from livecam.zoo import LoadedModel, Preprocess, inspect_model
from tests.conftest import pearson, photo_bgr, random_torchvision, relative_error

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")
OUTPUTS = ["logits", "classes", "scores", "cams"]
pytestmark = pytest.mark.usefixtures("one_torch_thread")  # two export workers and this process share two cores


# --- the exports the parity tests read, made by worker processes --------------------------------------------------

@dataclass(frozen=True)
class Spec:
    model: str  # "lite0" or a torchvision name, built with random weights from seed 0
    method: str  # the graph's own: its cams output
    kwargs: dict = field(default_factory=dict, hash=False)
    also: tuple[str, ...] = ()  # more methods in the same graph, each its own cams_<method> output


SPECS = {
    # the real model, every exportable method, the options spread over them
    "lite0-gradcam-top3": Spec("lite0", "gradcam", {"topk": 3}),
    "lite0-cam": Spec("lite0", "cam"),
    "lite0-hirescam-top2": Spec("lite0", "hirescam", {"topk": 2}),
    "lite0-xgradcam-mug": Spec("lite0", "xgradcam", {"target_class": 504}),  # coffee mug, for every image
    "lite0-gradcampp": Spec("lite0", "gradcampp"),
    "lite0-layercam": Spec("lite0", "layercam"),
    "lite0-eigencam-top2": Spec("lite0", "eigencam", {"topk": 2}),
    "lite0-gradcam-fp16-top2": Spec("lite0", "gradcam", {"topk": 2, "precision": "fp16"}),
    "lite0-gradcam-frames": Spec("lite0", "gradcam", {"from_frames": True}),
    "lite0-counterfactual-top3": Spec("lite0", "counterfactual", {"topk": 3}, also=("gradcam", "eigencam")),
    "lite0-finercam-top2": Spec("lite0", "finercam", {"topk": 2}),
    # seeded random torchvision models (resnet18 gradcam at 160x192 is exported in this process, below)
    "resnet18-cam-fp16-top2": Spec("resnet18", "cam", {"topk": 2, "precision": "fp16"}),
    "resnet50-gradcam-top3": Spec("resnet50", "gradcam", {"topk": 3}),
    "resnet18-counterfactual-top2": Spec("resnet18", "counterfactual", {"topk": 2}),
    # (not fp16: a random MobileNetV2's logits are about 1e-9, below fp16's smallest number)
    "mobilenet_v2-cam-top2": Spec("mobilenet_v2", "cam", {"topk": 2}),
    "mobilenet_v3_small-eigencam": Spec("mobilenet_v3_small", "eigencam"),  # not a GAP -> Linear head
}


def as_loaded(name: str, module: nn.Module, size: tuple[int, int] = (224, 224)) -> LoadedModel:
    """A LoadedModel around a module, as load_model would build it."""
    module.eval().requires_grad_(False)
    info = inspect_model(module, size)
    return LoadedModel(name, module, Preprocess(size), [f"class {i}" for i in range(info.num_classes)], info,
                       torch.device("cpu"), "untrained (random, seed 0)")


@functools.cache
def build_model(key: str) -> LoadedModel:
    return livecam.load_model("efficientnet_lite0") if key == "lite0" else as_loaded(key, random_torchvision(key, 0))


def _export_job(spec_id: str, folder: str) -> tuple[str, float]:
    """In a worker: export one spec; its path and the seconds the export took."""
    torch.set_num_threads(1)
    spec = SPECS[spec_id]
    model = build_model(spec.model)
    start = time.perf_counter()
    path = export_explainer(model, Path(folder) / f"{spec_id}.onnx", ",".join((spec.method, *spec.also)),
                            **spec.kwargs)
    return str(path), time.perf_counter() - start


@pytest.fixture(scope="module", autouse=True)
def exports(tmp_path_factory: pytest.TempPathFactory):
    """Start every export at once, on two worker processes; tests wait for the ones they read."""
    folder = tmp_path_factory.mktemp("exports")
    pool = ProcessPoolExecutor(max_workers=2, mp_context=multiprocessing.get_context("spawn"))
    # the slowest first, so that the two workers finish together
    order = sorted(SPECS, key=lambda s: (SPECS[s].model == "lite0", SPECS[s].model == "resnet18"))
    futures = {spec_id: pool.submit(_export_job, spec_id, str(folder)) for spec_id in order}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)
    done = {s: f.result()[1] for s, f in futures.items() if f.done() and not f.cancelled() and not f.exception()}
    print("\nexport seconds (in a worker):", ", ".join(f"{s} {t:.1f}" for s, t in done.items()))


def exported(exports: dict[str, Future], spec_id: str) -> Path:
    path, _seconds = exports[spec_id].result()
    return Path(path)


@functools.cache
def session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run(path_or_session, array: np.ndarray | torch.Tensor) -> list[np.ndarray]:
    sess = path_or_session if isinstance(path_or_session, ort.InferenceSession) else session(Path(path_or_session))
    array = array.numpy() if isinstance(array, torch.Tensor) else array
    return sess.run(OUTPUTS, {sess.get_inputs()[0].name: np.ascontiguousarray(array)})


@functools.cache
def clip_frames() -> tuple[np.ndarray, ...]:
    """12 frames spread over the built-in demo clip (360x640)."""
    return tuple(f for i, f in enumerate(demo_frames()) if i % 28 == 0)


@functools.cache
def photos_input(size: tuple[int, int] = (224, 224)) -> torch.Tensor:
    return livecam.to_input([photo_bgr(n) for n in PHOTOS], Preprocess(size))


# --- parity: ONNX Runtime against livecam's PyTorch explainer -------------------------------------------------------

def check_parity(path: Path, module_or_model, method: str, x: torch.Tensor, fp16: bool = False,
                 allow_ties: bool = False, target_class: int | None = None, input_size=(224, 224)) -> dict:
    """Run the file on ``x`` and compare every output with ``livecam.Explainer`` in fp32, map by map."""
    logits, classes, scores, cams = run(path, x)
    n, k = classes.shape
    assert logits.dtype == np.float32 and classes.dtype == np.int64 and scores.dtype == np.float32
    assert cams.dtype == np.float32 and cams.shape[:2] == (n, k)
    assert np.isfinite(cams).all() and cams.min() >= 0.0 and cams.max() <= 1.0
    with livecam.Explainer(module_or_model, method, input_size=input_size) as explainer:
        if target_class is None:
            ref = explainer(x, upsample=False, topk=k)
        else:
            ref = explainer(x, classes=target_class, upsample=False)
        ref_logits = ref.logits[::k]
        ref_classes = ref.classes.reshape(n, k).numpy()
        logit_error = relative_error(torch.from_numpy(logits), ref_logits)
        assert logit_error < (1e-2 if fp16 else 1e-4), logit_error
        probs = torch.softmax(ref_logits.double(), dim=1).numpy()
        swaps = 0
        if not np.array_equal(classes, ref_classes):
            # fp16 on a random model: near-equal probabilities may come out in the other order; allow a
            # swap only where the fp32 probabilities differ by less than twice fp16's error on that sample
            assert allow_ties, (classes, ref_classes)
            error = np.abs(torch.softmax(torch.from_numpy(logits).double(), 1).numpy() - probs).max(axis=1)
            for i, j in zip(*np.nonzero(classes != ref_classes), strict=True):
                gap = abs(probs[i, classes[i, j]] - probs[i, ref_classes[i, j]])
                assert gap < 2 * error[i], (i, j, gap, error[i])
                swaps += 1
        assert np.abs(scores - np.take_along_axis(probs, classes, 1)).max() < (1e-2 if fp16 else 1e-5)
        # every (sample, class) map against the PyTorch explanation of that class
        map_error = 0.0
        for j in range(k):
            per_class = explainer(x, classes=torch.from_numpy(classes[:, j]), upsample=False)
            map_error = max(map_error, float(np.abs(cams[:, j] - per_class.cams.numpy()).max()))
            if not fp16:
                assert np.abs(cams[:, j] - ref.cams.reshape(n, k, *cams.shape[2:])[:, j].numpy()).max() < 1e-4
    # fp16: the network's own rounding, against the fp32 maps; the largest seen on the real model is 0.0103
    # (astronaut's second class), within the 0.02 that the fp16 device step keeps on real photographs
    assert map_error < (2e-2 if fp16 else 1e-4), map_error
    return {"logits": logit_error, "maps": map_error, "swaps": swaps, "classes": classes}


# in-process tests first: the workers export meanwhile

def test_the_callers_module_is_unchanged_and_resnet18_gradcam_matches(tmp_path: Path) -> None:
    module = random_torchvision("resnet18", 0)
    model = as_loaded("resnet18", module)
    before = {name: t.clone() for name, t in module.state_dict().items()}
    hooks = {name: len(m._forward_hooks) for name, m in module.named_modules()}
    path = export_explainer(model, tmp_path / "resnet18.onnx", "gradcam", input_size=(160, 192))
    assert not module.training and all(not p.requires_grad for p in module.parameters())
    assert all(torch.equal(t, before[name]) for name, t in module.state_dict().items())
    assert {name: len(m._forward_hooks) for name, m in module.named_modules()} == hooks
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in module.parameters())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["resnet18.onnx"]  # no partial file left
    meta = session(path).get_modelmeta().custom_metadata_map
    assert json.loads(meta["input_size"]) == [160, 192] and json.loads(meta["feature_size"]) == [5, 6]
    result = check_parity(path, module, "gradcam", photos_input((160, 192)), input_size=(160, 192))
    print(f"resnet18-gradcam-160x192: logits rel. error {result['logits']:.2e}, maps abs. error {result['maps']:.2e}")


class Tiny(nn.Module):
    """A 3x3 convolution without padding and a GAP -> Linear head: a constant image gives a flat activation."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)
        with torch.no_grad():
            self.features[0].bias.fill_(-0.5)  # a zero image: every activation is ReLU(-0.5) = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


@pytest.mark.parametrize("method", ["gradcam", "eigencam"])
def test_a_flat_map_is_all_zeros_not_nan(method: str, tmp_path: Path) -> None:
    model = as_loaded("tiny", Tiny(), (16, 16))
    path = export_explainer(model, tmp_path / "tiny.onnx", method, topk=2)
    sess = session(path)
    zeros, constant = np.zeros((2, 3, 16, 16), np.float32), np.full((2, 3, 16, 16), 4.0, np.float32)
    varied = np.random.default_rng(0).normal(size=(2, 3, 16, 16)).astype(np.float32)
    acts = model.module.features(torch.from_numpy(np.concatenate([zeros, constant])))
    assert not acts[:2].any()  # the zero image: an all-zero activation
    assert acts[2:].any() and torch.equal(acts[2:], acts[2:, :, :1, :1].expand_as(acts[2:]))  # flat, not zero
    for flat in (zeros, constant):
        cams = run(sess, flat)[3]
        assert cams.shape == (2, 2, 14, 14) and np.isfinite(cams).all() and not cams.any()
    cams = run(sess, varied)[3]
    assert np.isfinite(cams).all() and np.allclose(cams.max(axis=(2, 3)), 1) and np.allclose(cams.min(axis=(2, 3)), 0)


def test_eigen_power_iteration_matches_the_svd_on_real_and_random_activations(lite0) -> None:
    """The exportable Eigen-CAM against livecam's SVD one: r >= 0.999, with the same sign, map by map."""
    store = {}
    handle = lite0.module.get_submodule(lite0.target_layer).register_forward_hook(
        lambda _m, _i, out: store.__setitem__("A", out.clone()))
    frames = [photo_bgr(n) for n in PHOTOS]
    frames += clip_frames()
    with torch.no_grad():
        lite0.module(livecam.to_input(frames, lite0.preprocess))
    handle.remove()
    generator = torch.Generator().manual_seed(0)
    cases = {"lite0": store["A"]}
    for shape in [(6, 1280, 7, 7), (6, 64, 14, 14), (6, 16, 12, 12), (6, 3, 5, 5)]:  # hw < K, hw > K
        gauss = torch.randn(*shape, generator=generator)
        cases[f"gauss{shape}"], cases[f"relu{shape}"] = gauss, gauss.relu()
    svd = EigenCAM(None)
    worst = 1.0
    for name, acts in cases.items():
        ref = svd.compute(Capture(acts, torch.zeros(len(acts), 2), torch.zeros(len(acts), dtype=torch.long)))
        r = pearson(eigen_maps_power(acts), ref)
        assert r.min() >= 0.999, (name, r)
        worst = min(worst, float(r.min()))
    print(f"eigen power vs SVD: min r {worst:.9f} over {sum(len(a) for a in cases.values())} maps")


@pytest.fixture(scope="module")
def small_heads() -> dict[str, tuple]:
    return {name: inspect_model(random_torchvision(name, 0), (224, 224))
            for name in ("mobilenet_v3_small", "convnext_tiny")}


@pytest.mark.parametrize("method", CLOSED_FORM)
def test_gradient_methods_are_refused_on_other_heads(method: str, small_heads) -> None:
    with pytest.raises(LivecamError) as caught:
        exportable(small_heads["mobilenet_v3_small"], method, "mobilenet_v3_small")
    assert str(caught.value) == (
        f"{method} can only be exported for a head of global average pooling and one Linear layer; "
        "mobilenet_v3_small's head after 'features' is AdaptiveAvgPool2d -> Linear(576 -> 1024) -> Hardswish -> "
        "Dropout -> Linear(1024 -> 1000); export method eigencam, which works for any head")
    with pytest.raises(LivecamError, match=r"convnext_tiny's head after 'features' is AdaptiveAvgPool2d -> "
                                           r"LayerNorm2d -> Flatten -> Linear\(768 -> 1000\); export method"):
        exportable(small_heads["convnext_tiny"], method, "convnext_tiny")
    for info in small_heads.values():
        exportable(info, "eigencam")  # any head


def test_methods_that_cannot_live_in_one_graph_are_refused(lite0, tmp_path: Path) -> None:
    reasons = {"scorecam": "once more per channel", "guided": "backward pass from the class score to the input",
               "guidedgradcam": "backward pass from the class score to the input"}
    for method, reason in reasons.items():
        with pytest.raises(LivecamError) as caught:
            export_explainer(lite0, tmp_path / "x.onnx", method)
        message = str(caught.value)
        assert message.startswith(f"{method} cannot be exported: ") and reason in message and "\n" not in message
        assert "method gradcam or cam" in message and "eigencam" in message
    with pytest.raises(LivecamError, match=r"unknown method 'gradcma' \(did you mean gradcam"):
        export_explainer(lite0, tmp_path / "x.onnx", "gradcma")
    # an earlier layer: the head behind it is not GAP -> Linear, and the message says what it is
    with pytest.raises(LivecamError, match=r"efficientnet_lite0's head after '_blocks.15' is Conv2d\(320 -> 1280, "
                                           r"1x1\) -> BatchNorm2d -> ReLU6 -> AdaptiveAvgPool2d"):
        export_explainer(lite0, tmp_path / "x.onnx", "gradcam", layer="_blocks.15")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("kwargs, fragment", [
    ({"topk": 0}, "topk must be an integer from 1 to 10 "),
    ({"topk": 11}, r"topk must be an integer from 1 to 10 \(at most 10 classes, and the model's 1000\)"),
    ({"target_class": 1000}, "class must be an index from 0 to 999"),
    ({"target_class": 285, "topk": 2}, "give topk=1"),
    ({"precision": "bf16"}, "precision must be one of fp32, fp16"),
    ({"input_size": (0, 224)}, "sides from 8 to 4096"),
    ({"path": "x.onx"}, "ends in .onnx"),
    ({"path": "missing/x.onnx"}, "does not exist"),
])
def test_bad_arguments_are_one_line_errors(lite0, tmp_path: Path, kwargs: dict, fragment: str) -> None:
    path = tmp_path / kwargs.pop("path", "x.onnx")
    with pytest.raises(LivecamError, match=fragment) as caught:
        export_explainer(lite0, path, "gradcam", **kwargs)
    assert "\n" not in str(caught.value) and not list(tmp_path.iterdir())


def _one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("livecam: error: ") and fragment in lines[0], result.stderr


def test_cli_export_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "resnet18.onnx"
    result = CliRunner().invoke(main, ["export", "--model", "resnet18", "--weights", "random", "--output", str(out),
                                       "--method", "cam", "--topk", "2", "--input-size", "128x96"])  # WxH
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"livecam: wrote {out} (") and "cam of top-2" in lines[0]
    meta = session(out).get_modelmeta().custom_metadata_map
    assert (meta["method"], meta["topk"], meta["input_size"], meta["model"]) == ("cam", "2", "[96, 128]", "resnet18")
    logits, classes, scores, cams = run(out, np.random.default_rng(0).normal(size=(3, 3, 96, 128)).astype(np.float32))
    assert logits.shape == (3, 1000) and classes.shape == scores.shape == (3, 2) and cams.shape == (3, 2, 3, 4)
    assert np.isfinite(cams).all() and np.allclose(cams.max(axis=(2, 3)), 1)


def test_cli_help_says_what_the_file_holds() -> None:
    result = CliRunner().invoke(main, ["export", "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "runs with ONNX Runtime alone" in text and "--from-frames" in text and "--overwrite" in text
    for output in OUTPUTS:
        assert f"{output} " in result.output, output
    from livecam.cli import EXPORT_METHODS
    from livecam.export import EIGEN, EXPORTABLE

    assert set(EXPORT_METHODS) == set(EXPORTABLE) == {*CLOSED_FORM, EIGEN}


@pytest.mark.parametrize("args, fragment", [
    (["--output", "{existing}"], "exists; pass --overwrite"),
    (["--output", "{dir}/lite0.onx"], "must name a file ending in .onnx"),
    (["--output", "{dir}/missing/lite0.onnx"], "does not exist"),
    (["--output", "{dir}/x.onnx", "--input-size", "224"], "--input-size must be WIDTHxHEIGHT"),
    (["--output", "{dir}/x.onnx", "--input-size", "0x224"], "--input-size must be WIDTHxHEIGHT"),
    (["--output", "{dir}/x.onnx", "--model", "mobilenet_v3_small", "--weights", "random"],
     "mobilenet_v3_small's head after 'features' is AdaptiveAvgPool2d -> Linear(576 -> 1024)"),
    (["--output", "{dir}/x.onnx", "--method", "scorecam"], "--method"),
    (["--output", "{dir}/x.onnx", "--class", "tabby", "--topk", "3"], "--class explains one class"),
])
def test_cli_errors_are_one_line_and_exit_code_2(args: list[str], fragment: str, tmp_path: Path) -> None:
    existing = tmp_path / "mine.onnx"
    existing.write_bytes(b"the user's file")
    args = [a.replace("{existing}", str(existing)).replace("{dir}", str(tmp_path)) for a in args]
    _one_line_error(CliRunner().invoke(main, ["export", *args]), fragment)
    assert existing.read_bytes() == b"the user's file" and sorted(p.name for p in tmp_path.iterdir()) == ["mine.onnx"]


# --- the worker-made exports -----------------------------------------------------------------------------------------

def test_the_file_contract(exports, lite0) -> None:
    path = exported(exports, "lite0-gradcam-top3")
    onnx.checker.check_model(onnx.load(str(path)))
    sess = session(path)
    (inp,) = sess.get_inputs()
    assert (inp.name, inp.type, inp.shape[1:]) == ("x", "tensor(float)", [3, 224, 224])
    assert isinstance(inp.shape[0], str)  # a named, dynamic batch
    outs = [(o.name, o.type, o.shape[1:]) for o in sess.get_outputs()]
    assert outs == [("logits", "tensor(float)", [1000]), ("classes", "tensor(int64)", [3]),
                    ("scores", "tensor(float)", [3]), ("cams", "tensor(float)", [3, 7, 7])]
    meta = sess.get_modelmeta().custom_metadata_map
    expected = {
        "livecam_format": "1", "livecam_version": livecam.__version__, "model": "efficientnet_lite0",
        "weights": lite0.weights, "layer": "_head_act", "method": "gradcam", "topk": "3", "class": "",
        "input": "tensor", "precision": "fp32",
    }
    assert {key: meta[key] for key in expected} == expected
    assert json.loads(meta["class_names"]) == lite0.class_names
    assert json.loads(meta["mean"]) == list(lite0.preprocess.mean)
    assert json.loads(meta["std"]) == list(lite0.preprocess.std)
    assert json.loads(meta["input_size"]) == [224, 224] and json.loads(meta["feature_size"]) == [7, 7]
    assert meta["head"].endswith("AdaptiveAvgPool2d -> Dropout -> Linear(1280 -> 1000)")
    assert list(json.loads(meta["outputs"])) == OUTPUTS and "(N, 3, 7, 7)" in json.loads(meta["outputs"])["cams"]
    assert set(meta) == {*expected, "class_names", "mean", "std", "input_size", "feature_size", "layout", "head",
                         "outputs", "methods"}
    assert json.loads(meta["methods"]) == ["gradcam"]
    assert meta["layout"] == "NCHW 7x7"
    # dynamic batch: each sample's outputs do not depend on the batch it is in
    x = photos_input()
    whole = run(sess, x)
    for n in (1, 3):
        part = run(sess, x[:n])
        assert part[3].shape == (n, 3, 7, 7)
        assert np.array_equal(part[1], whole[1][:n]) and np.abs(part[3] - whole[3][:n]).max() < 1e-5
    frames = session(exported(exports, "lite0-gradcam-frames"))
    assert [(i.name, i.type, i.shape[3]) for i in frames.get_inputs()] == [("frames", "tensor(uint8)", 3)]
    assert all(isinstance(d, str) for d in frames.get_inputs()[0].shape[:3])  # N, H and W are all dynamic
    assert frames.get_modelmeta().custom_metadata_map["input"] == "frames"
    fixed = session(exported(exports, "lite0-xgradcam-mug")).get_modelmeta().custom_metadata_map
    assert (fixed["class"], fixed["topk"]) == ("504", "1")


@pytest.mark.parametrize("spec_id", [s for s in SPECS if s.startswith("lite0") and "frames" not in s
                                     and "eigencam" not in s])
def test_the_real_model_matches_pytorch_on_photographs(spec_id: str, exports, lite0) -> None:
    spec = SPECS[spec_id]
    fp16 = spec.kwargs.get("precision") == "fp16"
    result = check_parity(exported(exports, spec_id), lite0, spec.method, photos_input(), fp16=fp16,
                          target_class=spec.kwargs.get("target_class"))
    if spec.kwargs.get("target_class") is not None:
        assert (result["classes"] == spec.kwargs["target_class"]).all()
    else:
        assert result["classes"][:, 0].tolist() == [285, 967, 422, 657]  # Egyptian cat, espresso, barbershop, missile
    print(f"{spec_id}: logits rel. error {result['logits']:.2e}, maps abs. error {result['maps']:.2e}")


def test_counterfactual_and_finercam_graphs_draw_their_own_maps(exports) -> None:
    """The parity above is not of blank maps: the counterfactual maps of the photographs' 2nd and 3rd classes are
    drawn (the top class's may be blank: every cell of chelsea adds to the cat), and Finer-CAM's differ from
    Grad-CAM's."""
    x = photos_input()
    counter = run(exported(exports, "lite0-counterfactual-top3"), x)[3]
    assert (counter[:, 1:].max(axis=(2, 3)) == 1.0).mean() >= 0.5
    finer = run(exported(exports, "lite0-finercam-top2"), x)[3]
    grad = run(exported(exports, "lite0-gradcam-top3"), x)[3][:, :2]
    assert np.allclose(finer.max(axis=(2, 3)), 1.0) and np.abs(finer - grad).max(axis=(2, 3)).min() > 0.05


def test_a_graph_of_several_methods(exports, lite0) -> None:
    """counterfactual,gradcam,eigencam: one forward pass, an output per method, each equal to the graph of that
    method alone; the engine opens the file for one method (cut to its output), as fast as a graph of one."""
    from livecam.engines.runtime.engine import RuntimeEngine

    path = exported(exports, "lite0-counterfactual-top3")
    sess = session(path)
    extra = ["cams_gradcam", "cams_eigencam"]
    assert [o.name for o in sess.get_outputs()] == [*OUTPUTS, *extra]
    assert all(o.shape[1:] == [3, 7, 7] for o in sess.get_outputs()[3:])
    meta = sess.get_modelmeta().custom_metadata_map
    assert meta["method"] == "counterfactual" and json.loads(meta["methods"]) == ["counterfactual", "gradcam",
                                                                                   "eigencam"]
    described = json.loads(meta["outputs"])
    assert list(described) == [*OUTPUTS, *extra] and "the eigencam map" in described["cams_eigencam"]
    x = photos_input().numpy()
    *heads, counter, grad, eigen = sess.run([*OUTPUTS, *extra], {"x": x})
    alone = run(exported(exports, "lite0-gradcam-top3"), x)
    assert all(np.array_equal(a, b) for a, b in zip(heads, alone[:3], strict=True))  # the same forward pass
    assert np.abs(grad - alone[3]).max() < 1e-6
    eigen_alone = run(exported(exports, "lite0-eigencam-top2"), x)[3]
    assert np.abs(eigen[:, :2] - eigen_alone).max() < 1e-6 and np.abs(eigen[:, 2] - eigen[:, 0]).max() == 0
    assert np.abs(counter - grad).max(axis=(2, 3)).min() > 0.05  # not one map twice
    frames = [photo_bgr(name) for name in PHOTOS]
    for method, expected in (("counterfactual", counter), ("gradcam", grad), ("eigencam", eigen)):
        engine = RuntimeEngine(path, "cpu", topk=3, method=method)
        assert engine.method == method and engine.session.output_names == [*OUTPUTS[:3], engine.info.output_for(
            method)]
        got = engine.run_prepared(engine.prepare(frames))
        assert got.method == method and np.abs(got.cams - expected).max() < 1e-6
    with pytest.raises(LivecamError, match="holds the maps of counterfactual, gradcam, eigencam, not cam; export it "
                                           "with method counterfactual,gradcam,eigencam,cam"):
        RuntimeEngine(path, "cpu", method="cam")


@pytest.mark.parametrize(("methods", "fragment"), [
    ("gradcam,,cam,gradcam", "gradcam is named twice"),
    ("gradcam,camm", "unknown method 'camm' (did you mean cam"),
    (",", "name at least one method"),
    ("cam,scorecam", "scorecam cannot be exported"),
])
def test_cli_refuses_a_bad_list_of_methods(methods: str, fragment: str, tmp_path: Path) -> None:
    out = tmp_path / "x.onnx"
    _one_line_error(CliRunner().invoke(main, ["export", "--method", methods, "--output", str(out)]), fragment)
    assert not out.exists()


@pytest.mark.parametrize("spec_id", [s for s in SPECS if not s.startswith("lite0") and "eigencam" not in s])
def test_random_torchvision_models_match_pytorch(spec_id: str, exports) -> None:
    spec = SPECS[spec_id]
    fp16 = spec.kwargs.get("precision") == "fp16"
    module = random_torchvision(spec.model, 0)
    result = check_parity(exported(exports, spec_id), module, spec.method, photos_input(), fp16=fp16,
                          allow_ties=fp16)
    print(f"{spec_id}: logits rel. error {result['logits']:.2e}, maps abs. error {result['maps']:.2e}, "
          f"{result['swaps']} near-tie swaps")


@pytest.mark.parametrize("spec_id", ["lite0-eigencam-top2", "mobilenet_v3_small-eigencam"])
def test_exported_eigencam_matches_the_svd_method(spec_id: str, exports, lite0) -> None:
    spec = SPECS[spec_id]
    module = lite0 if spec.model == "lite0" else random_torchvision(spec.model, 0)
    x = photos_input()
    logits, classes, _, cams = run(exported(exports, spec_id), x)
    with livecam.Explainer(module, "eigencam") as explainer:
        ref = explainer(x, upsample=False)
    assert relative_error(torch.from_numpy(logits), ref.logits) < 1e-4
    assert np.array_equal(classes[:, 0], ref.classes.numpy())
    for j in range(classes.shape[1]):  # class-agnostic: the same map for each class
        r = pearson(cams[:, j], ref.cams)
        assert r.min() >= 0.999, r
    print(f"{spec_id}: min r {r.min():.6f}, max abs. error {np.abs(cams[:, 0] - ref.cams.numpy()).max():.2e}")


def test_frames_in_the_graph(exports, lite0) -> None:
    """uint8 BGR frames of any size: exactly the PyTorch device path, and close to the OpenCV one."""
    sess = session(exported(exports, "lite0-gradcam-frames"))
    photos = [photo_bgr(n) for n in PHOTOS]  # 300x451, 400x600, 512x512, 427x640: one at a time (N = 1)
    clip = list(clip_frames())  # 360x640, three at a time (N = 3)
    outputs = [run(sess, p[None]) for p in photos]
    outputs += [run(sess, np.stack(clip[i:i + 3])) for i in range(0, len(clip), 3)]
    logits = np.concatenate([o[0] for o in outputs])
    classes = np.concatenate([o[1][:, 0] for o in outputs])
    cams = np.concatenate([o[3][:, 0] for o in outputs])
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in (lite0.preprocess.mean, lite0.preprocess.std))
    with livecam.Explainer(lite0, "gradcam") as explainer:
        # the same resizing in PyTorch (preprocess_frames, as the device step does it): the same numbers
        device = [explainer(preprocess_frames(torch.from_numpy(f[None]), lite0.preprocess, mean, std, torch.float32,
                                              False), upsample=False) for f in photos + clip]
        assert np.array_equal(classes, np.concatenate([d.classes.numpy() for d in device]))
        assert relative_error(torch.from_numpy(logits), torch.cat([d.logits for d in device])) < 1e-4
        device_error = float(np.abs(cams - torch.cat([d.cams for d in device]).numpy()).max())
        assert device_error < 1e-3, device_error
        # OpenCV's area resizing (livecam.to_input) is another filter: nearly the same classes and maps
        x = livecam.to_input(photos + clip, lite0.preprocess)
        same = classes == explainer(x, upsample=False).classes.numpy()
        opencv = explainer(x, classes=torch.from_numpy(classes), upsample=False).cams  # the graph's class
    r = pearson(cams, opencv)
    print(f"frames in the graph: max map error {device_error:.1e} against preprocess_frames; against OpenCV, "
          f"top-1 agrees on {same.sum()}/{len(same)}, map r min {r.min():.4f}, median {np.median(r):.4f}")
    assert same.mean() >= 0.9, same
    # measured: r from 0.977 (one clip frame) to 0.9995, median 0.998
    assert r.min() >= 0.97 and np.median(r) >= 0.99, r
    # another size in the same session, and N = 1 against the same frame's row in a batch of 3
    small = [np.ascontiguousarray(f[::3, ::3]) for f in clip[:3]]  # 120x214
    batch = run(sess, np.stack(small))
    single = run(sess, small[1][None])
    assert batch[3].shape == (3, 1, 7, 7) and np.array_equal(single[1], batch[1][1:2])
    assert np.abs(single[3] - batch[3][1:2]).max() < 1e-5 and np.abs(single[0] - batch[0][1:2]).max() < 1e-4
