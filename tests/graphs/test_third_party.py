"""Graphs livecam did not export (plain ``torch.onnx.export``, tests/graphs/thirdparty.py), explained without PyTorch:
their maps against livecam's own export of the same weights, their conventions, the CLI, and the graphs refused."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from livecam import choices
from livecam.engines.runtime.graph import GraphInfo
from livecam.errors import GraphError, LivecamError
from livecam.graphs.third_party import explain_graph
from livecam.graphs.options import InputOptions
from tests.conftest import CAT_CLASSES, NO_TORCH, assert_one_line_error, invoke, photo_bgr
from tests.test_readme import README
from tests.graphs.thirdparty import ThirdParty, run_graph

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GAP_LINEAR = ("resnet18_ts13", "resnet18_dynamo", "resnet18_nhwc", "mobilenet_v2_ts17", "tf2onnx_head",
              "resnet18_external")


def _x(graph: ThirdParty, n: int) -> np.ndarray:
    """Real photographs as input ``x`` of an explained graph: (n, 3, H, W) RGB, normalized with the graph's mean."""
    from tests.graphs.thirdparty import photo_batch

    return photo_batch(graph.size, n, "nchw", True, graph.mean, graph.std)


def _inputs(graph: ThirdParty) -> InputOptions:
    return InputOptions(graph.size, graph.mean, graph.std, 1.0, True)


@pytest.fixture(scope="module")
def own_export(tmp_path_factory: pytest.TempPathFactory):
    """livecam's own export (PyTorch) of a graph's reference model, once per (model, weights, method)."""
    from livecam.export import export_explainer

    made: dict[tuple[str, str, str], Path] = {}

    def get(graph: ThirdParty, method: str) -> Path:
        key = (graph.model, str(graph.weights), method)
        if key not in made:
            path = tmp_path_factory.mktemp("own") / "own.onnx"
            made[key] = export_explainer(graph.reference(), path, method=method, topk=2, input_size=graph.size)
        return made[key]

    return get


def _batched(path: Path, x: np.ndarray) -> dict[str, np.ndarray]:
    """All outputs for ``x``, a call per sample (the graphs fixed at batch 1 take one)."""
    parts = [run_graph(path, x[i:i + 1]) for i in range(len(x))]
    return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


@pytest.mark.parametrize("name", GAP_LINEAR)
def test_a_gap_linear_graphs_gradcam_is_livecams_own(name: str, request: pytest.FixtureRequest, own_export,
                                                     tmp_path: Path) -> None:
    """The maps (1e-4) and classes equal livecam's own export of the same weights: opset 13 and 17/18, dynamic
    and fixed batch, both exporters' heads, NHWC input, tf2onnx's NHWC MatMul + Add head, external data."""
    graph: ThirdParty = request.getfixturevalue(name)
    explained = explain_graph(graph.path, tmp_path / "explained.onnx", topk=2, inputs=_inputs(graph))
    assert explained.method == "gradcam" and explained.layer == graph.feature_map
    info = GraphInfo.read(explained.path)
    assert (info.method, info.topk, info.layer, info.input) == ("gradcam", 2, graph.feature_map, "tensor")
    names = ("ImageNet class names (1000 outputs)" if graph.classes == 1000
             else "class indices as names (no labels file)")
    assert len(info.class_names) == graph.classes and info.assumed == names
    x = _x(graph, 2)
    ours, own = _batched(explained.path, x), _batched(own_export(graph, "gradcam"), x)
    np.testing.assert_array_equal(ours["classes"], own["classes"])
    np.testing.assert_allclose(ours["cams"], own["cams"], atol=1e-4)
    np.testing.assert_allclose(ours["scores"], own["scores"], atol=1e-5)
    np.testing.assert_allclose(ours["logits"], own["logits"], atol=1e-3, rtol=1e-4)
    assert ours["cams"].max() == pytest.approx(1.0) and ours["cams"].min() == 0.0


@pytest.mark.parametrize("method", ["cam", "gradcampp", "xgradcam", "layercam", "hirescam", "counterfactual",
                                    "finercam", "eigencam"])
