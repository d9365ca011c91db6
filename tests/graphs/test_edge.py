"""livecam export --precision int8 (and --from-onnx): calibrated on real frames, the fidelity printed and kept in the
graph, the graph run by the engine; an agreement under --min-agreement refused, leaving no file."""

from __future__ import annotations

from pathlib import Path

import pytest

from livecam.engines.runtime.graph import GraphInfo, read_metadata
from tests.conftest import assert_one_line_error, invoke
from tests.graphs.thirdparty import ThirdParty


def test_a_zoo_model_in_int8_keeps_fp32s_classes_on_the_demo_clip(tmp_path: Path, cat_video: Path) -> None:
    from livecam.engines.runtime.engine import RuntimeEngine
    from livecam.sources import open_source

    out = tmp_path / "lite0-int8.onnx"
    result = invoke(["export", "--precision", "int8", "--calibrate", "demo", "--output", str(out)])
    assert result.exit_code == 0, result.output
    assert "int8; top-1 agrees on" in result.output and "held-out frames; map correlation median" in result.output
    meta = read_metadata(out)
    assert meta["precision"] == "int8" and meta["calibration"] == "minmax" and meta["calibration_frames"] == "32"
    # the targets, on frames of the demo clip (scikit-image's photographs) held out from calibration
    assert float(meta["int8_agreement"]) >= 0.95 and float(meta["int8_median_correlation"]) >= 0.99, meta
    assert int(meta["int8_frames"]) >= 32
    info = GraphInfo.read(out)
    assert (info.model, info.method, info.precision) == ("efficientnet_lite0", "gradcam", "int8")
    with RuntimeEngine(out, device="cpu") as engine, open_source(str(cat_video)) as source:
        frame = next(iter(source))
        annotated = engine.process(frame)
    assert "in int8" in engine.description and annotated.labels[0].name in {"tabby", "tiger cat", "Egyptian cat"}


def test_under_min_agreement_export_fails_and_writes_nothing(tf2onnx_head: ThirdParty, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            caplog: pytest.LogCaptureFixture) -> None:
    import livecam.graphs.quantize as quantize

    out = tmp_path / "edge.onnx"
    real = quantize.fidelity

    def halved(*args, **kwargs):
        f = real(*args, **kwargs)
        return quantize.Fidelity(f.frames, 0.5, f.median_correlation, f.worst_correlation)

    monkeypatch.setattr(quantize, "fidelity", halved)
    args = ["export", "--from-onnx", str(tf2onnx_head.path), "--precision", "int8", "--calibrate", "demo",
            "--calibration-frames", "8", "--input-size", "128x96", "--output", str(out)]
    assert_one_line_error(invoke([*args, "--min-agreement", "95"]),
                          "int8 keeps fp32's top-1 class on 50% of the held-out frames, under --min-agreement 95%")
    assert not out.exists() and not list(tmp_path.glob(".*partial*"))
    warned = invoke(args)
    assert warned.exit_code == 0 and "top-1 agrees on 50% of" in warned.output, warned.output
    assert "keeps fp32's top-1 class on only 50%" in caplog.text and "try --calibration entropy" in caplog.text
    assert out.is_file()


@pytest.mark.parametrize(("args", "words"), [
    (["--calibrate", "demo"], "--calibrate are for --precision int8"),
    (["--precision", "int8"], "pass --calibrate VIDEO"),
    (["--precision", "fp16", "--from-onnx", "x.onnx"], "fp32 or int8, not fp16"),
    (["--mean", "0.5"], "describe a graph given with --from-onnx"),
])
def test_export_settings_that_do_not_go_together_are_one_line(args: list[str], words: str, tmp_path: Path,
                                                              tf2onnx_head: ThirdParty) -> None:
    args = [str(tf2onnx_head.path) if a == "x.onnx" else a for a in args]
    assert_one_line_error(invoke(["export", *args, "--output", str(tmp_path / "e.onnx")]), words)
