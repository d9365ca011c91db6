"""The ONNX Runtime engine: the same frames as the PyTorch engine, without PyTorch, chosen where it can run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from livecam.cli import main
from livecam.engines.pytorch.engine import Engine
from livecam.errors import GraphError, LivecamError
from livecam.engines.launch import EngineOptions, open_engine
from livecam.engines.runtime.engine import RuntimeEngine
from livecam.render import softmax, top_labels
from livecam.types import ArrayExplanation, Frame
from tests.conftest import (CAT_CLASSES, SPLICE, assert_smoothed, panned, photo_bgr, read_video, run_without_torch,
                            spliced_clip)

PHOTOS = ("chelsea", "coffee", "astronaut", "rocket")


def _onnx_runtime_cuda() -> bool:
    import onnxruntime

    from livecam.engines.runtime.session import cuda_device_count

    return cuda_device_count() > 0 and "CUDAExecutionProvider" in onnxruntime.get_available_providers()


cuda = pytest.mark.skipif(not _onnx_runtime_cuda(), reason="needs an NVIDIA GPU and onnxruntime-gpu")


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory, lite0) -> dict[str, Path]:
    """Lite0 exported three ways: Grad-CAM of the top class, the top 3 for panels, one fixed class."""
    from livecam.export import export_explainer

    folder = tmp_path_factory.mktemp("graphs")
    return {
        "gradcam": export_explainer(lite0, folder / "lite0.onnx"),
        "top3": export_explainer(lite0, folder / "lite0-top3.onnx", topk=3),
        "espresso": export_explainer(lite0, folder / "lite0-espresso.onnx", method="cam", target_class=967),
    }


def test_the_runtime_engine_draws_what_the_pytorch_engine_draws(lite0, graphs) -> None:
    runtime = RuntimeEngine(graphs["gradcam"], "cpu")
    pytorch = Engine(lite0, "gradcam")
    for name in PHOTOS:
        frame = Frame(photo_bgr(name), 0, 0.0)
        a, b = runtime.process(frame, readout="9.0 FPS  20 ms"), pytorch.process(frame, readout="9.0 FPS  20 ms")
        assert a.image.shape == frame.image.shape and a.image.dtype == np.uint8
        assert int(a.explanation.classes[0, 0]) == int(b.explanation.classes[0])
        assert np.abs(a.explanation.cams[0, 0] - b.explanation.cams[0].numpy()).max() < 1e-4
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 2  # rounding of the blended pixels
        assert set(a.timings) == {"preprocess", "explain", "render"}
        # what the sinks read, whatever the engine: the same labels and maps
        assert [(x.index, x.name, x.explained) for x in a.labels] == [(x.index, x.name, x.explained) for x in b.labels]
        assert np.allclose([x.score for x in a.labels], [x.score for x in b.labels], atol=1e-5)
        assert a.maps.shape == b.maps.shape == (1, 7, 7) and np.abs(a.maps - b.maps).max() < 1e-4
        assert a.map_classes == b.map_classes == [a.labels[0].index]
    pytorch.close()


def test_panels_and_a_fixed_class(lite0, graphs) -> None:
    frames = [Frame(photo_bgr(name), i, 0.0) for i, name in enumerate(PHOTOS[:2])]
    runtime = RuntimeEngine(graphs["top3"], "cpu", topk=3, panels=True)
    pytorch = Engine(lite0, "gradcam", topk=3, panels=True)
    for a, b in zip(runtime.process_batch(frames), pytorch.process_batch(frames), strict=True):
        assert a.image.shape == b.image.shape
        assert np.abs(a.image.astype(int) - b.image.astype(int)).max() <= 2
        assert a.maps.shape == b.maps.shape == (3, 7, 7) and np.abs(a.maps - b.maps).max() < 1e-4
        assert a.map_classes == b.map_classes == [x.index for x in a.labels[:3]]
        assert [x.explained for x in a.labels] == [x.explained for x in b.labels] == [True] * 3  # a panel each
    # the panels follow topk, up to the graph's K: two of the three classes the graph explains
    two = RuntimeEngine(graphs["top3"], "cpu", topk=2, panels=True).process(frames[0])
    assert two.maps.shape == (2, 7, 7) and [x.explained for x in two.labels] == [True, True]
    height, width = frames[0].image.shape[:2]  # two panels side by side, each at half size
    assert abs(two.image.shape[1] - width) <= 1 and abs(two.image.shape[0] - height // 2) <= 1
    five = RuntimeEngine(graphs["top3"], "cpu", topk=5, panels=True).process(frames[0])
    assert five.maps.shape == (3, 7, 7) and [x.explained for x in five.labels] == [True] * 3 + [False] * 2
    for engine in (lambda: RuntimeEngine(graphs["top3"], "cpu", topk=1, panels=True),
                   lambda: Engine(lite0, "gradcam", topk=1, panels=True)):
        with pytest.raises(LivecamError, match="needs topk 2 or more"):
            engine()
    fixed = RuntimeEngine(graphs["espresso"], "cpu", topk=1).process(Frame(photo_bgr("coffee"), 0, 0.0))
    assert fixed.explanation.classes.tolist() == [[967]]
    assert fixed.map_classes == [967] and [x.index for x in fixed.labels if x.explained] == [967]
    with pytest.raises(LivecamError, match="no panels"):
        RuntimeEngine(graphs["gradcam"], "cpu", panels=True)


def test_frames_of_different_sizes_in_one_batch(graphs) -> None:
    engine = RuntimeEngine(graphs["gradcam"], "cpu")
    frames = [Frame(photo_bgr(name), i, 0.0) for i, name in enumerate(PHOTOS)]
    batch = engine.process_batch(frames)
    for frame, out in zip(frames, batch, strict=True):
        alone = engine.process(frame)
        assert out.image.shape == frame.image.shape
        assert np.abs(out.explanation.cams[out.index] - alone.explanation.cams[0]).max() < 1e-5


@pytest.mark.slow
def test_a_graph_runs_the_whole_loop_without_torch(graphs, cat_video: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.mp4"
    args = ["--model", str(graphs["gradcam"]), "--source", str(cat_video), "--output", str(out), "--no-show"]
    proc = run_without_torch(f"from livecam.cli import main\nmain({args!r})")
    assert proc.returncode == 0, proc.stderr
    assert "on ONNX Runtime CPU in fp32, gradcam of the top class at layer _head_act" in proc.stderr
    recorded, _ = read_video(out)
    assert len(recorded) == len(read_video(cat_video)[0])


def test_without_torch_what_needs_it_says_so_in_one_line(cat_video: Path, tmp_path: Path) -> None:
    """A runtime-only install: the zoo model with no cached graph, a PyTorch-only method, the exporter."""
    for args, fragment in [
        (["--source", str(cat_video), "--no-show"], "exporting efficientnet_lite0 for ONNX Runtime"),
        (["--source", str(cat_video), "--no-show", "--method", "scorecam"], "running efficientnet_lite0 with scorecam"),
        (["export", "--output", str(tmp_path / "x.onnx")], "livecam export needs PyTorch"),
        (["evaluate"], "livecam evaluate needs PyTorch"),
    ]:
        proc = run_without_torch(f"from livecam.cli import main\nmain({args!r})", {"LIVECAM_CACHE_DIR": str(tmp_path)})
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert fragment in lines[0] and "pip install 'livecam[torch]'" in lines[0], lines[0]


def _assert_one_line_error(result, fragment: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("livecam: error: ") and fragment in lines[0], result.stderr


def test_a_graph_refuses_what_it_was_not_exported_for(graphs, cat_video: Path, tmp_path: Path) -> None:
    graph, top3 = str(graphs["gradcam"]), str(graphs["top3"])
    bare = tmp_path / "bare.onnx"
    onnx.save(onnx.helper.make_model(onnx.helper.make_graph(
        [onnx.helper.make_node("Identity", ["x"], ["logits"])], "bare",
        [onnx.helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 3])],
        [onnx.helper.make_tensor_value_info("logits", onnx.TensorProto.FLOAT, [1, 3])]),
        ir_version=10, opset_imports=[onnx.helper.make_opsetid("", 18)]), str(bare))
    video = str(cat_video)
    for args, fragment in [
        (["--model", graph, "--weights", "w.pt"], "--weights does not apply"),
        (["--model", graph, "--method", "eigencam"], "explains with method gradcam, not eigencam"),
        (["--model", graph, "--layer", "_blocks.3"], "export it again with --layer _blocks.3"),
        (["--model", graph, "--class", "tabby"], "export it with --class tabby"),
        (["--model", str(graphs["espresso"]), "--class", "tabby"], "explains class 'espresso', not 'tabby'"),
        (["--model", graph, "--panels"], "no panels"),
        (["--model", top3, "--view", "guided"], "--view guided does not apply"),
        (["--model", graph, "--backend", "torch"], "--backend torch does not apply"),
        (["--model", str(tmp_path / "missing.onnx")], "does not exist"),
        (["--model", str(bare)], "not an image batch"),  # read as any classifier (tests/graphs), and refused
        (["--model", graph, "--device", "cuda"], "device cuda"),
    ]:
        _assert_one_line_error(CliRunner().invoke(main, ["--source", video, "--no-show", *args]), fragment)


def _tampered(graph: Path, path: Path, **changes: str) -> Path:
    model = onnx.load(str(graph))
    for prop in model.metadata_props:
        if prop.key in changes:
            prop.value = changes[prop.key]
    onnx.save(model, str(path))
    return path


def test_a_graph_whose_metadata_lies_is_refused_when_it_loads(graphs, cat_video: Path, tmp_path: Path) -> None:
    """Edited or damaged metadata would fail mid-run (IndexError, an OpenCV assertion): it is refused up front."""
    names = json.loads({p.key: p.value for p in onnx.load(str(graphs["gradcam"])).metadata_props}["class_names"])
    for changes, fragment in [
        ({"class_names": json.dumps(names[:10])}, "names 10 classes, but its logits have 1000"),
        ({"input_size": "[320, 320]"}, "takes 320x320 images, but its input is 224x224"),
        ({"input_size": "[0, 224]"}, "metadata is damaged"),
        ({"topk": "3"}, "explains 3 classes per image, but its classes hold 1"),
        ({"feature_size": "[14, 14]"}, "its maps are 14x14, but they are 7x7"),
        ({"std": "[0, 1, 1]"}, "metadata is damaged"),
    ]:
        bad = _tampered(graphs["gradcam"], tmp_path / "bad.onnx", **changes)
        with pytest.raises(GraphError, match=fragment):
            RuntimeEngine(bad, "cpu")
        _assert_one_line_error(CliRunner().invoke(main, ["--source", str(cat_video), "--no-show", "--output",
                                                         str(tmp_path / "o.mp4"), "--model", str(bad)]), fragment)
        assert not list(tmp_path.glob("*.mp4")) and not list(tmp_path.glob(".*"))


def test_a_damaged_cached_graph_is_exported_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  graphs, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))
    from livecam import export

    calls = []

    def exported(_model: object, path: Path, **options: object) -> Path:  # the same graph, exported before
        calls.append(options)
        path.write_bytes(graphs["gradcam"].read_bytes())
        return path

    monkeypatch.setattr(export, "export_explainer", exported)
    path = open_engine(EngineOptions(device="cpu")).engine.path
    whole = path.read_bytes()
    for damage in (lambda: path.write_bytes(whole[: len(whole) // 3]),  # a full disk cut it short
                   lambda: _tampered(graphs["gradcam"], path, class_names='["a", "b"]')):
        damage()
        caplog.clear()
        engine = open_engine(EngineOptions(device="cpu")).engine
        assert engine.path == path and len(engine.info.class_names) == 1000
        assert "is damaged" in caplog.text and "exporting it again" in caplog.text
        assert engine.process(Frame(photo_bgr("chelsea"), 0, 0.0)).labels[0].name in CAT_CLASSES
    assert len(calls) == 3


def test_the_graph_metadata_says_what_it_holds(graphs) -> None:
    meta = {p.key: p.value for p in onnx.load(str(graphs["top3"]), load_external_data=False).metadata_props}
    assert meta["method"] == "gradcam" and meta["topk"] == "3" and meta["input"] == "tensor"
    assert len(json.loads(meta["class_names"])) == 1000


@cuda
def test_onnx_runtime_on_cuda_matches_the_cpu(graphs) -> None:
    """The CUDA provider with IO binding (one input buffer reused across calls) gives the CPU's results."""
    cpu = RuntimeEngine(graphs["top3"], "cpu", topk=3, panels=True)
    gpu = RuntimeEngine(graphs["top3"], "cuda", topk=3, panels=True)
    assert gpu.session.provider == "CUDAExecutionProvider" and gpu.session.io_binding
    batches = [[Frame(photo_bgr(name), i, 0.0) for i, name in enumerate(PHOTOS[:2])],
               [Frame(photo_bgr(name), i, 0.0) for i, name in enumerate(PHOTOS[2:])]]
    for frames in batches * 2:  # the same shapes again: the bound buffer is refilled in place
        a, b = cpu.process_batch(frames), gpu.process_batch(frames)
        assert np.array_equal(a[0].explanation.classes, b[0].explanation.classes)
        assert np.abs(a[0].explanation.cams - b[0].explanation.cams).max() < 1e-3
        assert np.abs(a[0].explanation.logits - b[0].explanation.logits).max() < 1e-2


