"""What an output depends on: explicit defaults, older manifests, a graph's metadata and a zoo model's default
layer compare as the run uses them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from livecam import annotate
from livecam.errors import LivecamError
from tests.conftest import annotate_cli, clip_archive, manifest_lines


def test_a_graphs_metadata_is_read_without_loading_it(graph: Path, tmp_path: Path) -> None:
    import onnx

    from livecam.engines.runtime.graph import GraphInfo, read_metadata

    reference = {p.key: p.value for p in onnx.load(str(graph), load_external_data=False).metadata_props}
    assert read_metadata(graph) == reference and len(reference) > 10
    assert (GraphInfo.read(graph).layer, GraphInfo.read(graph).method) == ("_head_act", "gradcam")
    cut = tmp_path / "cut.onnx"
    cut.write_bytes(graph.read_bytes()[:100_000])  # the graph's first bytes: its length runs past the end
    text = tmp_path / "text.onnx"
    text.write_text("not a graph\n" * 10)
    for path in (cut, text, tmp_path / "missing.onnx"):
        with pytest.raises(LivecamError, match="is not an ONNX file livecam can read"):
            read_metadata(path)


def test_explicit_defaults_and_older_manifests_compare_equal(graph: Path, tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "archive", {"cat.mp4": ("chelsea", 6)}, broken=False)
    out = tmp_path / "out"
    first = annotate_cli(root, "--out-dir", out, "--model", graph)
    assert first.returncode == 0, first.stderr
    explicit = ("--method", "gradcam", "--crf", "23", "--layer", "_head_act", "--codec", "h264")
    for args in (explicit, ()):
        proc = annotate_cli(root, "--out-dir", out, "--model", graph, *args)
        assert proc.returncode == 0 and manifest_lines(out)[-1]["status"] == "skipped", (args, proc.stderr)
    settings = manifest_lines(out)[0]["settings"]
    assert {k: settings.get(k) for k in ("method", "layer", "codec", "crf", "defaults")} == {
        "method": "gradcam", "layer": "_head_act", "codec": "h264", "crf": 23,
        "defaults": ["codec", "crf", "layer", "method"]}  # resolved: the graph's own, x264's default CRF
    # a manifest from before settings were resolved: nulls for what was not given, no codec
    old = manifest_lines(out)[0]
    old["settings"].update(method=None, layer=None, crf=None)
    for key in ("codec", "defaults"):
        del old["settings"][key]
    (out / "manifest.jsonl").write_text(json.dumps(old) + "\n")
    for args in (explicit, ()):
        proc = annotate_cli(root, "--out-dir", out, "--model", graph, *args)
        assert proc.returncode == 0 and manifest_lines(out)[-1]["status"] == "skipped", (args, proc.stderr)
    redone = annotate_cli(root, "--out-dir", out, "--model", graph, "--crf", "30")
    assert redone.returncode == 0 and manifest_lines(out)[-1]["status"] == "done", redone.stderr


def _zoo(**given) -> dict:
    from livecam.engines.launch import EngineOptions

    return annotate.settings_of(EngineOptions(**given))


def _done_line(source: Path, out: Path, settings: dict) -> dict:
    stat = source.stat()
    return {"input": str(source.resolve()), "output": str(out.resolve() / source.name), "status": "done",
            "source_size": stat.st_size, "source_mtime_ns": stat.st_mtime_ns, "settings": settings}


def _skipped(root: Path, out: Path, earlier: dict, now: dict) -> bool:
    (out / "manifest.jsonl").write_text(json.dumps(_done_line(root / "cat.mp4", out, earlier)) + "\n")
    planned = annotate.plan([str(root)], out, now)
    return bool(planned.skipped) and not planned.jobs


def test_a_zoo_models_default_layer_is_found_only_when_the_comparison_needs_it(
        graph: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from livecam.engines import launch

    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "cache"))
    root = clip_archive(tmp_path / "in", {"cat.mp4": ("chelsea", 2)}, broken=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat.mp4").write_bytes(b"livecam's output")
    default = _zoo()
    assert {k: default[k] for k in ("method", "layer", "codec", "crf")} == {
        "method": "gradcam", "layer": None, "codec": "h264", "crf": 23}
    by_worker = {**default, "layer": "_head_act"}  # what a worker writes: the layer its engine took
    looked_up = []
    monkeypatch.setattr(annotate.Defaults, "layer", property(lambda self: looked_up.append(1) or "_head_act"))
    assert _skipped(root, out, by_worker, default) and _skipped(root, out, by_worker, _zoo(layer="_head_act"))
    assert _skipped(root, out, {**default, "defaults": []}, default)  # an older manifest: a null layer
    assert not looked_up  # none of these needed the model's default layer
    assert not _skipped(root, out, by_worker, _zoo(layer="_blocks.15"))
    assert not looked_up
    assert _skipped(root, out, {**by_worker, "defaults": []}, default)  # named before, left to the model now
    older = {**default, "method": None, "crf": None, "defaults": []}
    older.pop("codec")
    assert _skipped(root, out, {**older, "layer": None}, _zoo(layer="_head_act", method="gradcam"))
    assert len(looked_up) == 2
    monkeypatch.undo()

    monkeypatch.setenv("LIVECAM_CACHE_DIR", str(tmp_path / "cache"))
    defaults = annotate.Defaults(default)
    assert defaults.layer == "_head_act"  # no cached graph: the model's architecture says
    weights = launch.weights_file("efficientnet_lite0", None)
    cached = launch.graph_cache_path("efficientnet_lite0", weights, "gradcam", None, 1, None, "fp32")
    cached.parent.mkdir(parents=True)
    cached.write_bytes(graph.read_bytes())
    defaults = annotate.Defaults(_zoo(target_class="Tabby"))
    assert defaults.layer == "_head_act" and defaults.class_names[281] == "tabby"  # from the cached graph
    # a class by name and by index is one class, where the class names are at hand (the cached graph)
    assert _skipped(root, out, _zoo(target_class="281"), _zoo(target_class=" Tabby"))
    assert not _skipped(root, out, _zoo(target_class="282"), _zoo(target_class="tabby"))
    worker = annotate.FileWorker(launch.EngineOptions(threads=1), settings=default)  # runs the cached graph
    try:  # the worker writes the layer the model was explained at
        assert worker.settings["layer"] == "_head_act" and default["layer"] is None
    finally:
        worker.close()
    cached.unlink()
    assert not _skipped(root, out, _zoo(target_class="281"), _zoo(target_class="tabby"))  # no names: not known


def test_smooth_is_a_setting_and_older_manifests_had_none(graph: Path, tmp_path: Path) -> None:
    root = clip_archive(tmp_path / "archive", {"cat.mp4": ("chelsea", 6)}, broken=False)
    out = tmp_path / "out"
    out.mkdir()
    (out / "cat.mp4").write_bytes(b"livecam's output")
    default = _zoo()
    assert default["smooth"] == 0.0 and _zoo(smooth=0.5)["smooth"] == 0.5
    older = {key: value for key, value in default.items() if key != "smooth"}  # before --smooth
    assert _skipped(root, out, older, default)
    assert not _skipped(root, out, older, _zoo(smooth=0.5))
    assert not _skipped(root, out, _zoo(smooth=0.5), _zoo(smooth=0.25))
    assert not _skipped(root, out, {**default, "smooth": "fast"}, default)  # not a number: equals nothing
    (out / "manifest.jsonl").unlink()
    (out / "cat.mp4").unlink()
    first = annotate_cli(root, "--out-dir", out, "--model", graph, "--smooth", "0.5")
    assert first.returncode == 0, first.stderr
    assert "smoothed over time, time constant 0.5 s" in first.stderr
    assert manifest_lines(out)[-1]["status"] == "done" and manifest_lines(out)[-1]["settings"]["smooth"] == 0.5
    again = annotate_cli(root, "--out-dir", out, "--model", graph, "--smooth", "0.5")
    assert again.returncode == 0 and manifest_lines(out)[-1]["status"] == "skipped", again.stderr
    bad = annotate_cli(root, "--out-dir", out, "--model", graph, "--smooth", "-1")
    lines = bad.stderr.strip().splitlines()
    assert bad.returncode == 2 and len(lines) == 1 and "--smooth is a time constant in seconds" in lines[0], bad.stderr
