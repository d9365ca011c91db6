"""The options that several commands share, each declared once, and the one way they become engine options.

``livecam run``, ``annotate``, ``bench``, ``export`` and ``evaluate`` all take a model, a method,
a layer, a device, ...: each option is declared here by one function, which a command calls with
its own help text where its ``--help`` words it differently (``export`` takes fewer methods and
precisions, and explains the top class by default). :func:`apply` puts a command's list of them
on it, and :func:`engine_options` turns what the user gave into the library's
:class:`~livecam.engines.launch.EngineOptions`, the same way for every command.

An option whose default the library resolves itself (``--method``: gradcam, or a graph's own)
defaults to ``None`` ("not given"), and its ``--help`` shows the default the library picks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from livecam import choices
from livecam.errors import LivecamError, option

if TYPE_CHECKING:
    from livecam.engines.launch import EngineOptions

Command = Callable[..., Any]  # a command's function, before click makes it a command
Decorator = Callable[[Command], Command]


class InputPath(click.Path):
    """A value that may name a file the command reads (``--source``, ``--model``, ``--weights``, reports).

    It is passed on as typed (a camera index, a URL or a zoo name are not paths); where it names an existing
    file or folder, no output of the command may be that path.
    """

    def __init__(self, path_type: type[Any] | None = None) -> None:
        super().__init__(path_type=path_type)


class OutputPath(click.Path):
    """A file (``folder=True``: a folder) the command writes, checked by :mod:`livecam.outputs` before any work."""

    def __init__(self, folder: bool = False, suffixes: tuple[str, ...] = ()) -> None:
        super().__init__(path_type=Path)
        self.folder = folder
        self.suffixes = suffixes


class LibraryDefault(click.Option):
    """An option that is None when not given, the library then taking its default; ``--help`` shows that one.

    (click's own ``show_default="text"`` shows it in parentheses, as a description rather than a value.)
    """

    def __init__(self, *args: Any, implied: str, **kwargs: Any) -> None:
        kwargs.update(default=None, show_default=True)
        super().__init__(*args, **kwargs)
        self.implied = implied

    def get_help_extra(self, ctx: click.Context) -> click.types.OptionHelpExtra:
        return {**super().get_help_extra(ctx), "default": self.implied}


def apply(*options: Decorator) -> Decorator:
    """One decorator for a command's options, listed in the order its ``--help`` shows them."""

    def decorate(command: Command) -> Command:
        for declare in reversed(options):
            command = declare(command)
        return command

    return decorate


AS_FOR_RUN = "As for livecam run: a zoo model or FILE.onnx from livecam export (no PyTorch needed)."
RUN_MODEL_HELP = ("efficientnet_lite0 (real ImageNet weights, shipped), a torchvision classification model by "
                  "name (resnet50, mobilenet_v2, vgg16, efficientnet_b0, convnext_tiny, ...), timm:NAME for any "
                  "timm model (timm:vit_small_patch16_224, timm:convnext_tiny; pip install 'livecam[timm]'), "
                  "FOLDER, a Hugging Face image classifier saved there with save_pretrained (pip install "
                  "'livecam[hf]'; nothing is downloaded), FILE.py:FUNCTION or package.module:FUNCTION, a function "
                  "that returns any torch.nn.Module, or FILE.onnx, which runs on ONNX Runtime alone (no PyTorch "
                  "needed): a graph from 'livecam export', with the method, layer and classes it was exported "
                  "with, or any ONNX classifier (torch.onnx.export, timm, tf2onnx, a vendor), explained once "
                  "into the cache: the CAM family where its head is global average pooling and one Linear "
                  "layer, else eigencam; --input-size, --mean, --std, --scale, --bgr and --labels say how it "
                  "takes its input where the graph does not.")


def model(help: str = AS_FOR_RUN, metavar: str | None = "NAME|FILE.onnx") -> Decorator:
    return click.option("--model", "-m", "model_name", type=InputPath(), default=choices.DEFAULT_MODEL,
                        show_default=True, metavar=metavar, help=help)


def weights() -> Decorator:
    return click.option(
        "--weights", type=InputPath(), metavar="FILE|random",
        help="The model's weights: a .safetensors file, or a state dict saved with "
             "torch.save(model.state_dict(), FILE) and loaded with weights_only=True. Default: the model's own "
             "(shipped for efficientnet_lite0; torchvision's cache or download; timm's only where already cached, "
             "never downloaded; the Hugging Face folder's; a FILE.py:FUNCTION model as built). "
             "'random': untrained, for timing.")


RUN_METHOD_HELP = ("gradcam: Grad-CAM (Selvaraju et al. 2017). cam: CAM (Zhou et al. 2016), for heads of "
                   "global average pooling and one Linear layer. gradcampp: Grad-CAM++. xgradcam: XGrad-CAM. "
                   "layercam: LayerCAM (per-pixel weights; good on earlier layers). hirescam: HiResCAM. "
                   "counterfactual: counterfactual Grad-CAM (what speaks against the class). finercam: Finer-CAM "
                   "(what sets the class apart from its 3 most similar classes). eigencam: Eigen-CAM "
                   "(class-agnostic, no gradients). scorecam: Score-CAM (one forward pass per channel: seconds to "
                   "a minute per frame, not live). guided: Guided Backpropagation "
                   "(input-resolution edges, weakly class-specific). guidedgradcam: Guided Grad-CAM.")


def method(help: str | None = None, names: tuple[str, ...] = choices.METHODS, several: bool = False) -> Decorator:
    """``--method``: None when not given, so that the library picks (gradcam; a graph: its own). ``several``:
    ``export``'s, one or more names joined by commas (checked by :func:`livecam.choices.export_methods`)."""
    kind: dict[str, Any] = {"metavar": "METHOD[,METHOD...]"} if several else {"type": click.Choice(names)}
    return click.option("--method", cls=LibraryDefault, implied=choices.DEFAULT_METHOD, help=help, **kind)


def compare() -> Decorator:
    """``--compare``, ``--compare-weights``, ``--compare-method`` and ``--compare-layer``: a second side, tiled
    beside the first on every frame (:class:`livecam.engines.compare.CompareOptions`)."""
    return apply(
        click.option("--compare", "compare", type=InputPath(), metavar="NAME|FILE.onnx",
                     help="Run this second model on the same frames and show the two side by side (as wide as the "
                          "frame), each with its own top classes, map and name (and, while the run shows its "
                          "speed, its step time). Any --model value: a zoo model (its own weights and default "
                          "layer unless --compare-weights, --compare-layer) or a .onnx graph; the run's method, "
                          "class, --topk and device apply to it too. Without it, --compare-method, --compare-layer "
                          "or --compare-weights explain the one model twice."),
        click.option("--compare-weights", type=InputPath(), metavar="FILE|random",
                     help="The second side's weights, as --weights (default: the compare model's own; without "
                          "--compare, the first side's model with these weights)."),
        click.option("--compare-method", type=click.Choice(choices.METHODS), metavar="METHOD",
                     help="The second side's method, as --method (default: the first side's; a .onnx graph: its "
                          "own). Alone: one model explained with two methods, loaded once."),
        click.option("--compare-layer", metavar="MODULE.PATH",
                     help="The second side's layer, as --layer (default: the compare model's default; without "
                          "--compare, the first side's model at this layer)."),
    )


def layer(help: str = "The layer to explain. Default: the last feature map.") -> Decorator:
    return click.option("--layer", metavar="MODULE.PATH", help=help)


def target_class(help: str) -> Decorator:
    return click.option("--class", "class_", metavar="NAME|INDEX", help=help)


def topk(help: str = "How many of the most probable classes to label on each frame.",
         default: int = 3) -> Decorator:
    return click.option("--topk", type=click.IntRange(1, choices.MAX_TOPK), default=default, show_default=True,
                        help=help)


def precision(help: str | None = None, names: tuple[str, ...] = choices.PRECISIONS,
              default: str = "auto") -> Decorator:
    return click.option("--precision", type=click.Choice(names), default=default, show_default=True, help=help)


def device(help: str) -> Decorator:
    return click.option("--device", default="auto", show_default=True, help=help)


def backend() -> Decorator:
    return click.option(
        "--backend", type=click.Choice(choices.BACKENDS), default="auto", show_default=True,
        help="The engine. auto: ONNX Runtime on a CPU wherever the method fits in one graph (the model and its "
             "explanation, exported once and cached; no PyTorch on later runs), PyTorch otherwise and on CUDA. "
             "onnx insists on ONNX Runtime; torch runs PyTorch.")


def batch(help: str) -> Decorator:
    return click.option("--batch", type=click.IntRange(1, 256), default=1, show_default=True, help=help)


SMOOTH_HELP = ("Steady the explanation over time: the maps and the class probabilities are moving averages "
               "with this time constant in seconds (weighted by the frames' timestamps, so it means the same at "
               "any frame rate), and the explained class changes only after another has led for that long; a "
               "scene cut starts afresh. The log and --save-maps hold the smoothed values and the raw ones beside "
               "them. 0 (the default) is off; 0.25 is the measured recommendation (README).")


def smooth(help: str = SMOOTH_HELP) -> Decorator:
    """``--smooth SECONDS`` (:mod:`livecam.smooth`), checked by :func:`livecam.smooth.check_seconds`."""

    def check(_ctx: click.Context, _param: click.Parameter, value: float) -> float:
        from livecam.smooth import check_seconds

        return check_seconds(value)

    return click.option("--smooth", type=float, default=0.0, show_default=True, metavar="SECONDS",
                        callback=check, help=help)


def alpha() -> Decorator:
    return click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
                        help="Opacity of the heatmap over the frame.")


