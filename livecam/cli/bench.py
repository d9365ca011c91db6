"""``livecam bench``: latency percentiles, FPS and start-up on this machine, or earlier reports compared.

The measuring is :mod:`livecam.bench`; the command passes the options on, prints the table and writes
the reports the user asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

import livecam.cli.options as opt
from livecam.cli.options import InputPath, OutputPath
from livecam.cli.shell import CONTEXT_SETTINGS, LivecamCommand, say, setup_logging
from livecam import choices
from livecam.errors import LivecamError

BENCH_EPILOG = """\b
Examples:
  livecam bench                                   the default model on this machine's default engine
  livecam bench --model lite0.onnx --device tensorrt --json orin.json
  livecam bench --backend torch --size 1280x720   the PyTorch engine on 720p frames
  livecam bench --compare orin.json x86.json --plot compare.png
"""


@click.command("bench", cls=LivecamCommand, context_settings=CONTEXT_SETTINGS, epilog=BENCH_EPILOG,
               short_help="Latency percentiles, FPS and start-up, as edge devices are compared.")
@click.argument("reports", nargs=-1, type=InputPath(path_type=Path), metavar="[REPORT.json]...")
@click.option("--compare", is_flag=True,
              help="Compare JSON reports of earlier runs side by side (a Markdown table; --plot draws them) "
                   "instead of running the benchmark.")
@opt.apply(
    opt.model(),
    opt.weights(),
    opt.method(),
    opt.layer("As for livecam run."),
    opt.precision(),
    opt.batch("Frames per step."),
)
@click.option("--source", "-s", type=InputPath(), default="demo", show_default=True,
              help="Frames to measure on: a video, images or 'demo' (decoded once, repeated if short).")
@click.option("--size", metavar="WxH", help="Resize the frames to this size first (e.g. 1280x720, 1920x1080).")
@click.option("--frames", type=click.IntRange(10, 100000), default=300, show_default=True,
              help="Frames to time (after --warmup).")
@click.option("--warmup", type=click.IntRange(0, 1000), default=20, show_default=True)
@opt.device("As for livecam run (tensorrt: ONNX Runtime's).")
@click.option("--graph/--no-graph", default=True, show_default=True,
              help="On CUDA, capture the PyTorch engine's whole step in a CUDA graph and replay it.")
@opt.backend()
@click.option("--fold/--no-fold", default=True, show_default=True,
              help="The PyTorch engine: fold each BatchNorm into the convolution before it (as livecam run does), "
                   "or time the model unfolded.")
@click.option("--peer/--no-peer", default=True, show_default=True,
              help="Also time pytorch-grad-cam (pip install grad-cam) on the same frames (zoo models only).")
@click.option("--startup", type=click.IntRange(0, 20), default=3, show_default=True, metavar="N",
              help="Start livecam run N times in fresh processes and time the command to its first annotated "
                   "frame (the first run may export and cache the graph; the median of the others is reported).")
@click.option("--label", metavar="TEXT", help="A name for this run in --compare tables (default: the file's name).")
@click.option("--json", "json_path", type=OutputPath(), metavar="FILE",
              help="Write the report as JSON (schema livecam-bench/2; see benchmarks/README.md).")
@click.option("--markdown", "md_path", type=OutputPath(), metavar="FILE",
              help="Write the table as Markdown.")
@click.option("--plot", "plot_path", type=OutputPath(suffixes=choices.PLOT_SUFFIXES), metavar="FILE.png",
              help="Draw a chart (needs matplotlib): p50 bars with p90 and p99 marked.")
@click.option("--overwrite", is_flag=True, help="Replace the --json, --markdown and --plot files if they exist.")
@opt.verbose()
def bench_command(reports: tuple[Path, ...], compare: bool, model_name: str, batch: int, source: str,
                  size: str | None, frames: int, warmup: int, peer: bool, startup: int, label: str | None,
                  json_path: Path | None, md_path: Path | None, plot_path: Path | None, overwrite: bool,
                  verbose: int, **engine: Any) -> None:
    """Time explanations as edge devices are compared: p50, p90 and p99 latency per stage and per frame,
    end-to-end FPS on a real video, start-up, and the explanation against plain inference of the same
    model and against pytorch-grad-cam, on the same frames.

    The JSON report records the device (CPU, GPU and driver, Jetson power mode), the provider or backend,
    precision, batch, input size and versions; --compare lines reports from several machines up.
    """
    setup_logging(verbose)
    from livecam import bench
    from livecam.outputs import write_texts

    if compare or reports:
        if not compare:
            raise LivecamError("report files are for --compare; add --compare, or leave them out to run the benchmark")
        if not reports:
            raise LivecamError("--compare needs the JSON reports to compare: livecam bench --compare a.json b.json")
        results = [bench.load_result(path) for path in reports]
        table = bench.compare_markdown(results)
        click.echo(table)
        write_texts((md_path, table))
        if plot_path is not None:
            bench.plot_compare(results, plot_path)
        return
    options = opt.engine_options(model_name=model_name, **engine)
    wanted = bench.parse_size(size)
    say(f"livecam bench: {model_name}, {frames} frames from {source}{f' at {size}' if size else ''}...")
    result = bench.run_bench(options, batch=batch, source=source, size=wanted, frames=frames, warmup=warmup,
                             peer=peer, startup=startup, label=label or "")
    table = result.markdown()
    click.echo(table)
    write_texts((json_path, result.to_json()), (md_path, table))
    if plot_path is not None:
        bench.plot(result, plot_path)