def test_every_method_in_the_graph_is_livecams_own(method: str, resnet18_ts13: ThirdParty, tmp_path: Path) -> None:
    """Each method's closed form against the PyTorch Explainer on the same weights (which livecam's own export
    equals by construction, tests/export/test_explainer_graph.py)."""
    from livecam.engines.pytorch.explainer import Explainer

    explained = explain_graph(resnet18_ts13.path, tmp_path / "m.onnx", method=method, topk=2,
                              inputs=_inputs(resnet18_ts13))
    x = _x(resnet18_ts13, 2)
    ours = run_graph(explained.path, x)
    with torch.no_grad() if method in ("cam", "eigencam") else torch.enable_grad():
        ref = Explainer(resnet18_ts13.reference(), method=method)(torch.from_numpy(x), topk=2, upsample=False)
    np.testing.assert_array_equal(ours["classes"], ref.classes.reshape(2, 2).numpy())
    np.testing.assert_allclose(ours["cams"], ref.cams.reshape(2, 2, 7, 7).numpy(), atol=1e-4)


def test_a_graph_of_every_method_holds_each_as_the_graph_of_that_method_alone(resnet18_ts13: ThirdParty,
                                                                           tmp_path: Path) -> None:
    """``--method`` with every exportable method, from the CLI: one graph, an output per method, each equal to the
    graph of that method alone (which the test above checks against PyTorch)."""
    methods = choices.EXPORT_METHODS
    out = tmp_path / "all.onnx"
    result = invoke(["export", "--from-onnx", str(resnet18_ts13.path), "--method", ",".join(methods), "--topk", "2",
                     "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert f"{', '.join(methods[:-1])} and {methods[-1]} of top-2 at" in result.stdout
    info = GraphInfo.read(out)
    assert info.all_methods == methods and info.method == methods[0]
    x = _x(resnet18_ts13, 2)
    whole = run_graph(out, x)
    assert list(whole) == ["logits", "classes", "scores", "cams", *(f"cams_{m}" for m in methods[1:])]
    for method in methods:
        alone = run_graph(explain_graph(resnet18_ts13.path, tmp_path / f"{method}.onnx", method=method, topk=2).path, x)
        np.testing.assert_array_equal(whole["classes"], alone["classes"])
        np.testing.assert_allclose(whole[info.output_for(method)], alone["cams"], atol=1e-6, err_msg=method)


@pytest.mark.parametrize(("method", "fixed"), [("counterfactual", 0), ("finercam", None)])
def test_the_real_mobilenet_v2s_counterfactual_and_finercam_are_livecams_own(method: str, fixed: int | None,
                                                                            mobilenet_v2_ts17: ThirdParty,
                                                                            tmp_path: Path) -> None:
    """On real weights and photographs (opset 17): the maps equal livecam's own export of the same weights (1e-4),
    and are drawn. Finer-CAM explains the top 2 classes against their real look-alikes; the counterfactual map
    explains tench (class 0), which the photographs are not (for their own top classes every cell of the pooled
    map adds to the class, and the counterfactual map is blank)."""
    from livecam.export import export_explainer

    graph = mobilenet_v2_ts17
    topk = 1 if fixed is not None else 2
    label = None if fixed is None else str(fixed)
    explained = explain_graph(graph.path, tmp_path / "m.onnx", method=method, topk=topk, target_class=label,
                              inputs=_inputs(graph))
    assert GraphInfo.read(explained.path).method == method
    own = export_explainer(graph.reference(), tmp_path / "own.onnx", method=method, topk=topk, target_class=fixed,
                           input_size=graph.size)
    x = _x(graph, 2)
    ours, theirs = _batched(explained.path, x), _batched(own, x)
    np.testing.assert_array_equal(ours["classes"], theirs["classes"])
    np.testing.assert_allclose(ours["cams"], theirs["cams"], atol=1e-4)
    assert np.allclose(ours["cams"].max(axis=(2, 3)), 1.0)


def test_a_head_that_is_not_gap_linear_gets_eigencam_and_says_why(convnext_ts13: ThirdParty, own_export,
                                                                   tmp_path: Path) -> None:
    """timm's ConvNeXt ends GAP -> LayerNorm -> Linear: eigencam at the last map before the head, equal to livecam's
    own eigencam export; a gradient method there is refused, naming the head."""
    explained = explain_graph(convnext_ts13.path, tmp_path / "c.onnx", topk=2, inputs=_inputs(convnext_ts13))
    assert explained.method == "eigencam" and explained.layer == convnext_ts13.feature_map
    # opset 13 has no LayerNormalization: the exporter writes it out (Sub, Div, Mul, Add) between the transposes
    assert any(note.startswith("eigencam, as the head is GlobalAveragePool -> Transpose -> Sub") and "-> Gemm, not "
               in note for note in explained.notes), explained.notes
    x = _x(convnext_ts13, 1)
    ours, own = run_graph(explained.path, x), run_graph(own_export(convnext_ts13, "eigencam"), x)
    np.testing.assert_array_equal(ours["classes"], own["classes"])
    np.testing.assert_allclose(ours["cams"], own["cams"], atol=1e-4)
    with pytest.raises(LivecamError, match=r"gradcam cannot run inside this graph .*Transpose -> Sub.*eigencam"):
        explain_graph(convnext_ts13.path, tmp_path / "g.onnx", method="gradcam")
    assert not (tmp_path / "g.onnx").exists()


def test_another_tensor_is_eigencam_only(resnet18_ts13: ThirdParty, tmp_path: Path) -> None:
    import onnx

    model = onnx.load(str(resnet18_ts13.path))
    earlier = next(n.output[0] for n in model.graph.node if "layer3" in n.name and n.op_type == "Relu")
    with pytest.raises(LivecamError, match=r"closed form only at '.*'.*use method eigencam"):
        explain_graph(resnet18_ts13.path, tmp_path / "l.onnx", layer=earlier, method="gradcam")
    with pytest.raises(LivecamError, match=r"^cam cannot run inside this graph at"):  # each method is checked
        explain_graph(resnet18_ts13.path, tmp_path / "l.onnx", layer=earlier, method="eigencam,cam")
    explained = explain_graph(resnet18_ts13.path, tmp_path / "l.onnx", layer=earlier)
    assert explained.method == "eigencam" and GraphInfo.read(explained.path).feature_size == (14, 14)
    with pytest.raises(LivecamError, match="has no tensor 'nope'"):
        explain_graph(resnet18_ts13.path, tmp_path / "n.onnx", layer="nope")


def test_what_livecam_assumes_is_in_the_metadata_and_the_users_words_win(resnet18_ts13: ThirdParty,
                                                                         tmp_path: Path) -> None:
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"thing {i}\n" for i in range(1000)))
    plain = GraphInfo.read(explain_graph(resnet18_ts13.path, tmp_path / "a.onnx").path)
    assert plain.assumed == "pixels in [0, 1]; RGB; ImageNet mean and std; ImageNet class names (1000 outputs)"
    assert plain.preprocess.size == (224, 224) and plain.class_names[281] == "tabby"
    told = InputOptions(None, (127.5, 127.5, 127.5), (127.5, 127.5, 127.5), 255.0, False, labels)
    info = GraphInfo.read(explain_graph(resnet18_ts13.path, tmp_path / "b.onnx", inputs=told).path)
    assert info.assumed == "" and info.class_names[7] == "thing 7" and "BGR" in info.source
    assert info.preprocess.mean == pytest.approx((0.5, 0.5, 0.5)) and info.preprocess.std == pytest.approx((0.5,) * 3)


