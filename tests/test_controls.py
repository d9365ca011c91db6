"""Live controls: the one check of every setting, and changes applied between frames on both engines, each frame
drawn as a fresh engine with those settings would draw it, and recorded in the log."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from livecam.controls import SETTINGS, Controls, Limits, ViewSettings, validate
from livecam.engines.pytorch.engine import TorchEngine
from livecam.engines.pytorch.explainer import Explainer
from livecam.engines.runtime.engine import RuntimeEngine
from livecam.errors import LivecamError
from livecam.pipeline import run
from livecam.render import Annotator
from livecam.sinks.records import JsonlLog
from livecam.types import Annotated, Frame
from tests.conftest import moving_photos, pearson

pytestmark = pytest.mark.usefixtures("one_torch_thread")

LIMITS = Limits(methods=("gradcam", "cam", "eigencam"), max_rank=3, panels=True, smooth=True)
START = ViewSettings(method="gradcam")


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"colour": "jet"}, "unknown setting 'colour'"),
    ({"methods": "cam"}, "(did you mean method?)"),
    ({"method": "scorecam"}, "unknown method 'scorecam'; this run offers gradcam, cam, eigencam"),
    ({"method": 3}, "unknown method 3"),
    ({"colormap": "jett"}, "unknown colormap 'jett' (did you mean jet?)"),
    ({"alpha": 1.5}, "alpha must lie between 0 and 1, not 1.5"),
    ({"alpha": "0.5"}, "alpha must be a number, not '0.5'"),
    ({"alpha": float("nan")}, "alpha must be a number"),
    ({"alpha": True}, "alpha must be a number, not True"),
    ({"rank": 4}, "rank must lie between 0 (each frame's top class) and 3 (its 3rd most probable class), not 4"),
    ({"rank": -1}, "rank must lie between 0"),
    ({"rank": 1.0}, "rank must be a whole number, not 1.0"),
    ({"rank": True}, "rank must be a whole number"),
    ({"panels": 1}, "panels must be true or false, not 1"),
    ({"paused": "yes"}, "paused must be true or false"),
    ({"smooth_s": -0.25}, "smooth_s must lie between 0 and 10 seconds"),
    ({"rank": 2, "panels": True}, "do not combine with a rank"),
])
def test_a_bad_setting_is_one_line_and_changes_nothing(changes: dict, fragment: str) -> None:
    controls_settings = START
    with pytest.raises(LivecamError) as caught:
        validate(changes, controls_settings, LIMITS)
    message = str(caught.value)
    assert fragment in message and "\n" not in message, message


def test_settings_combine_as_a_viewer_expects() -> None:
    assert validate({}, START, LIMITS) == START
    new = validate({"method": "cam", "alpha": 0.25, "colormap": "turbo", "smooth_s": 0.5, "paused": True}, START,
                   LIMITS)
    assert new == ViewSettings("cam", 0, False, 0.25, "turbo", 0.5, True)
    assert validate({"rank": 2}, validate({"panels": True}, START, LIMITS), LIMITS).panels is False
    assert validate({"panels": True}, validate({"rank": 3}, START, LIMITS), LIMITS).rank == 0
    assert validate({"alpha": 1}, START, LIMITS).alpha == 1.0  # JSON's 1 is a number
    one_class = Limits(methods=("gradcam",), max_rank=0, panels=False, smooth=False)
    for changes, fragment in (({"rank": 1}, "one fixed class"), ({"panels": True}, "no panels to show"),
                              ({"smooth_s": 0.25}, "does not smooth")):
        with pytest.raises(LivecamError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
            validate(changes, START, one_class)
    assert validate({"rank": 0, "panels": False, "smooth_s": 0}, START, one_class) == START
    assert set(SETTINGS) == set(START.record())


@pytest.fixture(scope="module")
def top3_graph(tmp_path_factory: pytest.TempPathFactory, lite0) -> Path:
    """Lite0's Grad-CAM of each frame's 3 most probable classes, as live controls export it."""
    from livecam.export import export_explainer

    return export_explainer(lite0, tmp_path_factory.mktemp("top3") / "gradcam3.onnx", topk=3)


@pytest.fixture(scope="module")
def photos() -> list[np.ndarray]:
    return moving_photos(8)


def frames_of(images: list[np.ndarray]) -> list[Frame]:
    return [Frame(image, i, i / 10) for i, image in enumerate(images)]


def log_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def change_at(controls: Controls, index: int, changes: dict):
    def on_frame(out: Annotated) -> None:
        if out.frame.index == index:
            controls.change(changes)

    return on_frame


def test_the_runtime_engine_changes_between_frames_and_the_log_says_so(top3_graph: Path, photos: list[np.ndarray],
                                                                      tmp_path: Path) -> None:
    engine = RuntimeEngine(top3_graph, "cpu", topk=3)
    controls = Controls(engine)
    assert controls.limits == Limits(methods=("gradcam",), max_rank=3, panels=True, smooth=True)
    outs: list[Annotated] = []

    def on_frame(out: Annotated) -> None:
        outs.append(out)
        if out.frame.index == 2:
            controls.change({"colormap": "turbo", "alpha": 0.8, "rank": 2})
        if out.frame.index == 5:
            controls.change({"panels": True})

    log = tmp_path / "run.jsonl"
    with JsonlLog(log) as sink:
        run(frames_of(photos), engine, [sink], on_frame=on_frame, readout=False, controls=controls)
    lines = log_lines(log)
    assert [i for i, line in enumerate(lines) if "settings" in line] == [0, 3, 6]
    assert lines[0]["settings"] == {"method": "gradcam", "rank": 0, "panels": False, "alpha": 0.5, "colormap": "jet",
                                    "smooth_s": 0.0}
    assert lines[3]["settings"] == {**lines[0]["settings"], "rank": 2, "alpha": 0.8, "colormap": "turbo"}
    assert lines[6]["settings"] == {**lines[3]["settings"], "rank": 0, "panels": True}

    whole = RuntimeEngine(top3_graph, "cpu", topk=3)  # what the graph gives for each frame, all three classes
    for out in outs:
        full = whole.explain([out.frame.image])
        i = out.frame.index
        if i < 3:
            assert out.map_classes == [int(full.classes[0, 0])] == [out.labels[0].index]
            np.testing.assert_array_equal(out.image, Annotator("jet", 0.5).annotate(out.frame.image, full.cams[0, 0],
                                                                                    out.labels))
        elif i < 6:  # the second most probable class's map, in turbo at 0.8
            assert out.map_classes == [int(full.classes[0, 1])] == [out.labels[1].index]
            assert [label.explained for label in out.labels] == [False, True, False]
            np.testing.assert_array_equal(out.image, Annotator("turbo", 0.8).annotate(out.frame.image,
                                                                                      full.cams[0, 1], out.labels))
        else:  # three panels
            assert out.map_classes == [int(c) for c in full.classes[0]]
            whole.panels, whole.annotator = True, Annotator("turbo", 0.8)
            np.testing.assert_array_equal(out.image, whole.render(out.frame, full))
            whole.panels, whole.annotator = False, Annotator()


def test_pausing_takes_no_frames_until_resumed(top3_graph: Path, photos: list[np.ndarray]) -> None:
    engine = RuntimeEngine(top3_graph, "cpu", topk=3)
    controls = Controls(engine)
    done: list[int] = []
    idle: list[float] = []

    class Watcher:  # a main-thread sink, as the window is: it is idle while paused, and resumes the run
        main_thread = True
        stop_requested = False

        def write(self, out: Annotated) -> None:
            done.append(out.frame.index)
            if out.frame.index == 1:
                controls.change({"paused": True})

        def idle(self) -> None:
            idle.append(time.monotonic())
            assert len(done) == 2, "a frame was taken while paused"
            if len(idle) == 5:
                controls.change({"paused": False})

    report = run(frames_of(photos), engine, [Watcher()], controls=controls)  # type: ignore[list-item]
    assert report.frames == len(photos) and done == list(range(len(photos))) and len(idle) == 5


def test_the_torch_engine_switches_method_and_rank(lite0, photos: list[np.ndarray]) -> None:
    engine = TorchEngine(lite0, method="gradcam", renderer="opencv")
    assert "eigencam" in engine.live_methods() and "scorecam" not in engine.live_methods()
    controls = Controls(engine)
    outs: list[Annotated] = []

    def on_frame(out: Annotated) -> None:
        outs.append(out)
        if out.frame.index == 1:
            controls.change({"method": "eigencam"})
        if out.frame.index == 3:
            controls.change({"method": "layercam", "rank": 3})

    with engine:
        run(frames_of(photos[:6]), engine, [], on_frame=on_frame, readout=False, controls=controls)
        assert len(engine.model.module.get_submodule(engine.layer)._forward_hooks) == 1  # the old hooks are gone
        assert [out.explanation.method for out in outs] == ["gradcam"] * 2 + ["eigencam"] * 2 + ["layercam"] * 2
    from livecam.engines.pytorch.engine import to_input

    for out in outs:
        with Explainer(lite0, method=out.explanation.method) as reference:
            x = to_input(out.frame.image, lite0.preprocess)
            classes = out.labels[2].index if out.frame.index >= 4 else None
            expected = reference(x, classes=classes, upsample=False)
        assert out.map_classes == [int(expected.classes[0])]
        if out.frame.index >= 4:
            assert out.labels[2].explained and not out.labels[0].explained
        assert pearson(out.maps[:1], expected.cams[:1].numpy())[0] > 0.999  # BatchNorm folded in the engine's copy


def test_the_runtime_engine_switches_method_in_the_background(top3_graph: Path, several_graph: Path,
                                                              photos: list[np.ndarray]) -> None:
    """Another method is another graph: made while the old one goes on explaining, then swapped in."""
    eigencam = several_graph  # a graph of several methods, opened for the one asked for
    asked: list[str] = []
    release = threading.Event()

    def graph_for(method: str) -> Path:  # as launch's: found or exported, here held back until the test says
        asked.append(method)
        if method == "xgradcam":
            raise LivecamError("xgradcam does not fit in one graph for this model")
        assert release.wait(60)
        return eigencam

    engine = RuntimeEngine(top3_graph, "cpu", topk=3)
    engine.methods, engine.graph_for = ("gradcam", "eigencam", "xgradcam"), graph_for
    controls = Controls(engine)
    controls.change({"method": "eigencam"})
    frames = iter(frames_of(photos * 100))
    methods = []
    for _ in range(3):  # the graph is not ready: the old method goes on
        assert controls.apply(engine) in (None, {**START.record(), "method": "gradcam"})
        methods.append(engine.process(next(frames)).explanation.method)
    assert methods == ["gradcam"] * 3 and asked == ["eigencam"] and controls.settings.method == "eigencam"
    release.set()
    end = time.monotonic() + 60
    while (settings := controls.apply(engine)) is None:
        engine.process(next(frames))
        assert time.monotonic() < end, "the graph never came"
    assert settings["method"] == "eigencam" and asked == ["eigencam"]
    out = engine.process(next(frames))
    assert out.explanation.method == "eigencam" and engine.live_methods() == ("gradcam", "eigencam", "xgradcam")
    reference = RuntimeEngine(eigencam, "cpu", topk=3, method="eigencam").process(out.frame)
    np.testing.assert_array_equal(out.image, reference.image)

    controls.change({"method": "xgradcam"})
    while controls.settings.method == "xgradcam":  # its graph fails: said, and the method stays
        controls.apply(engine)
        engine.process(next(frames))
        assert time.monotonic() < end + 60, "the failure never came"
    assert controls.applied.method == "eigencam" and "xgradcam does not fit" in (controls.error or "")


def test_switching_among_a_files_methods_drops_no_frame_of_a_file(several_graph: Path, long_video: Path,
                                                                   tmp_path: Path) -> None:
    """A video file through the whole pipeline on ONNX Runtime while the method changes three times: every frame is
    explained and logged, in order; the old method runs on until the new one's session is open, a method opened
    before comes back at the next frame, and each frame's map is what that method gives."""
    from livecam.sources import open_source

    engine = RuntimeEngine(several_graph, "cpu", topk=3)
    controls = Controls(engine)
    assert controls.limits.methods == ("gradcam", "cam", "eigencam")
    outs: list[Annotated] = []
    asked = {5: "cam", 60: "eigencam", 100: "gradcam"}

    def on_frame(out: Annotated) -> None:
        outs.append(out)
        if controls.settings.method != out.explanation.method:
            time.sleep(0.02)  # while a session opens, frames as slow as a slow machine's (the test's margins)
        if out.frame.index in asked:
            controls.change({"method": asked[out.frame.index]})

    log = tmp_path / "run.jsonl"
    with open_source(str(long_video)) as source, JsonlLog(log) as sink:
        report = run(source, engine, [sink], on_frame=on_frame, readout=False, controls=controls)
    lines = log_lines(log)
    assert [out.frame.index for out in outs] == [line["frame"] for line in lines] == list(range(120))
    assert (report.frames, report.dropped, report.skipped) == (120, 0, 0)
    methods = [out.explanation.method for out in outs]
    starts = {m: methods.index(m) for m in ("cam", "eigencam")}
    assert methods[:6] == ["gradcam"] * 6 and 6 <= starts["cam"] < 60 and 61 <= starts["eigencam"] < 100
    assert set(methods[starts["cam"]:61]) == {"cam"} and set(methods[starts["eigencam"]:101]) == {"eigencam"}
    assert set(methods[101:]) == {"gradcam"}  # opened at the start: back at once
    changed = {i: line["settings"]["method"] for i, line in enumerate(lines) if "settings" in line}
    assert changed == {0: "gradcam", starts["cam"]: "cam", starts["eigencam"]: "eigencam", 101: "gradcam"}
    print(f"cam from frame {starts['cam']} (asked after 5), eigencam from {starts['eigencam']} (after 60)")
    for i in (0, starts["cam"], starts["eigencam"], 119):
        alone = RuntimeEngine(several_graph, "cpu", topk=3, method=methods[i]).explain([outs[i].frame.image])
        np.testing.assert_array_equal(outs[i].maps, alone.cams[0, :1])