# --- --smooth

def _all_maps(out) -> tuple[np.ndarray, list[int]]:  # noqa: ANN001 - every map the graph gave the frame
    return out.explanation.cams[out.index], out.explanation.classes[out.index].tolist()


def test_smooth_zero_draws_each_frame_as_explained(lite0_graph: Path) -> None:
    engine = RuntimeEngine(lite0_graph, "cpu", smooth=0.0)
    assert engine.smooth_s == 0.0
    names = list(engine.class_names)
    for out in engine.process_batch(spliced_clip()):
        e, i = out.explanation, out.index
        assert not out.smoothed and out.raw_maps is out.maps and out.raw_labels is out.labels
        assert np.array_equal(out.maps, e.cams[i, :1]) and out.map_classes == [int(e.classes[i, 0])]
        want = top_labels(softmax(e.logits[i]), names, 3, [int(e.classes[i, 0])])
        assert out.labels == want
        assert np.array_equal(out.image, engine.annotator.annotate(out.frame.image, e.cams[i, 0], want))


def test_smoothing_restarts_at_a_cut_and_steadies_a_shot(lite0_graph: Path) -> None:
    engine = RuntimeEngine(lite0_graph, "cpu", smooth=0.5)
    frames = spliced_clip()
    outs = [out for start in range(0, len(frames), 3) for out in engine.process_batch(frames[start:start + 3])]
    names = list(engine.class_names)
    assert_smoothed(outs, lambda o: softmax(o.explanation.logits[o.index]), 0.5, names, 3, every_map=_all_maps)
    for out in outs[1:SPLICE] + outs[SPLICE + 1:]:  # within a shot: smoothed
        assert np.abs(out.maps - out.raw_maps).max() > 1e-3
    for out in outs:  # what is drawn is the smoothed map and labels
        assert np.array_equal(out.image, engine.annotator.annotate(out.frame.image, out.maps[0], out.labels))
        assert out.raw_labels == top_labels(softmax(out.explanation.logits[out.index]), names, 3, out.raw_map_classes)
    # turned off, each frame is its own again; turned on, the next frame starts afresh
    engine.smooth_s = 0
    off = engine.process(frames[-1])
    assert not off.smoothed and np.array_equal(off.maps, off.explanation.cams[0, :1])
    engine.smooth_s = 2.0
    again = engine.process(Frame(frames[-1].image, 99, 9.9))
    assert again.smoothed and np.array_equal(again.maps, again.raw_maps)
    with pytest.raises(LivecamError, match="smooth"):
        engine.smooth_s = -1


