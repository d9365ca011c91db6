"""``livecam export``: the model and its explanation as one ONNX file, which runs with ONNX Runtime alone.

Sizes are written width x height (``--input-size 320x240``), as ``bench --size`` and video people
write them; the exporter and the graph's metadata keep theirs (height, width).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import click

from livecam import choices
import livecam.cli.options as opt
from livecam.cli.options import OutputPath
from livecam.cli.shell import CONTEXT_SETTINGS, LivecamCommand, setup_logging
from livecam.errors import LivecamError, require_torch

EXPORT_METHODS = choices.EXPORT_METHODS
EXPORT_EPILOG = """\b
The file has one input and four outputs:
  x        float32 (N, 3, H, W), normalized RGB (the default), or with --from-frames
  frames   uint8 (N, H, W, 3) BGR frames of any size, resized and normalized inside
  logits   float32 (N, classes)
  classes  int64 (N, K): the K most probable classes, best first (or --class)
  scores   float32 (N, K): their softmax probabilities
  cams     float32 (N, K, h, w) in [0, 1]: each class's map at the layer's resolution
Its metadata (model, method, layer, class names, mean, std, sizes) says the rest.

\b
Examples:
  livecam export --output lite0-gradcam.onnx
  livecam export --output lite0-top3.onnx --topk 3 --from-frames
  livecam export --model mobilenet_v3_large --method eigencam --output mnv3.onnx
"""


def _input_size(text: str | None) -> tuple[int, int] | None:
    """--input-size 'WxH' -> (height, width), as the exporter takes it; sides 8 to 4096."""
    size = opt.parse_size(text, "input_size", 8, 4096, example="320x240")
    return None if size is None else (size[1], size[0])


@click.command("export", cls=LivecamCommand, context_settings=CONTEXT_SETTINGS, epilog=EXPORT_EPILOG,
               short_help="The model and its explanation as one ONNX file (no PyTorch to run it).")
@opt.apply(opt.model("The model, as for livecam run.", metavar=None), opt.weights())
@click.option("--output", "-o", type=OutputPath(suffixes=(".onnx",)), metavar="FILE.onnx", required=True,
              help="The ONNX file to write.")
@opt.apply(
    opt.layer(),
    opt.method("The map computed inside the graph. cam, gradcam, hirescam, xgradcam, gradcampp and layercam "
               "need a head of global average pooling and one Linear layer (their gradient then has a closed "
               "form); eigencam works for any head. scorecam and the guided methods cannot be exported.",
               names=EXPORT_METHODS),
    opt.topk("Explain each image's K most probable classes: K maps per image.", default=1),
    opt.target_class("Explain this class in every image instead (K = 1), by name or index."),
)
@click.option("--input-size", metavar="WxH",
              help="The model's input size, width x height as video people write it (e.g. 320x240; until December "
                   "2026 it was HxW). Default: the model's own; the maps' size follows.")
@opt.precision("The model's weights and arithmetic inside the graph; the maps are always computed in fp32.",
               names=choices.EXPORT_PRECISIONS, default="fp32")
@click.option("--from-frames", is_flag=True,
              help="Take uint8 BGR frames of any size (N, H, W, 3) as input and resize and normalize them inside "
                   "the graph, instead of a normalized float32 batch.")
@click.option("--overwrite", is_flag=True, help="Replace --output if it exists.")
@opt.verbose()
def export_command(model_name: str, weights: str | None, output: Path, layer: str | None, method: str | None,
                   topk: int, class_: str | None, input_size: str | None, precision: str, from_frames: bool,
                   overwrite: bool, verbose: int) -> None:
    """Write the model and its explanation as one ONNX file, which runs with ONNX Runtime alone.

    No PyTorch and no autograd at run time: the graph computes the logits, the
    top-K classes and their probabilities, and each class's map, min-max
    normalized to [0, 1], so a C++ program or an edge device gets the
    explanation from one ONNX Runtime call.
    """
    setup_logging(verbose)
    started = time.perf_counter()
    size = _input_size(input_size)
    method = method or choices.DEFAULT_METHOD
    if class_ is not None and topk != 1:
        raise LivecamError("--class explains one class per image: leave out --topk, or --class to explain the "
                           "top-K classes")
    require_torch("livecam export")
    from livecam.export import export_explainer, exportable
    from livecam.zoo import RANDOM, load_model, resolve_class

    loaded = load_model(model_name, weights=weights, device="cpu")
    if weights == RANDOM:
        logging.warning("--weights random: the model is untrained, its classes and maps mean nothing")
    if layer is None:
        exportable(loaded, method)  # refuse before the slow part
    target = resolve_class(class_, loaded.class_names) if class_ is not None else None
    path = export_explainer(loaded, output, method=method, layer=layer, topk=topk, target_class=target,
                            input_size=size, precision=precision, from_frames=from_frames)
    what = f"class '{loaded.class_names[target]}'" if target is not None else f"top-{topk}"
    click.echo(f"livecam: wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {loaded.name} {method} of {what}, "
               f"{'uint8 BGR frames' if from_frames else 'normalized float32'} input, {precision}, in "
               f"{time.perf_counter() - started:.1f} s")