def test_a_fixed_batch_graph_runs_a_frame_at_a_time_in_the_engine(resnet18_dynamo: ThirdParty, tmp_path: Path
                                                                  ) -> None:
    from livecam.engines.runtime.engine import RuntimeEngine

    explained = explain_graph(resnet18_dynamo.path, tmp_path / "d.onnx", inputs=_inputs(resnet18_dynamo))
    frames = [photo_bgr(name) for name in ("chelsea", "coffee", "astronaut")]
    with RuntimeEngine(explained.path, device="cpu") as engine:
        together = engine.explain(frames)
        alone = [engine.explain([frame]) for frame in frames]
    assert together.cams.shape[0] == 3
    np.testing.assert_allclose(together.cams, np.concatenate([a.cams for a in alone]), atol=1e-6)


def test_the_cli_runs_a_third_party_graph_without_torch(mobilenet_v2_ts17: ThirdParty, tmp_path: Path) -> None:
    """torch made unimportable: the real MobileNetV2 graph explained, cached, and run end to end on a real photo."""
    image = tmp_path / "cat.png"
    cv2.imwrite(str(image), photo_bgr("chelsea"))
    code = ("import sys; from livecam.cli import main; sys.argv = ['livecam', '--source', sys.argv[1], '--model', "
            "sys.argv[2], '--no-show', '--log', sys.argv[3], '--overwrite']; main()")
    env = {"LIVECAM_CACHE_DIR": str(tmp_path / "cache")}
    for _ in range(2):  # explained, then found in the cache
        proc = subprocess.run([sys.executable, "-c", NO_TORCH + code, str(image), str(mobilenet_v2_ts17.path),
                               str(tmp_path / "l.jsonl")], capture_output=True, text=True, timeout=300,
                              env={**os.environ, **env})
        assert proc.returncode == 0, proc.stderr
        assert "gradcam of the top class at layer" in proc.stderr and "assumed: pixels in [0, 1]" in proc.stderr
        line = json.loads((tmp_path / "l.jsonl").read_text().splitlines()[0])
        assert line["labels"][0]["name"] in CAT_CLASSES, line
    assert len(list((tmp_path / "cache" / "graphs").glob("*.onnx"))) == 1