def test_smoothing_keeps_the_held_class_from_any_of_the_graphs_maps(lite0_graph: Path) -> None:
    """A graph with two maps a frame: when the other class leads one frame, the held class's map is the second."""
    engine = RuntimeEngine(lite0_graph, "cpu", smooth=0.5)
    tabby, tiger = 281, 282
    leads = [tabby, tabby, tiger, tabby] + [tiger] * 8

    def explained(x: np.ndarray) -> ArrayExplanation:
        i = engine.calls
        engine.calls += 1
        first, second = (tabby, tiger) if leads[i] == tabby else (tiger, tabby)
        logits = np.full((1, 1000), -20.0, np.float32)
        logits[0, [first, second]] = np.log([0.7, 0.3])
        rng = np.random.default_rng(i)
        return ArrayExplanation(cams=rng.random((1, 2, 7, 7), dtype=np.float32),
                                classes=np.array([[first, second]]), scores=np.array([[0.7, 0.3]], np.float32),
                                logits=logits, method="gradcam", layer="_head_act")

    engine.calls = 0
    engine.run_prepared = explained
    frames = [Frame(image, i, 0.125 * i) for i, image in enumerate(panned("chelsea", len(leads)))]
    outs = [engine.process(frame) for frame in frames]
    held = [out.map_classes[0] for out in outs]
    # tabby's smoothed score: 0.7, 0.7, 0.612, 0.631, 0.558, 0.501, 0.457: tiger leads from frame 6, and is
    # explained 0.5 s later
    assert held == [tabby] * 10 + [tiger] * 2
    assert outs[2].raw_map_classes == [tiger] and outs[2].map_classes == [tabby]
    np.testing.assert_allclose(outs[2].maps[0], outs[1].maps[0] + (1 - np.exp(-0.25)) *
                               (outs[2].explanation.cams[0, 1] - outs[1].maps[0]), atol=1e-6)  # tabby's map, second
    names = list(engine.class_names)
    assert_smoothed(outs, lambda o: softmax(o.explanation.logits[0]), 0.5, names, 3, every_map=_all_maps, cuts=(0,))
