"""``livecam export``: the model and its explanation as one ONNX file, which runs with ONNX Runtime alone.

Sizes are written width x height (``--input-size 320x240``), as ``bench --size`` and video people
write them; the exporter and the graph's metadata keep theirs (height, width).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from livecam import choices
import livecam.cli.options as opt
from livecam.cli.options import OutputPath
from livecam.cli.shell import CONTEXT_SETTINGS, LivecamCommand, setup_logging
from livecam.errors import LivecamError, require_torch
from livecam.text import listed

from livecam.graphs.options import InputOptions

if TYPE_CHECKING:
    from livecam.graphs.edge import Int8Options

EXPORT_METHODS = choices.EXPORT_METHODS
EXPORT_EPILOG = """\b
The file has one input and four outputs (one more per extra --method):
  x        float32 (N, 3, H, W), normalized RGB (the default), or with --from-frames
  frames   uint8 (N, H, W, 3) BGR frames of any size, resized and normalized inside
  logits   float32 (N, classes)
  classes  int64 (N, K): the K most probable classes, best first (or --class)
  scores   float32 (N, K): their softmax probabilities
  cams     float32 (N, K, h, w) in [0, 1]: each class's map at the layer's resolution
  cams_M   the same, of method M, for each --method after the first
Its metadata (model, method, layer, class names, mean, std, sizes) says the rest.

\b
--from-onnx explains any ONNX classifier (no PyTorch): the CAM family where its
head is global average pooling and one Linear layer, else eigencam. --precision
int8 quantizes the model part (ONNX Runtime's static quantization, QDQ,
per-channel int8 weights) on frames of --calibrate, keeps the maps in fp32,
and prints how often int8 keeps fp32's top-1 class on held-out frames.

\b
Examples:
  livecam export --output lite0-gradcam.onnx
  livecam export --output lite0-top3.onnx --topk 3 --from-frames
  livecam export --model mobilenet_v3_large --method eigencam --output mnv3.onnx
  livecam export --method gradcam,cam,eigencam --topk 3 --output lite0-three.onnx
  livecam export --from-onnx their.onnx --output explained.onnx
  livecam export --from-onnx their.onnx --precision int8 --calibrate clip.mp4 --output edge.onnx
  livecam export --precision int8 --calibrate demo --output lite0-int8.onnx
