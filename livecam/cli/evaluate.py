"""``livecam evaluate``: how faithful each method's maps are, measured on the model's own scores.

The metrics are :mod:`livecam.cams.metrics` (they mask frames and run the PyTorch model, so a graph
from ``livecam export`` is refused with the zoo model to pass instead).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

import livecam.cli.options as opt
from livecam.cli.options import InputPath, OutputPath
from livecam.cli.shell import CONTEXT_SETTINGS, LivecamCommand, say, setup_logging
from livecam.errors import LivecamError, require_torch
from livecam.text import plural


@click.command("evaluate", cls=LivecamCommand, context_settings=CONTEXT_SETTINGS,
               short_help="How faithful each method's maps are (deletion, insertion, Average Drop).")
@click.option("--source", "-s", type=InputPath(), default="demo", show_default=True,
              help="Images, a folder of images or a video ('demo': the built-in clip).")
@click.option("--methods", default=None, metavar="M1,M2,...",
              help="Methods to compare (default: every method the model supports).")
@click.option("--frames", type=click.IntRange(1, 1000), default=12, show_default=True,
              help="How many frames to evaluate, spread evenly over the source.")
@click.option("--steps", type=click.IntRange(4, 256), default=32, show_default=True,
              help="Steps of the deletion and insertion curves.")
@opt.apply(
    opt.model("A zoo model, as for livecam run (the metrics need PyTorch).", metavar=None),
    opt.weights(),
    opt.device("auto (CUDA when available), cpu, cuda or cuda:N."),
)
@click.option("--json", "json_path", type=OutputPath(), metavar="FILE", help="Write the results as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace the --json file if it exists.")
@opt.verbose()
def evaluate_command(source: str, methods: str | None, frames: int, steps: int, model_name: str,
                     weights: str | None, device: str, json_path: Path | None, overwrite: bool, verbose: int) -> None:
    """Compare how faithful each method's maps are: deletion and insertion AUC (Petsiuk et al. 2018),
    Average Drop and Increase in Confidence (Chattopadhay et al. 2018), against a random-map and a
    centre-Gaussian baseline. Each frame is explained for its top-1 class.
    """
    setup_logging(verbose)
    if model_name.strip().lower().endswith(".onnx"):
        raise LivecamError(f"livecam evaluate masks each frame and measures the PyTorch model's scores, so it takes "
                           f"a zoo model, not a graph: pass the model {model_name} was exported from "
                           f"(--model {_graph_model(model_name) or 'efficientnet_lite0, say'})")
    require_torch("livecam evaluate")
    from livecam.cams import METHODS
    from livecam.cams.metrics import evaluate, table
    from livecam.choices import suggest
    from livecam.outputs import write_texts
    from livecam.sources import open_source, spread_frames
    from livecam.zoo import GAP_LINEAR, load_model

    with open_source(source) as src:
        images = spread_frames(src, frames)
    loaded = load_model(model_name, weights=weights, device=device)
    if methods is None:
        chosen = [m for m in METHODS if m != "cam" or loaded.head.kind == GAP_LINEAR]
    else:
        chosen = [m.strip() for m in methods.split(",") if m.strip()]
        for m in chosen:
            if m not in METHODS:
                raise LivecamError(f"unknown method '{m}'{suggest(m, list(METHODS))}; choose from {', '.join(METHODS)}")
    say(f"livecam evaluate: {loaded.name}, {plural(len(images), 'frame')} of {src.description}, "
        f"{plural(len(chosen), 'method')}, {steps} steps...")
    rows = evaluate(loaded, images, chosen, steps)
    click.echo(table(rows))
    write_texts((json_path, json.dumps({"model": loaded.name, "source": source, "frames": len(images),
                                        "steps": steps, "methods": {k: asdict(v) for k, v in rows.items()}},
                                       indent=2)))


def _graph_model(path: str) -> str | None:
    """The zoo model an exported graph was made from, as its metadata says (None when it cannot be read)."""
    from livecam.engines.runtime.graph import read_metadata

    try:
        return read_metadata(Path(path).expanduser()).get("model")
    except LivecamError:  # missing or not ONNX: the message then names no model
        return None