def test_a_compare_runs_view_changes_reach_both_sides(top3_graph: Path, several_graph: Path,
                                                      photos: list[np.ndarray]) -> None:
    """--compare: the colour map, opacity, rank and --smooth apply to each side; the methods stay (one each)."""
    from livecam.engines.compare import CompareEngine

    sides = {"gradcam": top3_graph, "eigencam": several_graph}
    engine = CompareEngine(*(RuntimeEngine(path, "cpu", topk=3, method=m) for m, path in sides.items()),
                           tuple(sides))
    controls = Controls(engine)
    assert controls.limits == Limits(methods=("gradcam",), max_rank=3, panels=False, smooth=True)
    with pytest.raises(LivecamError, match="unknown method 'eigencam'; this run offers gradcam"):
        controls.change({"method": "eigencam"})
    with pytest.raises(LivecamError, match="panels"):
        controls.change({"panels": True})
    outs: list[Annotated] = []

    def on_frame(out: Annotated) -> None:
        outs.append(out)
        if out.frame.index == 1:
            controls.change({"colormap": "turbo", "alpha": 0.8, "rank": 2})

    run(frames_of(photos[:4]), engine, [], on_frame=on_frame, readout=False, controls=controls)
    views = [(side.annotator.colormap, side.annotator.alpha, side.rank) for side in engine.sides]
    assert views == [("turbo", 0.8, 2)] * 2
    assert controls.applied.rank == 2 and engine.rank == 2
    for out in outs:
        for side, (method, path) in zip(out.sides, sides.items(), strict=True):
            full = RuntimeEngine(path, "cpu", topk=3, method=method).explain([out.frame.image])
            rank = 1 if out.frame.index >= 2 else 0
            assert side.map_classes == [int(full.classes[0, rank])], (out.frame.index, method)
            np.testing.assert_array_equal(side.maps, full.cams[0, rank:rank + 1])


def test_smoothing_follows_the_chosen_rank(top3_graph: Path, photos: list[np.ndarray]) -> None:
    """With --smooth, the k-th class's map (which class that is moves with the ranking) is each class's own
    average, so every frame's drawn map is of its own k-th class; turning smoothing on changes the maps."""
    engine = RuntimeEngine(top3_graph, "cpu", topk=3, smooth=0.5)
    controls = Controls(engine)
    controls.change({"rank": 2})
    outs: list[Annotated] = []
    run(frames_of(photos), engine, [], on_frame=outs.append, readout=False, controls=controls)
    whole = RuntimeEngine(top3_graph, "cpu", topk=3)
    for out in outs:
        full = whole.explain([out.frame.image])
        assert out.raw_map_classes == [int(full.classes[0, 1])]
        assert out.map_classes == out.raw_map_classes
    assert any(out.smoothed and not np.array_equal(out.maps, out.raw_maps) for out in outs)
