"""The shell every command shares: the tool's help, one-line errors with exit code 2, the real entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import assert_one_line_error, invoke, livecam_process, random_torchvision


def test_help_documents_every_option() -> None:
    result = invoke(["--help"])
    assert result.exit_code == 0
    for option in ("--source", "--model", "--weights", "--method", "--layer", "--class", "--topk", "--device",
                   "--output", "--show / --no-show", "--max-frames", "--alpha", "--colormap", "--overwrite"):
        assert option in result.output, option
    assert invoke([]).output == result.output  # no arguments: the help
    assert "[run] OPTIONS | COMMAND" in result.output.splitlines()[0]  # the tool's help, not run's
    text = " ".join(result.output.split())
    for name in ("annotate", "export", "bench", "evaluate", "Grad-CAM++", "Score-CAM", "guided backpropagation"):
        assert name in text, name
    assert "Grad-CAM or CAM" not in text


@pytest.fixture(scope="module")
def bad_weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("weights") / "resnet18.pt"
    torch.save(random_torchvision("resnet18").state_dict(), path)
    return path


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--source", "missing.mp4"], "missing.mp4 does not exist"),
        (["--source", "99"], "camera 99 could not be opened"),
        (["--source", "{fake}"], "as a video"),
        (["--source", "{video}", "--model", "resnet5O"], "unknown model 'resnet5O'"),
        (["--source", "{video}", "--class", "tabbby"], "unknown class 'tabbby' (did you mean tabby"),
        (["--source", "{video}", "--layer", "_blocks.99"], "no layer '_blocks.99'"),
        (["--source", "{video}", "--weights", "{weights}"], "do not fit model 'efficientnet_lite0'"),
        (["--source", "{video}", "--output", "{file}/out.mp4"], "does not exist"),
        (["--source", "{video}", "--output", "{existing}"], "already exists; pass --overwrite"),
        (["--source", "{video}", "--output", "{video}"], "is an input of this command"),
        (["--source", "{video}", "--output", "{video}", "--overwrite"], "is an input of this command"),
        (["--source", "{video}", "--output", "out.gif"], "must name a file ending in"),
        (["--source", "{video}", "--show"], "no display"),
        (["--source", "{video}", "--device", "tpu"], "unknown device"),
        (["--source", "{video}", "--alpha", "2"], "--alpha"),
        (["--source", "{video}", "--method", "scorecam9"], "--method"),
        (["--source", "{video}", "--panels", "--view", "guided"], "do not combine"),
        (["--source", "{video}", "--panels", "--class", "tabby"], "does not combine with --class"),
        (["--source", "{video}", "--view", "beside"], "--view"),
        (["--source", "{video}", "--panels", "--topk", "1"], "needs --topk 2 or more, not 1"),
        (["--source", "{video}", "--weights", "{dir}"], "is a folder; pass the state-dict file in it"),
        (["--source", "{video}", "--weights", "{dir}/none.pt"], "none.pt does not exist"),
        (["evaluate", "--source", "{video}", "--model", "{dir}/lite0.onnx"], "takes a zoo model, not a graph"),
        (["export", "--output", "{dir}/x.onnx", "--topk", "11"], "--topk"),
        (["--sourc", "{video}"], "No such option"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(args, fragment, tmp_path: Path, cat_video: Path,
                                               bad_weights: Path) -> None:
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"\x00not a video" * 50)
    afile = tmp_path / "afile"
    afile.write_text("x")
    existing = tmp_path / "existing.mp4"
    existing.write_bytes(b"the user's recording")
    fill = {"{fake}": str(fake), "{video}": str(cat_video), "{weights}": str(bad_weights), "{file}": str(afile),
            "{existing}": str(existing), "{dir}": str(tmp_path)}
    for key, value in fill.items():
        args = [a.replace(key, value) for a in args]
    before = cat_video.read_bytes()
    assert_one_line_error(invoke(args), fragment)
    assert cat_video.read_bytes() == before
    assert existing.read_bytes() == b"the user's recording"
    assert not list(tmp_path.glob(".*partial*")) and not list(cat_video.parent.glob(".*partial*"))


@pytest.mark.slow
def test_errors_from_the_real_entry_point(tmp_path: Path) -> None:
    proc = livecam_process("--source", "no_such_file.mp4")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "livecam: error: no_such_file.mp4 does not exist; give a camera index (0), a video file, "
        "a folder of images, a URL or 'demo'"
    ]
    # OpenCV and FFmpeg print lines of their own when a video or a stream fails to open
    fake = tmp_path / "fake.mp4"
    fake.write_bytes(b"garbage" * 100)
    for source, message in [(str(fake), "as a video"), ("http://127.0.0.1:9/x.mp4", "could not read the stream")]:
        proc = livecam_process("--source", source)
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and message in lines[0], proc.stderr