def colormap() -> Decorator:
    return click.option("--colormap", type=click.Choice(choices.COLORMAPS), default=choices.DEFAULT_COLORMAP,
                        show_default=True, help="The heatmap's colour map.")


def codec() -> Decorator:
    return click.option(
        "--codec", type=click.Choice(["h264", "hevc", "mjpeg", "mp4v"]),
        help="The recording's codec. Default: h264 (x264, yuv420p) for .mp4, .mov and .mkv, which browsers, slide "
             "decks and phones play; mjpeg for .avi. hevc: smaller files, fewer players. mp4v: MPEG-4 Part 2.")


def crf() -> Decorator:
    return click.option("--crf", type=click.IntRange(0, 51), metavar="0-51",
                        help="The h264/hevc quality: lower is better and bigger (default 23 for h264, 28 for hevc).")


def pace() -> Decorator:
    return click.option(
        "--pace/--no-pace", default=None,
        help="Play a file, image folder or the demo clip at its own frame rate, each frame at its time, as a video "
             "player does (an engine slower than that goes as fast as it can). Default: paced when it is shown "
             "in the window or served (--serve) and not recorded (--output); recordings go as fast as they can. "
             "Cameras and streams are real time already.")


def verbose() -> Decorator:
    return click.option("-v", "--verbose", count=True, help="Say more (-vv for debug messages).")


