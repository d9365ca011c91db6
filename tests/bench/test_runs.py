"""livecam bench's runs: every column filled on each engine, a report that follows its schema, comparisons that
line up, bad input refused before the frames load."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import jsonschema
import numpy as np
import pytest
from click.testing import CliRunner

import livecam
from livecam.bench import (
    SCHEMA_FILE,
    BenchResult,
    compare_markdown,
    load_result,
    parse_size,
    run_bench,
)
from livecam.cli import main
from livecam.engines.launch import EngineOptions
from livecam.errors import LivecamError

SCHEMA = json.loads(SCHEMA_FILE.read_text())


def test_parse_size() -> None:
    assert parse_size("1280x720") == (1280, 720)
    assert parse_size(None) is None
    with pytest.raises(LivecamError, match="like 1280x720"):
        parse_size("720p")
    with pytest.raises(LivecamError, match="out of range"):
        parse_size("8x8")


@pytest.fixture(scope="module")
def runtime_result(lite0) -> BenchResult:
    """The default engine on this CPU: the cached Lite0 graph on ONNX Runtime."""
    return run_bench(EngineOptions(device="cpu"), frames=16, warmup=2, size=(320, 180), peer=False, startup=1)


def _check_filled(result: BenchResult) -> None:
    for stat in (*result.stages.values(), result.step, result.explanation, result.floor, result.pipeline["latency"]):
        assert stat.n > 0 and 0 < stat.p50_ms <= stat.p90_ms <= stat.p99_ms
    assert result.step.p50_ms >= result.explanation.p50_ms * 0.5  # the step holds the explanation and more
    assert result.pipeline["fps"] > 0 and result.pipeline["frames"] == result.config["frames"]
    assert set(result.memory["rss_mb"]) == {"start", "after 10% of frames", "end"}
    jsonschema.validate(json.loads(result.to_json()), SCHEMA)


def test_bench_on_onnx_runtime(runtime_result: BenchResult) -> None:
    result = runtime_result
    assert list(result.stages) == ["decode", "preprocess", "explain", "render", "encode"]
    assert result.config["engine"] == "onnxruntime" and result.config["provider"] == "CPUExecutionProvider"
    assert result.config["runtime"] == "ONNX Runtime CPU in fp32" and result.config["frame_size"] == [320, 180]
    _check_filled(result)
    assert len(result.startup_s) == 1 and 0 < result.startup_s[0] < 120
    assert "explanation / plain inference (p50)" in result.ratios()
    table = result.markdown()
    assert "| **step: frame in -> annotated frame out** |" in table and "plain inference" in table


def test_bench_on_pytorch(lite0) -> None:
    result = run_bench(EngineOptions(device="cpu", backend="torch"), frames=12, warmup=2, size=(320, 180), peer=False)
    assert list(result.stages) == ["decode", "preprocess", "forward", "backward", "cam", "render", "encode"]
    assert result.config["engine"] == "torch" and result.config["folded_batchnorms"] == 49
    _check_filled(result)
    assert result.startup_s == [] and result.to_dict()["startup_p50_s"] is None


def test_bench_on_the_device_path(lite0) -> None:
    """The device path's stages (upload, on-device render, download), here on the CPU."""
    result = run_bench(EngineOptions(device="cpu", backend="torch", renderer="device"), frames=12, warmup=2,
                       size=(320, 180), peer=False)
    assert list(result.stages) == ["decode", "upload", "preprocess", "forward", "backward", "cam", "render",
                                   "download", "encode"]
    assert result.step.n == 12 and result.explanation.p50_ms > 0 and result.config["graph"] is False


def test_the_floor_is_the_same_graph_without_the_maps(runtime_result: BenchResult, tmp_path: Path) -> None:
    """The plain-inference graph is the explainer graph cut at its logits: same logits, no map nodes."""
    import onnx
    import onnx.utils
    import onnxruntime as ort

    graph = runtime_result.config["graph_file"]
    floor = tmp_path / "floor.onnx"
    onnx.utils.extract_model(graph, str(floor), ["x"], ["logits"])
    full, cut = onnx.load(graph), onnx.load(str(floor))
    assert [o.name for o in cut.graph.output] == ["logits"]
    assert {"TopK", "Softmax"} & {n.op_type for n in full.graph.node}
    assert not {"TopK"} & {n.op_type for n in cut.graph.node} and len(cut.graph.node) < len(full.graph.node)
    x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
    a = ort.InferenceSession(graph, providers=["CPUExecutionProvider"]).run(["logits"], {"x": x})[0]
    b = ort.InferenceSession(str(floor), providers=["CPUExecutionProvider"]).run(["logits"], {"x": x})[0]
    assert np.array_equal(a, b)


