"""``livecam evaluate``: how faithful each method's maps are, measured on the model's own scores;
``--stability``: how steady one method's maps are on a video at each ``--smooth`` value.

The metrics are :mod:`livecam.cams.metrics` (they mask frames and run the PyTorch model, so a graph
from ``livecam export`` is refused with the zoo model to pass instead); the steadiness is
:mod:`livecam.stability`, on maps made by :mod:`livecam.cams.stability`.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

import livecam.cli.options as opt
from livecam.cli.options import InputPath, OutputPath
from livecam.cli.shell import CONTEXT_SETTINGS, LivecamCommand, say, setup_logging
from livecam.errors import LivecamError, option, require_torch
from livecam.text import plural

DEFAULT_SMOOTH = "0,0.5,1"
STABILITY_TOPK = 3  # classes explained per frame, for the hysteresis to choose from (livecam run's --topk default)


@click.command("evaluate", cls=LivecamCommand, context_settings=CONTEXT_SETTINGS,
               short_help="How faithful each method's maps are (deletion, insertion, Average Drop).")
@click.option("--source", "-s", type=InputPath(), default="demo", show_default=True,
              help="Images, a folder of images or a video ('demo': the built-in clip).")
@click.option("--methods", default=None, metavar="M1,M2,...",
              help="Methods to compare (default: every method the model supports).")
@click.option("--frames", type=click.IntRange(1, 1000), default=12, show_default=True,
              help="How many frames to evaluate, spread evenly over the source (with --stability: the frames "
                   "whose deletion and insertion are measured; the steadiness is measured on every frame).")
@click.option("--steps", type=click.IntRange(4, 256), default=32, show_default=True,
              help="Steps of the deletion and insertion curves.")
@opt.apply(
    opt.model("A zoo model, as for livecam run (the metrics need PyTorch).", metavar=None),
    opt.weights(),
    opt.device("auto (CUDA when available), cpu, cuda or cuda:N."),
)
@click.option("--stability", is_flag=True,
              help="On a video: how steady the maps of --method are at each --smooth value (consecutive maps' "
                   "correlation, class changes) and their deletion and insertion AUC, side by side.")
@click.option("--smooth", "smooth_values", cls=opt.LibraryDefault, implied=DEFAULT_SMOOTH, metavar="S1,S2,...",
              help="With --stability: the --smooth time constants to compare, in seconds (0: no smoothing).")
@opt.apply(opt.method("With --stability: the method whose maps are measured."))
@click.option("--max-frames", type=click.IntRange(min=2), metavar="N",
              help="With --stability: the first N frames only (needed for a camera or stream).")
@click.option("--json", "json_path", type=OutputPath(), metavar="FILE", help="Write the results as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace the --json file if it exists.")
@opt.verbose()
def evaluate_command(source: str, methods: str | None, frames: int, steps: int, model_name: str,
                     weights: str | None, device: str, stability: bool, smooth_values: str | None,
                     method: str | None, max_frames: int | None, json_path: Path | None, overwrite: bool,
                     verbose: int) -> None:
    """Compare how faithful each method's maps are: deletion and insertion AUC (Petsiuk et al. 2018),
    Average Drop and Increase in Confidence (Chattopadhay et al. 2018), against a random-map and a
    centre-Gaussian baseline. Each frame is explained for its top-1 class.

    With --stability, on a video: how steady one method's maps are at each --smooth value. The video is
    explained once and each value smooths those outputs, so only the smoothing differs. Per value: the
    Spearman and Pearson correlation of consecutive frames' maps (of the class each frame shows, at the
    layer's resolution; median and 10th percentile), how often that class changes, and the deletion and
    insertion AUC of the smoothed maps on --frames frames spread over the video.
    """
    setup_logging(verbose)
    if not stability:
        given = [name for name, value in (("smooth", smooth_values), ("method", method), ("max_frames", max_frames))
                 if value is not None]
        if given:
            raise LivecamError(f"{', '.join(option(name) for name in given)} only go{'es' if len(given) == 1 else ''} "
                               f"with {option('stability')}; "
                               f"without it, {option('methods')} chooses what to compare")
    elif methods is not None:
        raise LivecamError(f"{option('stability')} measures one method, {option('method')}; "
                           f"{option('methods')} is for the faithfulness table")
    values = parse_smooth(DEFAULT_SMOOTH if smooth_values is None else smooth_values) if stability else []
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

    if stability:
        _stability(source, values, method or "gradcam", frames, steps, max_frames, model_name, weights, device,
                   json_path)
        return
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


def parse_smooth(text: str) -> list[float]:
    """``--smooth S1,S2,...``: time constants in seconds, each checked, in the order given, without repeats."""
    from livecam.smooth import check_seconds

    values: list[float] = []
    for part in text.split(","):
        word = part.strip()
        try:
            value = check_seconds(float(word))
        except ValueError:
            raise LivecamError(f"{option('smooth')} takes time constants in seconds, separated by commas "
                               f"(e.g. {DEFAULT_SMOOTH}), not '{text}'") from None
        if value not in values:
            values.append(value)
    return values


def _stability(source: str, values: list[float], method: str, frames: int, steps: int, max_frames: int | None,
               model_name: str, weights: str | None, device: str, json_path: Path | None) -> None:
    import itertools

    from livecam.cams.stability import explain_video, measure
    from livecam.outputs import write_texts
    from livecam.smooth import CUT_THRESHOLD
    from livecam.sources import ImageSource, open_source, spread_indices
    from livecam.stability import table
    from livecam.zoo import load_model

    with open_source(source) as src:
        if isinstance(src, ImageSource) and (src.frame_count or 0) < 2:
            raise LivecamError(f"{option('stability')} measures how the maps change from frame to frame, so it "
                               f"needs a video (or a folder of images), not {src.description}")
        total = src.frame_count if not src.is_live else None
        if total is None and max_frames is None:
            raise LivecamError(f"{src.description} does not end: give {option('max_frames')} N for "
                               f"{option('stability')}")
        planned = min(x for x in (total, max_frames) if x is not None)
        loaded = load_model(model_name, weights=weights, device=device)
        say(f"livecam evaluate --stability: {loaded.name}, {method}, {src.description}, "
            f"--smooth {','.join(f'{v:g}' for v in values)}, deletion and insertion on "
            f"{plural(min(frames, planned), 'frame')}, {steps} steps...")
        read = src if max_frames is None else itertools.islice(src, max_frames)
        outputs = explain_video(loaded, read, method, topk=STABILITY_TOPK, keep=spread_indices(planned, frames))
    if len(outputs) < 2:
        raise LivecamError(f"{option('stability')} needs two frames or more; {src.description} gave "
                           f"{plural(len(outputs), 'frame')}")
    rows = measure(loaded, outputs, values, steps)
    click.echo(f"{loaded.name}, {method}, {plural(len(outputs), 'frame')} of {src.description}:")
    click.echo(table(rows))
    write_texts((json_path, json.dumps({
        "model": loaded.name, "method": method, "layer": outputs.layer, "source": source,
        "frames": len(outputs), "auc_frames": len(outputs.inputs), "steps": steps, "topk": STABILITY_TOPK,
        "cut_threshold": CUT_THRESHOLD, "rows": [asdict(r) for r in rows]}, indent=2)))


def _graph_model(path: str) -> str | None:
    """The zoo model an exported graph was made from, as its metadata says (None when it cannot be read)."""
    from livecam.engines.runtime.graph import read_metadata

    try:
        return read_metadata(Path(path).expanduser()).get("model")
    except LivecamError:  # missing or not ONNX: the message then names no model
        return None