GRAPH_INPUT_HELP = "A third-party ONNX classifier (--model FILE.onnx that livecam did not export): "


def input_size(help: str = GRAPH_INPUT_HELP + "its input size, width x height (e.g. 320x240). Default: the "
                           "graph's fixed input shape, else 224x224 (said in the header line).") -> Decorator:
    return click.option("--input-size", metavar="WxH", help=help)


def graph_input() -> Decorator:
    """``--mean``, ``--std``, ``--scale``, ``--rgb/--bgr`` and ``--labels``: how a third-party graph takes its input
    (what is not given is assumed, and the header line says so)."""
    return apply(
        click.option("--mean", metavar="M|M1,M2,M3",
                     help=GRAPH_INPUT_HELP + "the mean subtracted from each channel, in the graph's channel order "
                          "and in the units of --scale. Default: ImageNet's."),
        click.option("--std", metavar="S|S1,S2,S3",
                     help=GRAPH_INPUT_HELP + "the standard deviation each channel is divided by. Default: ImageNet's."),
        click.option("--scale", type=click.Choice(["1", "255"]),
                     help=GRAPH_INPUT_HELP + "the pixels' range before the mean: 1 for [0, 1] (the default), 255 "
                          "for [0, 255]."),
        click.option("--rgb/--bgr", "rgb", default=None,
                     help=GRAPH_INPUT_HELP + "the channel order it takes. Default: RGB."),
        click.option("--labels", type=InputPath(path_type=Path), metavar="FILE",
                     help=GRAPH_INPUT_HELP + "its class names, one per line. Default: the graph's metadata, else "
                          "ImageNet's for 1000 classes, else the indices."),
    )