def test_peer_grad_cam_agrees_with_livecam(lite0, chelsea_bgr) -> None:
    """pytorch-grad-cam's GradCAM and ours give the same map on the same input (a cross-check)."""
    pytest.importorskip("pytorch_grad_cam")
    import copy

    from pytorch_grad_cam import GradCAM

    x = livecam.to_input(chelsea_bgr, lite0.preprocess)
    module = copy.deepcopy(lite0.module).requires_grad_(True)
    with GradCAM(model=module, target_layers=[module.get_submodule(lite0.target_layer)]) as cam:
        theirs = cam(input_tensor=x, targets=None)[0]  # 224x224, min-max scaled, resized with cv2
    with livecam.Explainer(lite0) as explainer:
        raw = explainer(x).raw[0].numpy()
    ours = cv2.resize((raw - raw.min()) / (raw.max() - raw.min()), (224, 224))
    # pytorch-grad-cam divides by (1e-7 + max), which on maps this small scales the whole map a little
    assert np.abs(ours / ours.max() - theirs / theirs.max()).max() < 1e-4
    assert abs(theirs.max() - 1) < 0.01


def test_bench_cli_with_the_peer_then_compare(lite0, runtime_result: BenchResult, tmp_path: Path) -> None:
    pytest.importorskip("pytorch_grad_cam")
    pytest.importorskip("matplotlib")
    paths = [tmp_path / "b.json", tmp_path / "b.md", tmp_path / "b.png"]
    result = CliRunner().invoke(main, ["bench", "--frames", "12", "--warmup", "2", "--size", "320x180", "--startup",
                                       "0", "--label", "this CPU, ORT", "--json", str(paths[0]), "--markdown",
                                       str(paths[1]), "--plot", str(paths[2])])
    assert result.exit_code == 0, result.output
    data = json.loads(paths[0].read_text())
    jsonschema.validate(data, SCHEMA)
    assert data["peer"]["p50_ms"] > 0 and data["peer_pipeline_fps"] > 0
    assert data["ratios"]["peer / livecam step (p50)"] > 0
    assert "peer: pytorch-grad-cam" in paths[1].read_text()
    image = cv2.imread(str(paths[2]))
    assert image is not None and image.shape[0] > 100
    # --compare: two reports side by side, in a table and a chart
    other = tmp_path / "other.json"
    other.write_text(runtime_result.to_json())
    chart = tmp_path / "compare.png"
    result = CliRunner().invoke(main, ["bench", "--compare", str(paths[0]), str(other), "--plot", str(chart)])
    assert result.exit_code == 0, result.output
    header, rule, *rows = result.output.strip().splitlines()
    assert header == "|  | this CPU, ORT | other |" and rule == "| --- | --- | --- |"
    fps = next(row for row in rows if row.startswith("| **end to end FPS** |"))
    assert f"**{data['pipeline']['fps']:.1f}**" in fps and f"**{runtime_result.pipeline['fps']:.1f}**" in fps
    assert all(row.count("|") == 4 for row in rows)
    assert cv2.imread(str(chart)) is not None


def test_a_report_round_trips(runtime_result: BenchResult, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    path.write_text(runtime_result.to_json())
    again = load_result(path)
    assert again.step == runtime_result.step and again.pipeline["latency"] == runtime_result.pipeline["latency"]
    assert again.label == "r" and compare_markdown([again]).count("\n") > 10


def test_bench_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    old = tmp_path / "old.json"
    old.write_text(json.dumps({"config": {}, "machine": {}}))
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    for args, fragment in [(["bench", "--size", "big"], "like 1280x720"),
                           (["bench", "--json", str(tmp_path / "no" / "b.json")], "does not exist"),
                           (["bench", "--compare"], "needs the JSON reports"),
                           (["bench", str(old)], "add --compare"),
                           (["bench", "--compare", str(old)], "not a livecam bench report of schema"),
                           (["bench", "--compare", str(bad)], "cannot read"),
                           (["bench", "--compare", str(tmp_path / "missing.json")], "cannot read")]:
        result = runner.invoke(main, args)
        assert result.exit_code == 2 and fragment in result.stderr, (args, result.stderr)


def test_a_refused_device_is_said_before_the_frames_load(lite0_graph: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding and resizing 500 frames at 1080p takes seconds: a device that cannot run comes first."""
    from livecam.bench import runs
    from livecam.engines.runtime.session import cuda_device_count

    if cuda_device_count():
        pytest.skip("this machine has a GPU: nothing is refused")

    def no_frames(*_args: object) -> None:
        raise AssertionError("the frames were loaded before the engine was refused")

    monkeypatch.setattr(runs, "load_frames", no_frames)  # run_bench's own, in livecam.bench.runs
    result = CliRunner().invoke(main, ["bench", "--model", str(lite0_graph), "--device", "cuda", "--no-peer",
                                       "--startup", "0"])
    assert result.exit_code == 2 and "device cuda" in result.stderr, result.stderr
