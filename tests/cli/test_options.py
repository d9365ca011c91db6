"""The shared options: each declared once, the same EngineOptions from every command, defaults left to the
library, sizes written WxH, and library warnings shown with the flags that give their settings."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from livecam.cli import main, options
from livecam.cli.export import _input_size
from livecam.cli.shell import FlagFilter
from livecam.engines.launch import EngineOptions
from livecam.errors import LivecamError, option

CLI = Path(options.__file__).parent
SHARED = ("--model", "--weights", "--method", "--layer", "--class", "--topk", "--precision", "--device", "--backend",
          "--batch", "--colormap", "--alpha", "--codec", "--crf", "--verbose", "--input-size", "--mean", "--std",
          "--scale", "--rgb/--bgr", "--labels", "--compare-weights", "--compare-method", "--compare-layer")


@pytest.mark.parametrize("flag", SHARED)
def test_each_shared_option_is_declared_once(flag: str) -> None:
    declared = [path.name for path in sorted(CLI.glob("*.py"))
                for _ in re.finditer(rf"click\.option\(\s*(\"-\w\", )?\"{flag}\"", path.read_text())]
    assert declared == ["options.py"], declared


def test_engine_options_names_each_field_as_the_library_does() -> None:
    made = options.engine_options(model_name="lite0.onnx", class_="tabby", fold=False, method=None, topk=2,
                                  colormap="turbo")
    assert made == EngineOptions(model="lite0.onnx", target_class="tabby", fold_bn=False, topk=2,
                                 colormap="turbo")
    with pytest.raises(TypeError, match="takes no frames"):
        options.engine_options(model_name="x", frames=3)


def test_a_graphs_input_options_become_one_record(tmp_path: Path) -> None:
    """--input-size, --mean, --std, --scale, --bgr and --labels fill EngineOptions.graph_input (None: none given)."""
    from livecam.graphs.options import InputOptions

    labels = tmp_path / "labels.txt"
    made = options.engine_options(model_name="their.onnx", input_size="320x240", mean="103.94,116.78,123.68",
                                  std="1", scale="255", rgb=False, labels=labels)
    assert made.graph_input == InputOptions((240, 320), (103.94, 116.78, 123.68), (1.0, 1.0, 1.0), 255.0, False,
                                            labels)
    assert made.graph_input.given == ["input_size", "mean", "std", "scale", "rgb", "labels"]
    assert options.engine_options(model_name="their.onnx", input_size=None, mean=None, std=None, scale=None,
                                  rgb=None, labels=None).graph_input is None
    for bad in ("1,2", "a,b,c", "1,2,3,4", ""):
        with pytest.raises(LivecamError, match=r"mean must be one number or three separated by commas"):
            options.parse_channels(bad, "mean")


def test_the_method_is_none_when_not_given_and_help_shows_the_librarys_default() -> None:
    for name, command in main.commands.items():
        for param in command.params:
            if param.name == "method":
                assert param.default is None, name
                ctx = command.make_context(name, ["--help"], resilient_parsing=True)
                record = param.get_help_record(ctx)
                assert record is not None and record[1].endswith("[default: gradcam]"), (name, record)
    assert EngineOptions().method is None  # what the library then reads as gradcam (a graph: its own)


def test_options_the_library_defaults_are_none_when_not_given() -> None:
    params = {(c, p.name): p for c, command in main.commands.items() for p in command.params}
    assert params[("run", "max_viewers")].default is None
    assert params[("annotate", "jobs")].default is None


def test_sizes_are_width_by_height() -> None:
    assert options.parse_size("1280x720", "size", 16, 8192) == (1280, 720)
    assert options.parse_size(None, "size", 16, 8192) is None
    assert _input_size("320x240") == (240, 320)  # the exporter takes (height, width)
    for bad in ("224", "0x224", "axb", "5000x10"):
        with pytest.raises(LivecamError) as caught:
            _input_size(bad)
        assert str(caught.value).startswith("input_size must be WIDTHxHEIGHT with sides from 8 to 4096")


def test_library_warnings_read_the_flags_on_the_terminal() -> None:
    record = logging.LogRecord("livecam.x", logging.WARNING, __file__, 1,
                               f"pass {option('out_dir')} (%d files) or {option('no_show')}", (3,), None)
    assert FlagFilter().filter(record)
    assert record.getMessage() == "pass --out-dir (3 files) or --no-show"
    plain = logging.LogRecord("livecam.x", logging.WARNING, __file__, 1, "nothing named %s", ("here",), None)
    assert FlagFilter().filter(plain) and plain.getMessage() == "nothing named here"