def parse_channels(text: str | None, setting: str) -> tuple[float, float, float] | None:
    """'0.5' or '0.485,0.456,0.406' -> three floats (one value is the same for each channel)."""
    if text is None:
        return None
    try:
        values = [float(part) for part in text.replace(" ", "").split(",")]
    except ValueError:
        values = []
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise LivecamError(f"{option(setting)} must be one number or three separated by commas (e.g. "
                           f"0.485,0.456,0.406), not '{text}'")
    return values[0], values[1], values[2]


def graph_input_options(input_size: str | None = None, mean: str | None = None, std: str | None = None,
                        scale: str | None = None, rgb: bool | None = None, labels: Path | None = None) -> Any:
    """The graph-input options as :class:`livecam.graphs.options.InputOptions` (None when none was given)."""
    from livecam.graphs.options import InputOptions

    size = parse_size(input_size, "input_size", 8, 4096, example="320x240")
    given = InputOptions(None if size is None else (size[1], size[0]), parse_channels(mean, "mean"),
                         parse_channels(std, "std"), None if scale is None else float(scale), rgb, labels)
    return given if given.given else None


# The options whose parameter is named otherwise than the EngineOptions field it fills.
_FIELDS = {"model_name": "model", "class_": "target_class", "fold": "fold_bn"}
_GRAPH_INPUT = ("input_size", "mean", "std", "scale", "rgb", "labels")
_COMPARE = {"compare": "model", "compare_weights": "weights", "compare_method": "method", "compare_layer": "layer"}


def engine_options(**params: Any) -> EngineOptions:
    """What the user gave a command, as the engine's options (each parameter under the name its field has).

    The values are click's, of as many types as there are options, hence ``Any``.
    """
    from livecam.engines.launch import EngineOptions

    names = {field.name for field in dataclasses.fields(EngineOptions)}
    graph_input = {name: params.pop(name) for name in _GRAPH_INPUT if name in params}
    if graph_input:
        params["graph_input"] = graph_input_options(**graph_input)
    compare = {name: params.pop(name) for name in _COMPARE if name in params}
    if any(value is not None for value in compare.values()):
        from livecam.engines.compare import CompareOptions

        params["compare"] = CompareOptions(**{field: compare.get(name) for name, field in _COMPARE.items()})
    given = {_FIELDS.get(name, name): value for name, value in params.items()}
    unknown = sorted(set(given) - names)
    if unknown:
        raise TypeError(f"engine_options() takes no {', '.join(unknown)}")
    return EngineOptions(**given)


def parse_size(text: str | None, setting: str, low: int, high: int, example: str = "1280x720") -> \
        tuple[int, int] | None:
    """'WxH' (width x height, as video people write it) -> (width, height), each side from ``low`` to ``high``."""
    if text is None:
        return None
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or not all(low <= int(p) <= high for p in parts):
        raise LivecamError(f"{option(setting)} must be WIDTHxHEIGHT with sides from {low} to {high} "
                           f"(e.g. {example}), not '{text}'")
    return int(parts[0]), int(parts[1])
