"""livecam bench: honest statistics, every column filled, files that open; and the peer agrees with us."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

import livecam
from livecam.bench import Stat, parse_size, run_bench
from livecam.cli import main
from livecam.errors import LivecamError


def test_stat_median_and_p95() -> None:
    seconds = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    stat = Stat.of(seconds)
    assert stat.n == 100 and stat.median_ms == pytest.approx(50.5)
    assert stat.p95_ms == pytest.approx(float(np.percentile(np.arange(1, 101), 95, method="nearest")), abs=1)
    assert Stat.of([]) == Stat(0.0, 0.0, 0)


def test_parse_size() -> None:
    assert parse_size("1280x720") == (1280, 720)
    assert parse_size(None) is None
    with pytest.raises(LivecamError, match="like 1280x720"):
        parse_size("720p")
    with pytest.raises(LivecamError, match="out of range"):
        parse_size("8x8")


def test_run_bench_fills_every_column(lite0) -> None:
    result = run_bench(lite0, frames=16, warmup=2, size=(320, 180), peer=False)
    assert list(result.stages) == ["decode", "preprocess", "forward", "backward", "cam", "render", "encode"]
    for stat in (*result.stages.values(), result.step, result.explain, result.floor):
        assert stat.n > 0 and 0 < stat.median_ms <= stat.p95_ms
    assert result.step.median_ms >= result.explain.median_ms
    assert result.pipeline_fps > 0 and result.config["size"] == [320, 180]
    assert set(result.rss_mb) == {"start", "after 10% of frames", "end"}
    data = json.loads(result.to_json())
    assert data["ratios"]["explain / floor"] > 0 and data["config"]["model"] == "efficientnet_lite0"
    table = result.markdown()
    assert "| forward |" in table and "floor: plain inference" in table and "FPS" in table


def test_run_bench_on_the_device_path(lite0) -> None:
    """The device path's stages (upload, on-device render, download), here on the CPU."""
    result = run_bench(lite0, frames=12, warmup=2, size=(320, 180), peer=False, renderer="device")
    assert list(result.stages) == ["decode", "upload", "preprocess", "forward", "backward", "cam", "render",
                                   "download", "encode"]
    assert result.step.n == 12 and result.explain.median_ms > 0 and result.pipeline_fps > 0
    assert result.config["graph"] is False  # no CUDA graphs on the CPU


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


def test_bench_with_the_peer_and_the_cli_outputs(lite0, tmp_path: Path) -> None:
    pytest.importorskip("pytorch_grad_cam")
    pytest.importorskip("matplotlib")
    paths = [tmp_path / "b.json", tmp_path / "b.md", tmp_path / "b.png"]
    result = CliRunner().invoke(main, ["bench", "--frames", "12", "--warmup", "2", "--size", "320x180",
                                       "--json", str(paths[0]), "--markdown", str(paths[1]), "--plot", str(paths[2])])
    assert result.exit_code == 0, result.output
    data = json.loads(paths[0].read_text())
    assert data["peer"]["median_ms"] > 0 and data["peer_pipeline_fps"] > 0
    assert data["ratios"]["peer / livecam step"] > 0
    assert "peer: pytorch-grad-cam" in paths[1].read_text()
    image = cv2.imread(str(paths[2]))
    assert image is not None and image.shape[0] > 100


def test_bench_refuses_bad_input(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["bench", "--size", "big"])
    assert result.exit_code == 2 and "like 1280x720" in result.stderr
    result = runner.invoke(main, ["bench", "--json", str(tmp_path / "no" / "b.json")])
    assert result.exit_code == 2 and "does not exist" in result.stderr