@pytest.mark.parametrize("bad", ["bad_several_outputs", "bad_no_feature_map", "bad_not_logits", "bad_truncated",
                                 "bad_missing_data"])
def test_a_graph_that_is_not_a_classifier_is_one_line(bad: str, request: pytest.FixtureRequest,
                                                      tmp_path: Path) -> None:
    words = {"bad_several_outputs": "livecam cannot tell which are the logits",
             "bad_no_feature_map": "not an image batch (N, 3, H, W)", "bad_not_logits": "not (N, classes)",
             "bad_truncated": "is not an ONNX file onnx can read", "bad_missing_data": "which is missing from"}[bad]
    graph = request.getfixturevalue(bad)
    with pytest.raises(GraphError, match=re.escape(words)):
        explain_graph(graph.path, tmp_path / "x.onnx")
    image = tmp_path / "cat.png"
    cv2.imwrite(str(image), photo_bgr("chelsea"))
    assert_one_line_error(invoke(["--source", str(image), "--model", str(graph.path), "--no-show"]), words)
    assert_one_line_error(invoke(["export", "--from-onnx", str(graph.path), "--output", str(tmp_path / "e.onnx")]),
                          words)
    assert not (tmp_path / "e.onnx").exists() and not (tmp_path / "x.onnx").exists()


def test_export_from_onnx_works_with_the_readmes_onnxruntime_example(mobilenet_v2_ts17: ThirdParty,
                                                                     tmp_path: Path) -> None:
    """The explained graph needs nothing of livecam: the README's onnxruntime-only example names a cat."""
    out = tmp_path / "lite0.onnx"  # the name the example opens
    result = invoke(["export", "--from-onnx", str(mobilenet_v2_ts17.path), "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "gradcam of top-1" in result.output and "fp32" in result.output
    block = re.search(r"<!-- example: onnxruntime alone -->\n```python\n(.*?)```", README.read_text(), re.S)
    cv2.imwrite(str(tmp_path / "cat.jpg"), photo_bgr("chelsea"))
    no_livecam = "import sys\nfor name in ('torch', 'livecam'):\n    sys.modules[name] = None\n"
    proc = subprocess.run([sys.executable, "-c", no_livecam + block.group(1)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].rsplit(" ", 1)[0] in CAT_CLASSES, proc.stdout
    again = invoke(["export", "--from-onnx", str(mobilenet_v2_ts17.path), "--output", str(out)])
    assert_one_line_error(again, "exists")
