"""The third-party graphs are what tests/graphs/thirdparty.py says they are, so that livecam's tests can trust them.

Each good graph: valid ONNX at the opset asked, its batch fixed or dynamic as asked, its input laid out as
claimed, its last nodes the chain claimed, and its logits and feature map those of the livecam model its record
names (the same weights), on real photographs. Each bad graph: bad in the way claimed, and only in that way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import shape_inference

from tests.conftest import CAT_CLASSES
from tests.graphs.thirdparty import BAD_GRAPHS, GOOD_GRAPHS, BadGraph, ThirdParty, computing_nodes, run_graph, tail

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TOL = 1e-4  # of a float32 graph against the same float32 module, relative to the largest value


@pytest.fixture(params=GOOD_GRAPHS)
def good(request: pytest.FixtureRequest) -> ThirdParty:
    graph: ThirdParty = request.getfixturevalue(request.param)
    return graph


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param if d.HasField("dim_param") else d.dim_value for d in value.type.tensor_type.shape.dim]


def _opset(model: onnx.ModelProto) -> int:
    return int(next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")))


def _shapes(path: Path) -> dict[str, list[int | str]]:
    """Every tensor's inferred shape (inputs, intermediates, outputs), from the structure only."""
    model = shape_inference.infer_shapes(onnx.load(str(path), load_external_data=False))
    graph = model.graph
    return {v.name: _dims(v) for v in (*graph.input, *graph.value_info, *graph.output)}


def _reader(path: Path, tensor: str) -> onnx.NodeProto:
    """The one node that reads ``tensor``."""
    (node,) = [n for n in computing_nodes(path) if tensor in n.input]
    return node


def _relative(actual: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(actual.astype(np.float64) - reference).max() / max(1.0, float(np.abs(reference).max())))


def test_good_graph_is_valid_at_its_opset_batch_and_layout(good: ThirdParty) -> None:
    onnx.checker.check_model(str(good.path), full_check=True)  # by path: external data and large graphs too
    model = onnx.load(str(good.path), load_external_data=False)
    assert _opset(model) == good.opset
    (graph_input,), (output,) = model.graph.input, model.graph.output  # no initializer listed as an input
    h, w = good.size
    pixels: list[int | str] = [3, h, w] if good.layout == "nchw" else [h, w, 3]
    batch = _dims(graph_input)[0]
    assert _dims(graph_input)[1:] == pixels
    assert isinstance(batch, str) and batch if good.batch is None else batch == good.batch
    assert output.name == "logits" and _dims(output) == [batch, good.classes]
    assert tail(good.path, len(good.chain)) == good.chain
    feature = _shapes(good.path)[good.feature_map]
    assert len(feature) == 4 and feature[0] == batch, feature


def test_good_graph_computes_its_reference_models_logits_and_feature_map(good: ThirdParty,
                                                                         tmp_path: Path) -> None:
    ref = good.reference()
    assert (ref.target_layer, ref.head.kind, ref.info.num_classes) == (good.expected_layer_hint, good.head,
                                                                       good.classes)
    assert (ref.preprocess.size, ref.preprocess.mean, ref.preprocess.std) == (good.size, good.mean, good.std)
    # the graph with its feature map as a second output
    model = onnx.load(str(good.path))
    model.graph.output.append(onnx.helper.make_tensor_value_info(good.feature_map, onnx.TensorProto.FLOAT, None))
    exposed = tmp_path / "exposed.onnx"
    onnx.save(model, str(exposed))
    x = good.photos(2)
    step = good.batch or len(x)
    runs = [run_graph(exposed, x[i:i + step]) for i in range(0, len(x), step)]
    logits = np.concatenate([r["logits"] for r in runs])
    feature = np.concatenate([r[good.feature_map] for r in runs])
    stored: list[torch.Tensor] = []
    hook = ref.module.get_submodule(good.expected_layer_hint).register_forward_hook(
        lambda _m, _i, out: stored.append(out))
    try:
        with torch.no_grad():
            want = ref.module(torch.from_numpy(x if good.layout == "nchw" else x.transpose(0, 3, 1, 2).copy()))
    finally:
        hook.remove()
    assert logits.shape == (2, good.classes) and feature.shape == tuple(stored[0].shape)
    errors = _relative(logits, want.double().numpy()), _relative(feature, stored[0].double().numpy())
    print(f"{good.path.name}: relative error of the logits {errors[0]:.1e}, of the feature map {errors[1]:.1e}")
    assert max(errors) < TOL, errors
    if good.model == "mobilenet_v2":  # the real weights: chelsea is a cat, coffee an espresso
        top = [ref.class_names[int(i)] for i in logits.argmax(1)]
        assert top[0] in CAT_CLASSES and top[1] == "espresso", top


def test_the_two_exporters_write_their_own_heads(resnet18_ts13: ThirdParty, resnet18_dynamo: ThirdParty) -> None:
    assert resnet18_ts13.chain == ("Relu", "GlobalAveragePool", "Flatten", "Gemm")
    assert resnet18_dynamo.chain == ("Relu", "ReduceMean", "Reshape", "Gemm")
    assert (resnet18_ts13.exporter, resnet18_dynamo.exporter) == ("torchscript", "dynamo")
    # dynamo's ReduceMean takes its axes as an input (opset 18): negative, [-1, -2], keeping them; then a fixed Reshape
    mean, reshape = computing_nodes(resnet18_dynamo.path)[-3:-1]
    values = {i.name: onnx.numpy_helper.to_array(i).tolist()
              for i in onnx.load(str(resnet18_dynamo.path)).graph.initializer}
    keepdims = {a.name: a.i for a in mean.attribute}["keepdims"]
    assert (values[mean.input[1]], keepdims, values[reshape.input[1]]) == ([-1, -2], 1, [1, 512])


