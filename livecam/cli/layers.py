"""``livecam layers``: the layers a model can be explained at, with their outputs, layouts and heads.

Picking the layer is what users of CAM libraries struggle with most: a layer with
no grid, a token sequence that needs reshaping, or one whose gradient is zero.
This command probes the model once (:func:`livecam.zoo.analysis.survey_layers`)
and shows, for each candidate, what its output is, how livecam reads it as a
map, and which methods are exact and exportable there.
"""

from __future__ import annotations

import textwrap
from typing import TYPE_CHECKING

import click

import livecam.cli.options as opt
from livecam import choices
from livecam.cli.shell import CONTEXT_SETTINGS, LivecamCommand, say, setup_logging
from livecam.errors import LivecamError, require_torch

if TYPE_CHECKING:
    from livecam.zoo.analysis import LayerSurvey

LAYERS_EPILOG = """\b
Examples:
  livecam layers --model resnet50 --weights random
  livecam layers --model timm:vit_small_patch16_224 --weights vit.safetensors
  livecam layers --model ./my-hf-folder --all
Then pass the layer's name to livecam run, annotate or export with --layer.
"""


EXACT = "exact, all export"
AUTOGRAD = "autograd; eigencam exports"
ZERO = "zero gradient; eigencam only"
LEGEND = (f"methods: '{EXACT}': the head is global average pooling and one Linear layer, so CAM and the gradient "
          f"methods take the closed-form gradient (no backward pass) and export as one ONNX graph "
          f"({', '.join(choices.EXPORT_METHODS)}); '{AUTOGRAD}': the gradient methods run a backward pass from the "
          f"class score to this layer, in PyTorch, and {', '.join(choices.ANY_HEAD_EXPORT_METHODS)} exports; "
          f"'{ZERO}': the class score does not depend on this layer's grid (a class-token head read after the last "
          "attention), so gradient maps would be blank: use eigencam or scorecam, or an earlier layer.")


def methods_at(row: LayerSurvey) -> str:
    """What runs at a layer, in a few words: exact (closed form) and exportable, autograd, or nothing."""
    head = row.head
    if head is not None and head.kind == "gap_linear":
        return EXACT
    if not row.grid_gradient:
        return ZERO
    return AUTOGRAD


def shown(row: LayerSurvey, everything: bool) -> bool:
    """The default listing: the default layer, and the blocks, stages and transformer norms with a grid."""
    if everything or row.default:
        return True
    transformer_norm = "Norm" in row.kind and row.layout is not None and row.layout.kind != "nchw"
    return row.spatial and (not row.leaf or transformer_norm)


def table(rows: list[LayerSurvey], everything: bool) -> list[str]:
    """The listing as lines of text, aligned in columns; the default layer marked with '*'."""
    picked = [r for r in rows if shown(r, everything)]
    cells = [("", "layer", "module", "output", "layout", "methods")]
    for r in picked:
        layout = r.layout.describe() if r.layout is not None else f"none: {r.reason}"
        where = methods_at(r) if r.spatial else "-"
        cells.append(("*" if r.default else "", r.name, r.kind, "x".join(map(str, r.shape)) or "-", layout, where))
    widths = [max(len(c[i]) for c in cells) for i in range(5)]
    return ["  ".join(c[i].ljust(widths[i]) for i in range(5)) + "  " + c[5] for c in cells]


@click.command("layers", cls=LivecamCommand, context_settings=CONTEXT_SETTINGS, epilog=LAYERS_EPILOG,
               short_help="The layers a model can be explained at, and which methods are exact there.")
@opt.apply(
    opt.model("The model, as for livecam run: a zoo model, timm:NAME, a Hugging Face folder or "
              "FILE.py:FUNCTION (the survey runs it in PyTorch).", metavar="NAME"),
    opt.weights(),
)
@click.option("--all", "everything", is_flag=True,
              help="List every module that runs, also leaves and those with no grid (with the reason).")
@opt.verbose()
def layers_command(model_name: str, weights: str | None, everything: bool, verbose: int) -> None:
    """List the layers of a model that livecam can explain, in the order they run.

    For each: its output's shape, how livecam reads it as a map (an (N, C, H, W)
    map, a channels-last (N, H, W, C) map, or a vision transformer's tokens on the
    patch grid, with the class and other prefix tokens dropped), and which methods
    are exact and exportable there. The default layer (the one used when --layer
    is left out) is marked '*'. By default the listing shows blocks, stages and
    the norms of transformers; --all shows every module.
    """
    setup_logging(verbose)
    if model_name.strip().lower().endswith(".onnx"):
        raise LivecamError(f"livecam layers probes a PyTorch model, and {model_name} is an exported graph, whose layer "
                           "is fixed; pass the model it was exported from")
    require_torch("livecam layers")
    from livecam.zoo import load_model
    from livecam.zoo.analysis import survey_layers

    loaded = load_model(model_name, weights=weights, device="cpu")
    rows = survey_layers(loaded.module, loaded.preprocess.size)
    h, w = loaded.preprocess.size
    say(f"{loaded.name} ({loaded.weights}), input {w}x{h}, {loaded.info.num_classes} classes; "
        f"default layer {loaded.target_layer} ({loaded.info.layout.describe()})")
    for line in table(rows, everything):
        say(line.rstrip())
    head = loaded.info.head
    say(f"the head after {loaded.target_layer}: "
        + ("global average pooling and one Linear layer" if head.kind == "gap_linear" else head.reason))
    for line in textwrap.wrap(LEGEND, 110):
        say(line)
