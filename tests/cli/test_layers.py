"""``livecam layers`` on a seeded timm ViT and a random ResNet-18, its refusals, and the run header of a ViT."""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
import torch

from tests.conftest import assert_one_line_error, invoke, photo_bgr

timm = pytest.importorskip("timm")
pytestmark = pytest.mark.usefixtures("one_torch_thread")
VIT = "timm:vit_tiny_patch16_224"


@pytest.fixture(scope="module")
def vit_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from safetensors.torch import save_file

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("vit") / "vit_tiny.safetensors"
    save_file(timm.create_model("vit_tiny_patch16_224", pretrained=False).state_dict(), str(path))
    return path


def table_rows(output: str) -> dict[str, list[str]]:
    """The table's rows by layer name: [mark, module, output, layout, methods] ('' mark when not the default)."""
    rows = {}
    for line in output.splitlines():
        if line.startswith(("*  ", "   ")):
            mark, rest = line[:3].strip(), line[3:]
            cells = [c for c in rest.split("  ") if c.strip()]
            rows[cells[0].strip()] = [mark, *(c.strip() for c in cells[1:])]
    return rows


def test_a_vit_lists_its_token_layers_and_marks_the_last_blocks_first_norm(vit_weights: Path) -> None:
    result = invoke(["layers", "--model", VIT, "--weights", str(vit_weights)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"{VIT} ({vit_weights}), input 224x224, 1000 classes; default layer "
                                    "blocks.11.norm1 (tokens 14x14 + 1 prefix)")
    rows = table_rows(result.output)
    assert rows["blocks.11.norm1"] == ["*", "LayerNorm", "1x197x192", "tokens 14x14 + 1 prefix",
                                       "autograd; eigencam exports"]
    assert [name for name, row in rows.items() if row[0] == "*"] == ["blocks.11.norm1"]
    assert rows["norm"][1:] == ["LayerNorm", "1x197x192", "tokens 14x14 + 1 prefix", "zero gradient; eigencam only"]
    assert "the head after blocks.11.norm1: a class-token head (one Linear layer on prefix token 0)" in result.output


def test_resnet18_marks_layer4_exact_and_all_lists_the_leaves(tmp_path: Path) -> None:
    result = invoke(["layers", "--model", "resnet18", "--weights", "random"])
    assert result.exit_code == 0, result.output
    rows = table_rows(result.output)
    assert rows["layer4"] == ["*", "Sequential", "1x512x7x7", "NCHW 7x7", "exact, all export"]
    assert "fc" not in rows and "layer4.1.conv2" not in rows  # leaves are left out by default
    everything = table_rows(invoke(["layers", "--model", "resnet18", "--weights", "random", "--all"]).output)
    assert everything["fc"] == ["", "Linear", "1x1000", "none: 2 dimensions, not a (N, C, H, W) map or an "
                                "(N, T, C) token sequence", "-"]
    assert everything["layer4.1.conv2"][1:] == ["Conv2d", "1x512x7x7", "NCHW 7x7", "autograd; eigencam exports"]
    assert "the head after layer4: global average pooling and one Linear layer" in result.output


def test_a_graph_file_and_an_unknown_model_are_one_line_errors(tmp_path: Path) -> None:
    graph = tmp_path / "model.onnx"
    graph.write_bytes(b"")
    assert_one_line_error(invoke(["layers", "--model", str(graph)]),
                          f"livecam layers probes a PyTorch model, and {graph} is an exported graph")
    assert_one_line_error(invoke(["layers", "--model", "resnet19", "--weights", "random"]),
                          "unknown model 'resnet19' (did you mean resnet18")


def test_a_vit_run_names_its_layer_and_layout_and_refuses_the_head(vit_weights: Path, tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    cv2.imwrite(str(image), photo_bgr("chelsea"))
    run = ["--model", VIT, "--weights", str(vit_weights), "--source", str(image), "--no-show", "--max-frames", "2"]
    result = invoke(run)
    assert result.exit_code == 0, result.output
    header = result.stderr.splitlines()[0]
    assert "timm vit_tiny_patch16_224" in header and "at layer blocks.11.norm1 (tokens 14x14 + 1 prefix)" in header
    assert_one_line_error(invoke([*run, "--layer", "head"]),
                          "layer 'head' outputs (1, 1000), which has no spatial layout: 2 dimensions, not a "
                          "(N, C, H, W) map or an (N, T, C) token sequence")