def test_the_nhwc_input_graph_takes_channels_last(resnet18_nhwc: ThirdParty) -> None:
    first = _reader(resnet18_nhwc.path, "input")
    assert first.op_type == "Transpose" and list(first.attribute[0].ints) == [0, 3, 1, 2]
    x = resnet18_nhwc.photos(1)
    assert x.shape == (1, 224, 224, 3)
    with pytest.raises(Exception, match="(?i)invalid|dimension"):
        run_graph(resnet18_nhwc.path, np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def test_the_tf2onnx_head_pools_channels_last_and_multiplies(tf2onnx_head: ThirdParty) -> None:
    transpose, mean, matmul, add = computing_nodes(tf2onnx_head.path)[-4:]
    attributes = {a.name: onnx.helper.get_attribute_value(a) for a in mean.attribute}
    assert list(transpose.attribute[0].ints) == [0, 2, 3, 1] and transpose.input[0] == tf2onnx_head.feature_map
    assert attributes == {"axes": [1, 2], "keepdims": 0}  # opset 13: axes an attribute
    assert (mean.input[0], matmul.input[0], add.input[0]) == (transpose.output[0], mean.output[0], matmul.output[0])
    shapes = _shapes(tf2onnx_head.path)
    assert shapes[tf2onnx_head.feature_map][1:] == [32, 12, 16] and shapes[transpose.output[0]][1:] == [12, 16, 32]
    assert shapes[mean.output[0]][1:] == [32]
    graph = onnx.load(str(tf2onnx_head.path))
    kernel = {i.name: i for i in graph.graph.initializer}[matmul.input[1]]
    assert list(kernel.dims) == [32, 10]  # a (C, K) kernel, as Keras' Dense keeps it
    first = _reader(tf2onnx_head.path, "input")
    assert first.op_type == "Transpose" and list(first.attribute[0].ints) == [0, 3, 1, 2]


def test_the_external_data_graph_keeps_its_weights_beside_it(resnet18_external: ThirdParty,
                                                             resnet18_ts13: ThirdParty) -> None:
    data = resnet18_external.path.with_name(f"{resnet18_external.path.name}.data")
    assert data.is_file() and resnet18_external.path.stat().st_size < 1_000_000
    model = onnx.load(str(resnet18_external.path), load_external_data=False)
    external = [i for i in model.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL]
    assert len(external) >= 20 and resnet18_external.path.stat().st_size + data.stat().st_size > 40_000_000
    x = resnet18_external.photos(2)
    assert np.array_equal(run_graph(resnet18_external.path, x)["logits"], run_graph(resnet18_ts13.path, x)["logits"])


# --- the bad graphs

def test_each_bad_graph_is_there(request: pytest.FixtureRequest) -> None:
    flaws = {request.getfixturevalue(name).flaw for name in BAD_GRAPHS}
    assert flaws == {"several_outputs", "no_feature_map", "not_logits", "truncated", "missing_external_data"}


def test_several_outputs_none_of_them_the_logits(bad_several_outputs: BadGraph) -> None:
    onnx.checker.check_model(str(bad_several_outputs.path), full_check=True)
    out = run_graph(bad_several_outputs.path, np.zeros((2, 3, 64, 64), np.float32))
    assert {name: v.shape for name, v in out.items()} == {"output_0": (2, 10), "output_1": (2, 4)}


def test_no_feature_map_has_no_4d_tensor(bad_no_feature_map: BadGraph) -> None:
    onnx.checker.check_model(str(bad_no_feature_map.path), full_check=True)
    shapes = _shapes(bad_no_feature_map.path)
    assert shapes and all(len(s) <= 2 for s in shapes.values()), shapes
    assert run_graph(bad_no_feature_map.path, np.zeros((2, 3072), np.float32))["logits"].shape == (2, 10)


def test_not_logits_outputs_a_map(bad_not_logits: BadGraph) -> None:
    onnx.checker.check_model(str(bad_not_logits.path), full_check=True)
    out = run_graph(bad_not_logits.path, np.zeros((2, 3, 64, 64), np.float32))
    assert {name: v.shape for name, v in out.items()} == {"masks": (2, 5, 32, 32)}


def test_the_truncated_graph_does_not_load(bad_truncated: BadGraph, resnet18_ts13: ThirdParty) -> None:
    assert bad_truncated.path.read_bytes() == resnet18_ts13.path.read_bytes()[:bad_truncated.path.stat().st_size]
    with pytest.raises(Exception, match="(?i)error|pars|decod|truncat"):
        onnx.load(str(bad_truncated.path))
    with pytest.raises(Exception, match="(?i)fail|invalid|protobuf"):
        run_graph(bad_truncated.path, resnet18_ts13.photos(1))


def test_the_graph_without_its_data_file_does_not_load(bad_missing_data: BadGraph,
                                                        resnet18_ts13: ThirdParty) -> None:
    model = onnx.load(str(bad_missing_data.path), load_external_data=False)  # the graph itself is whole
    locations = {entry.value for i in model.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL
                 for entry in i.external_data if entry.key == "location"}
    assert len(locations) == 1 and not (bad_missing_data.path.parent / locations.pop()).exists()
    with pytest.raises(Exception, match="(?i)no such file|not exist|not found|not regular file"):
        onnx.load(str(bad_missing_data.path))
    with pytest.raises(Exception, match="(?i)exist|not found|no such file"):
        run_graph(bad_missing_data.path, resnet18_ts13.photos(1))