"""


def _input_size(text: str | None) -> tuple[int, int] | None:
    """--input-size 'WxH' -> (height, width), as the exporter takes it; sides 8 to 4096."""
    size = opt.parse_size(text, "input_size", 8, 4096, example="320x240")
    return None if size is None else (size[1], size[0])


@click.command("export", cls=LivecamCommand, context_settings=CONTEXT_SETTINGS, epilog=EXPORT_EPILOG,
               short_help="The model and its explanation as one ONNX file (no PyTorch to run it).")
@opt.apply(opt.model("The model, as for livecam run.", metavar=None), opt.weights())
@click.option("--from-onnx", type=opt.InputPath(path_type=Path), metavar="FILE.onnx",
              help="Explain this ONNX classifier instead of --model: one livecam did not export (torch.onnx.export, "
                   "timm, tf2onnx, a vendor). No PyTorch needed. --layer is then a tensor name.")
@click.option("--output", "-o", type=OutputPath(suffixes=(".onnx",)), metavar="FILE.onnx", required=True,
              help="The ONNX file to write.")
@opt.apply(
    opt.layer(),
    opt.method(f"The map computed inside the graph: {', '.join(EXPORT_METHODS)}; or several, joined by commas "
               "(gradcam,cam,eigencam): one forward pass and an output of maps per method (cams for the first, "
               "cams_METHOD for each other one), which livecam run switches between live. All but eigencam need a "
               "head of global average pooling and one Linear layer (their gradient then has a closed form); "
               "eigencam works for any head. scorecam and the guided methods cannot be exported.", several=True),
    opt.topk("Explain each image's K most probable classes: K maps per image.", default=1),
    opt.target_class("Explain this class in every image instead (K = 1), by name or index."),
)
@opt.input_size("The model's input size, width x height as video people write it (e.g. 320x240; until December "
                "2026 it was HxW). Default: the model's own (--from-onnx: its fixed input shape, else 224x224); "
                "the maps' size follows.")
@opt.graph_input()
@opt.precision("The model's weights and arithmetic inside the graph; the maps are always computed in fp32. int8: "
               "the model part quantized on frames of --calibrate (ONNX Runtime, QDQ).",
               names=choices.EXPORT_PRECISIONS + ("int8",), default="fp32")
@click.option("--calibrate", metavar="SOURCE",
              help="int8: the frames to calibrate on, as for --source (a video, a folder of images, or demo); half "
                   "of those read are held out to measure the fidelity.")
@click.option("--calibration", type=click.Choice(("minmax", "entropy", "percentile")), cls=opt.LibraryDefault,
              implied="measured: see benchmarks/results", help="int8: how activation ranges are calibrated.")
@click.option("--calibration-frames", type=click.IntRange(4, 1024), metavar="N",
              help="int8: frames to calibrate on (default: the measured choice).")
@click.option("--min-agreement", type=click.FloatRange(0, 100), metavar="PERCENT",
              help="int8: fail unless at least this share of held-out frames keeps fp32's top-1 class (export "
                   "warns under 95 either way).")
@click.option("--from-frames", is_flag=True,
              help="Take uint8 BGR frames of any size (N, H, W, 3) as input and resize and normalize them inside "
                   "the graph, instead of a normalized float32 batch.")
@click.option("--overwrite", is_flag=True, help="Replace --output if it exists.")
@opt.verbose()
def export_command(model_name: str, weights: str | None, from_onnx: Path | None, output: Path, layer: str | None,
                   method: str | None, topk: int, class_: str | None, input_size: str | None, mean: str | None,
                   std: str | None, scale: str | None, rgb: bool | None, labels: Path | None, precision: str,
                   calibrate: str | None, calibration: str | None, calibration_frames: int | None,
                   min_agreement: float | None, from_frames: bool, overwrite: bool, verbose: int) -> None:
    """Write the model and its explanation as one ONNX file, which runs with ONNX Runtime alone.

    No PyTorch and no autograd at run time: the graph computes the logits, the
    top-K classes and their probabilities, and each class's map, min-max
    normalized to [0, 1], so a C++ program or an edge device gets the
    explanation from one ONNX Runtime call.
    """
    setup_logging(verbose)
    started = time.perf_counter()
    size = _input_size(input_size)
    if class_ is not None and topk != 1:
        raise LivecamError("--class explains one class per image: leave out --topk, or --class to explain the "
                           "top-K classes")
    from livecam.graphs.edge import Int8Options

    int8 = Int8Options(calibrate, calibration, calibration_frames,
                       None if min_agreement is None else min_agreement / 100)
    if precision != "int8" and int8.given:
        raise LivecamError(f"{', '.join('--' + name.replace('_', '-') for name in int8.given)} are for "
                           "--precision int8")
    graph_input = opt.graph_input_options(input_size, mean, std, scale, rgb, labels)
    if from_onnx is None and graph_input is not None and graph_input.given != ["input_size"]:
        raise LivecamError("--mean, --std, --scale, --rgb/--bgr and --labels describe a graph given with --from-onnx; "
                           f"{model_name} knows its own")
    if from_onnx is not None or precision == "int8":
        if from_frames:
            raise LivecamError("--from-frames is for livecam's own fp32 and fp16 exports; leave it out")
        _edge_graph(model_name, weights, from_onnx, output, layer, method, topk, class_, graph_input, precision, int8,
                    started)
        return
    methods = choices.export_methods(method or choices.DEFAULT_METHOD)
    require_torch("livecam export")
    from livecam.export import export_explainer, exportable
    from livecam.zoo import RANDOM, load_model, resolve_class

    loaded = load_model(model_name, weights=weights, device="cpu")
    if weights == RANDOM:
        logging.warning("--weights random: the model is untrained, its classes and maps mean nothing")
    if layer is None:
        for name in methods:
            exportable(loaded, name)  # refuse before the slow part
    target = resolve_class(class_, loaded.class_names) if class_ is not None else None
    path = export_explainer(loaded, output, method=methods, layer=layer, topk=topk, target_class=target,
                            input_size=size, precision=precision, from_frames=from_frames)
    what = f"class '{loaded.class_names[target]}'" if target is not None else f"top-{topk}"
    click.echo(f"livecam: wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {loaded.name} {listed(methods)} of "
               f"{what}, "
               f"{'uint8 BGR frames' if from_frames else 'normalized float32'} input, {precision}, in "
               f"{time.perf_counter() - started:.1f} s")


def _edge_graph(model_name: str, weights: str | None, from_onnx: Path | None, output: Path, layer: str | None,
                method: str | None, topk: int, class_: str | None, inputs: InputOptions | None, precision: str,
                int8: Int8Options, started: float) -> None:
    """--from-onnx (no PyTorch), or a zoo model's classifier exported plain and then the same, in fp32 or int8."""
    import tempfile

    from livecam.graphs.edge import export_graph

    identity, names = None, None
    with tempfile.TemporaryDirectory(prefix="livecam-export-") as tmp:
        if from_onnx is None:
            require_torch(f"livecam export --precision {precision} of {model_name}")
            from livecam.export import export_onnx
            from livecam.zoo import load_model

            loaded = load_model(model_name, weights=weights, device="cpu")
            pre = loaded.preprocess
            size = inputs.size if inputs is not None and inputs.size else (pre.size[0], pre.size[1])
            source = export_onnx(loaded.module, None, Path(tmp) / "classifier.onnx", size)
            inputs = InputOptions(size, pre.mean, pre.std, 1.0, True)
            identity, names = (loaded.name, loaded.weights), loaded.class_names
        elif weights is not None:
            raise LivecamError("--weights does not apply to --from-onnx: the graph holds its weights")
        else:
            source = from_onnx
        done = export_graph(source, output, choices.export_methods(method) if method else None, layer, topk, class_,
                            inputs, precision, int8, identity, names)
    for note in done.explained.notes:
        logging.info("%s", note)
    if done.warning:
        logging.warning("%s", done.warning)
    fidelity = f"; {done.fidelity.describe()}" if done.fidelity is not None else ""
    what = f"class '{class_}'" if class_ else f"top-{topk}"
    click.echo(f"livecam: wrote {output} ({output.stat().st_size / 1e6:.1f} MB): "
               f"{identity[0] if identity else source.name} {done.explained.describe()} of {what} at "
               f"{done.explained.layer}, {precision}{fidelity}, in {time.perf_counter() - started:.1f} s")
