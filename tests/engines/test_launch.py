"""Which engine runs: ONNX Runtime where it can, PyTorch where it must; the graph cache and its key."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from livecam.engines import launch
from livecam.engines.launch import EngineOptions, graph_cache_path, open_engine, runtime_refusal, weights_file
from livecam.errors import LivecamError, option
from tests.conftest import run_without_torch


def test_runtime_refusal_says_when_pytorch_must_run() -> None:
    cpu = EngineOptions(device="cpu")
    assert runtime_refusal(cpu) is None
    assert runtime_refusal(EngineOptions(device="auto"), gpus=0) is None
    assert "CUDA" in runtime_refusal(EngineOptions(device="auto"), gpus=1)
    assert runtime_refusal(EngineOptions(device="auto", backend="onnx"), gpus=1) is None
    assert runtime_refusal(EngineOptions(device="tensorrt"), gpus=1) is None
    for options, reason in [(EngineOptions(device="cpu", backend="torch"), f"{option('backend')} torch"),
                            (EngineOptions(device="cpu", method="scorecam"), "second pass"),
                            (EngineOptions(device="cpu", method="guided"), "second pass"),
                            (EngineOptions(device="cpu", view="guided"), "guided view"),
                            (EngineOptions(device="cpu", precision="bf16"), "bf16"),
                            (EngineOptions(device="cpu", weights="random"), "untrained"),
                            (EngineOptions(device="cuda"), "CUDA")]:
        assert reason in runtime_refusal(options)


def test_the_zoo_model_runs_from_its_cached_graph_without_torch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              chelsea_bgr) -> None:
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))
    from livecam import export

    calls = []
    real = export.export_explainer
    monkeypatch.setattr(export, "export_explainer", lambda *a, **k: calls.append(k) or real(*a, **k))
    first = open_engine(EngineOptions(device="cpu"))
    assert first.backend == "onnx" and len(calls) == 1
    second = open_engine(EngineOptions(device="cpu"))  # the cache: no second export
    assert len(calls) == 1 and second.engine.path == first.engine.path
    assert first.engine.path.parent == tmp_path / "graphs"
    code = ("from livecam.engines.launch import EngineOptions, open_engine\n"
            "launched = open_engine(EngineOptions(device='cpu'))\n"
            "print(launched.backend, launched.engine.path)\n"
            "print(sorted(m for m in ('torch', 'torchvision') if sys.modules.get(m)))")
    proc = run_without_torch(code, {"LIVECAM_CACHE_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["onnx", str(first.engine.path), "[]"]
    # panels and another method are other graphs; a fixed class too
    assert open_engine(EngineOptions(device="cpu", topk=2, panels=True)).engine.info.topk == 2
    assert open_engine(EngineOptions(device="cpu", method="eigencam")).engine.info.method == "eigencam"
    assert open_engine(EngineOptions(device="cpu", target_class="tabby")).engine.info.target_class == 281
    assert len(calls) == 4 and len(list((tmp_path / "graphs").glob("*.onnx"))) == 4


def test_the_cache_key_follows_the_weights_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))
    weights = tmp_path / "w.pt"
    weights.write_bytes(b"x" * 10)
    key = graph_cache_path("resnet18", weights, "gradcam", None, 1, None, "fp32")
    assert key == graph_cache_path("resnet18", weights, "gradcam", None, 1, None, "fp32")
    os.utime(weights, ns=(1, 1))
    assert graph_cache_path("resnet18", weights, "gradcam", None, 1, None, "fp32") != key
    assert len(launch._export_code()) == 16
    key = graph_cache_path("resnet18", weights, "gradcam", None, 1, None, "fp32")
    monkeypatch.setattr(launch, "_export_code", lambda: "other code")  # a change to the exporter or the methods
    assert graph_cache_path("resnet18", weights, "gradcam", None, 1, None, "fp32") != key
    assert weights_file("resnet18", str(weights)) == weights.resolve()
    assert weights_file("resnet18", "random") is None and weights_file("resnet18", None) is None
    assert weights_file("efficientnet_lite0", None).name.endswith(".pth")


def test_heads_without_a_closed_form_fall_back_to_pytorch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path))
    weights = tmp_path / "mnv3.pt"
    torch.manual_seed(0)
    import torchvision

    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), weights)
    options = EngineOptions(model="mobilenet_v3_small", weights=str(weights), device="cpu")
    assert open_engine(options).backend == "torch"  # Grad-CAM needs autograd behind this head
    with pytest.raises(LivecamError, match="eigencam"):
        open_engine(EngineOptions(model="mobilenet_v3_small", weights=str(weights), device="cpu", backend="onnx"))
    assert open_engine(EngineOptions(model="mobilenet_v3_small", weights=str(weights), device="cpu",
                                     method="eigencam")).backend == "onnx"
    assert not list(tmp_path.rglob("*.partial*"))


FACTORY = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(8, 3))


build.class_names = ["red", "green", "blue"]
build.input_size = 32
'''


def test_a_factory_model_is_cached_by_its_source_file_under_a_safe_name(tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "nets" / "net.py"
    source.parent.mkdir()
    source.write_text(FACTORY)
    spec = f"{source}:build"
    from livecam import export

    calls = []
    real = export.export_explainer
    monkeypatch.setattr(export, "export_explainer", lambda *a, **k: calls.append(k) or real(*a, **k))
    first = open_engine(EngineOptions(model=spec, device="cpu"))
    assert first.backend == "onnx" and len(calls) == 1
    path = first.engine.path
    assert path.parent == tmp_path / "cache" / "graphs" and "nets-net.py-build-gradcam-" in path.name
    assert list(source.parent.iterdir()) == [source]  # nothing written beside the user's file
    assert open_engine(EngineOptions(model=spec, device="cpu")).engine.path == path and len(calls) == 1
    os.utime(source, ns=(1, 1))  # the source changed: a new graph
    assert open_engine(EngineOptions(model=spec, device="cpu")).engine.path != path and len(calls) == 2


def test_model_files_are_what_a_model_is_made_of(tmp_path: Path) -> None:
    from livecam.paths import model_files

    folder = tmp_path / "vit"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    assert model_files(str(folder), None) is None  # no weights in the folder: loading says what is wrong
    (folder / "model.safetensors").write_bytes(b"x")
    config, own = (folder / "config.json").resolve(), (folder / "model.safetensors").resolve()
    assert model_files(str(folder), None) == [config, own]
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(b"y")
    assert model_files(str(folder), str(weights)) == [(folder / "config.json").resolve(), weights.resolve()]
    assert model_files("timm:resnet18", str(weights)) == [weights.resolve()]
    assert model_files("timm:resnet18", None) is None and model_files("resnet18", None) is None
    assert model_files("pkg.module:build", None) is None  # the package's file is known once imported
    assert model_files(str(folder), "random") is None


def test_live_controls_get_graphs_of_the_top_classes_and_other_methods_in_the_background(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With live controls a zoo model's graph explains the top-K (panels and ranks can be chosen), and another
    method's graph is exported into the cache once, in a thread, while the old one runs."""
    import time

    import numpy as np

    from livecam import export
    from livecam.types import Frame

    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "net.py"
    source.write_text(FACTORY)
    calls = []
    real = export.export_explainer
    monkeypatch.setattr(export, "export_explainer", lambda *a, **k: calls.append(k) or real(*a, **k))
    engine = open_engine(EngineOptions(model=f"{source}:build", device="cpu", live=True)).engine
    assert engine.info.topk == 3 and engine.max_rank == 3 and engine.can_show_panels
    assert engine.live_methods()[0] == "gradcam" and set(engine.live_methods()) >= {"cam", "eigencam", "layercam"}
    frame = Frame(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8), 0, 0.0)
    end = time.monotonic() + 120
    while not engine.switch_method("cam"):  # exported in the background; the old graph goes on meanwhile
        assert engine.process(frame).explanation.method == "gradcam"
        assert time.monotonic() < end, "the graph never came"
    assert engine.method == "cam" and engine.process(frame).explanation.method == "cam"
    assert [k["method"] for k in calls] == ["gradcam", "cam"] and {k["topk"] for k in calls} == {3}
    again = open_engine(EngineOptions(model=f"{source}:build", device="cpu", live=True, method="cam")).engine
    assert again.path == engine.path and len(calls) == 2  # the graph made live is the cache's
    assert open_engine(EngineOptions(model=f"{source}:build", device="cpu")).engine.info.topk == 1  # not live
