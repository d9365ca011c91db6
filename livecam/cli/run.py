"""``livecam run`` (the default command): one source explained frame by frame, shown, recorded or served.

The command opens what the user asked for in the order that fails fastest (the source, then
every sink, the server's port before the model loads), runs the loop of :mod:`livecam.pipeline`
and says in a few lines how it went.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from livecam import choices
import livecam.cli.options as opt
from livecam.cli.options import InputPath, OutputPath
from livecam.cli.shell import (CONTEXT_SETTINGS, EXIT_INTERRUPTED, USER_QT_FONTDIR, LivecamCommand, fail,
                               progress_bar, run_summary, say, setup_logging)
from livecam.errors import LivecamError, option
from livecam.text import plural

if TYPE_CHECKING:
    from tqdm import tqdm

    from livecam.engines.base import AnyEngine

    from livecam.sinks import Sink, VideoFileSink
    from livecam.sinks.serve import ServeSink
    from livecam.sources import Source


class ReconnectType(click.ParamType[float, object]):
    """--reconnect: seconds (a number >= 0) or 'forever' (math.inf)."""

    name = "seconds"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        text = str(value).strip().lower()
        if text in ("forever", "inf", "infinity"):
            return float("inf")
        try:
            seconds = float(text)
        except ValueError:
            seconds = -1.0
        if not seconds >= 0 or seconds == float("inf"):
            self.fail(f"{value!r} is not a number of seconds (0 or more) or 'forever'", param, ctx)
        return seconds


RUN_EPILOG = """\b
Examples:
  livecam --source 0                                  explain the webcam live
  livecam --source demo --output demo.mp4 --no-show   annotate the built-in clip
  livecam --source video.mp4 --output out.mp4         annotate a recorded video
  livecam --source photos/ --class tabby --no-show --output cats.mp4
  livecam --model lite0.onnx --source 0               a graph from livecam export: no PyTorch
  livecam --source 0 --compare mobilenet_v2           two models side by side

\b
In the window, q or Esc quits and h shows the keys that change the view
live (method, class, panels, opacity, colour map, pause, snapshot).
Ctrl-C stops a run between frames; the recording then holds every
processed frame and plays to the end.
Bad input exits with code 2 and one line saying what to do.

\b
Other commands (each with --help):
  livecam annotate   annotate many recordings into a folder, with a manifest
  livecam export     the model and its explanation as one ONNX file
  livecam bench      latency (p50/p90/p99), FPS and start-up; --compare
  livecam evaluate   how faithful each method's maps are
  livecam layers     the layers of a model to explain at, and the default
"""

_MAX_VIEWERS = 4  # livecam.sinks.serve.DEFAULT_MAX_VIEWERS, which --help shows without importing the server


@click.command("run", cls=LivecamCommand, context_settings=CONTEXT_SETTINGS, epilog=RUN_EPILOG,
               short_help="Explain a camera, video, stream or images frame by frame (the default command).")
@click.option("--source", "-s", required=True, type=InputPath(), metavar="SOURCE",
              help="What to explain: a camera index (0), a video file, an image or a folder of images, "
                   "a stream URL (rtsp://, http://, ...), or 'demo' for the built-in clip.")
@opt.apply(
    opt.model(opt.RUN_MODEL_HELP),
    opt.weights(),
    opt.method(opt.RUN_METHOD_HELP),
    opt.layer("The layer to explain, as a module path (e.g. layer4, features.7), or for an ONNX classifier "
              "the name of a tensor in it. Default: the last feature map before the pooling head."),
    opt.target_class("Explain this ImageNet class in every frame, by name (case-insensitive, e.g. 'tabby') "
                     "or index. Default: each frame's most probable class."),
    opt.topk(),
    opt.input_size(),
    opt.graph_input(),
    opt.compare(),
)
@click.option("--panels", is_flag=True,
              help="Explain each of the --topk most probable classes in its own labelled panel (one forward "
                   "pass and one batched backward for all of them), tiled as wide as the frame.")
@click.option("--view", type=click.Choice(choices.VIEWS), default="overlay", show_default=True,
              help="guided: show beside the overlay the guided detail map of the explained class (Guided "
                   "Grad-CAM for gradcam: the guided backprop gradient times the map), at input resolution.")
@opt.smooth()
@opt.device("auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N. auto: on a CPU, ONNX Runtime; with an "
            "NVIDIA GPU, PyTorch's CUDA path for zoo models and, for a .onnx graph, ONNX Runtime's "
            "TensorRT, then CUDA provider, whichever loads. tensorrt runs graphs on ONNX Runtime's "
            "TensorRT provider (fp16, engines cached).")
@click.option("--output", "-o", type=OutputPath(suffixes=choices.RECORDING_SUFFIXES), metavar="FILE",
              help="Record the annotated video (.mp4, .avi, .mkv or .mov) at the source's size and frame "
                   "rate; for cameras and streams, the rate measured over the first frames.")
@opt.apply(opt.codec(), opt.crf())
@click.option("--overwrite", is_flag=True,
              help="Replace the --output and --log files, and the maps in --save-maps, if they exist.")
@click.option("--log", "log_path", type=OutputPath(), metavar="FILE.jsonl",
              help="Write one JSON line per frame: its index and source time, the top classes and their "
                   "probabilities, each stage's milliseconds, the latency and the frames dropped so far "
                   "(fields in the README). Lines are written whole as frames finish.")
@click.option("--save-maps", type=OutputPath(folder=True), metavar="DIR",
              help="Save each frame's raw maps (float32 in [0, 1] at the layer's resolution) with their "
                   "classes and scores as DIR/frame_000123.npz (created if missing).")
@click.option("--on-error", type=click.Choice(("stop", "skip")), default="stop", show_default=True,
              help="When the model fails on a frame (out of memory, say): stop the run with everything so far "
                   "recorded and exit code 1, or skip the frame with a warning and go on (the log marks it).")
@click.option("--show/--no-show", default=None,
              help="Show the annotated frames in a window. Default: show when a display exists.")
@opt.pace()
@click.option("--serve", metavar="[HOST:]PORT",
              help="Watch the run in a browser at http://HOST:PORT/: the annotated video (MJPEG, with its speed "
                   "readout) and the most probable classes as bars. HOST defaults to 127.0.0.1 (this "
                   "machine only; 0.0.0.0 for every network interface); port 0 picks a free port. Works with "
                   "--no-show on headless boxes, and with --output. The server stops when the run ends.")
@click.option("--serve-controls", type=click.Choice(("on", "off")), default="on", show_default=True,
              help="With --serve: the page's buttons change the view live (method, class, panels, opacity, colour "
                   "map, smoothing, pause), as the window's keys do; off: the page only watches.")
@click.option("--max-viewers", type=click.IntRange(1, 64), cls=opt.LibraryDefault, implied=str(_MAX_VIEWERS),
              metavar="N",
              help="With --serve: how many browsers may watch the video at once; one more is turned away "
                   "(HTTP 503). A slow viewer skips to the latest frame and never slows the run.")
@click.option("--max-frames", type=click.IntRange(min=1), metavar="N", help="Stop after N frames.")
@click.option("--snapshots", type=OutputPath(folder=True), metavar="DIR",
              help="Where the window's s key saves a snapshot: the frame as shown, the source frame (PNG) and its "
                   "maps (.npz). Default: the current folder.")
@opt.apply(
    opt.alpha(),
    opt.colormap(),
    opt.precision("The model's arithmetic: auto is fp16 on CUDA and fp32 on the CPU. The map itself is "
                  "always computed in fp32."),
    opt.batch("Frames explained per step, for files and images (more throughput on a GPU). Cameras "
              "and streams always take the latest frame, dropping the ones there was no time for."),
)
@click.option("--graph/--no-graph", default=True, show_default=True,
              help="On CUDA, capture the whole per-frame step in a CUDA graph and replay it (eager when "
                   "capture fails).")
@opt.backend()
@click.option("--fps", type=click.FloatRange(0.1, 1000.0), metavar="RATE",
              help="Record at this constant frame rate (default: each frame at its time in the source, 2 a "
                   "second for images; cameras and streams: the rate measured over their first 2 s).")
@click.option("--reconnect", type=ReconnectType(), default=None, metavar="SECONDS|forever",
              help="Cameras and streams: when one stops delivering frames (unplugged, a network drop, the stream "
                   "ended, a read blocked for 5 s), reopen it with growing pauses for this long after its last good "
                   "frame, the frames going on into the same recording and window; then end the run as if the "
                   "source had ended. 0 ends at the first drop; forever never gives up. Default: 30. Files are "
                   "never reopened.")
@opt.verbose()
def run_command(source: str, output: Path | None, codec: str | None, crf: int | None, overwrite: bool,
                log_path: Path | None, save_maps: Path | None, on_error: str, show: bool | None, pace: bool | None,
                serve: str | None, serve_controls: str, max_viewers: int | None, max_frames: int | None,
                snapshots: Path | None, batch: int, fps: float | None, reconnect: float | None, verbose: int,
                **engine: Any) -> None:
    """Explain every frame of a camera, video, stream or images with Grad-CAM or another --method.

    Each frame gets the heatmap of where the classifier looked, blended over it,
    with the most probable classes and a speed readout. The result is shown in a
    window and/or recorded to --output, and served to browsers with --serve.
    """
    setup_logging(verbose)
    address = _serve_address(serve, max_viewers)
    from livecam.engines.launch import open_engine
    from livecam.pipeline import ModelError, default_pace, run
    from livecam.sinks import has_display
    from livecam.sources import open_source

    show_window = has_display() if show is None else show
    live = show_window or (address is not None and serve_controls == "on")  # a viewer may change the view
    options = dataclasses.replace(opt.engine_options(**engine), live=live)
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_source(source, reconnect=reconnect))
        if src.is_live and batch > 1:
            raise LivecamError(f"--batch {batch} is for files and images; a camera or stream is explained one latest "
                               "frame at a time (leave --batch out)")
        if src.is_live and pace:
            raise LivecamError(f"{option('pace')} is for files and images; a camera or stream is real time already "
                               f"(leave {option('pace')} out)")
        paced = default_pace(src.is_live, show_window or address is not None, output is not None) if pace is None \
            else pace
        sinks: list[Sink] = []
        recorder = None
        if output is not None:
            recorder = _recorder(stack, src, output, fps=fps, overwrite=overwrite, codec=codec, crf=crf)
            sinks.append(recorder)
        sinks.extend(_file_sinks(stack, src, log_path, save_maps, overwrite))
        window = server = None
        if show_window:
            from livecam.sinks import WindowSink

            window = stack.enter_context(WindowSink(f"livecam: {src.description}", font_dir=USER_QT_FONTDIR,
                                                    snapshots=snapshots))
            sinks.append(window)
        if address is not None:  # bound before the model loads: a port in use fails fast
            server = _server(stack, address, max_viewers, src.description, serve_controls == "on")
            sinks.append(server)
        launched = open_engine(options)
        stack.callback(launched.engine.close)
        controls = None
        if live:  # with --compare, the view's settings apply to both sides, and each keeps its method
            from livecam.controls import Controls

            controls = Controls(launched.engine)
            if window is not None:
                window.controls = controls
            if server is not None:
                server.controls = controls
        if launched.method == "scorecam":
            _warn_slow(launched.engine)
        if not sinks:
            logging.warning("nothing is shown or recorded (no display); pass --output FILE to record")
        say(f"livecam: {launched.summary}; source: {src.description}")
        total = min(filter(None, (src.frame_count, max_frames)), default=None)
        stop = threading.Event()
        with progress_bar(total, stop) as bar:
            try:
                report = run(src, launched.engine, sinks, max_frames=max_frames, batch=batch, stop=stop,
                             on_frame=_on_frame(bar), on_error=on_error, pace=paced, controls=controls)
            except ModelError as exc:
                report = exc.report
    run_summary(report, recorder)
    if report.error is not None:
        fail(report.error, 1)
    if report.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if report.skipped and not report.frames:
        fail(f"the model failed on every frame ({plural(report.skipped, 'frame')} skipped), so nothing was "
             "processed; see the warnings above", 1)


def _serve_address(serve: str | None, max_viewers: int | None) -> tuple[str, int] | None:
    """--serve's (host, port), checked before anything opens."""
    if serve is None:
        if max_viewers is not None:
            raise LivecamError("--max-viewers is for --serve; add --serve PORT to watch the run in a browser")
        return None
    from livecam.sinks.serve import parse_address

    return parse_address(serve)


def _recorder(stack: contextlib.ExitStack, src: Source, output: Path, **settings: Any) -> VideoFileSink:
    """The recording of ``src`` to --output (``settings``: fps, overwrite, codec, crf), closed with the run."""
    from livecam.sinks import record_source

    recorder = record_source(src, output, **settings)
    stack.enter_context(recorder)
    return recorder


def _file_sinks(stack: contextlib.ExitStack, src: Source, log_path: Path | None, save_maps: Path | None,
                overwrite: bool) -> list[Sink]:
    """The per-frame log (--log) and the raw maps (--save-maps), where asked for."""
    from livecam.sinks.records import JsonlLog, MapsSaver

    sinks: list[Sink] = []
    if log_path is not None:
        sinks.append(stack.enter_context(JsonlLog(log_path, overwrite=overwrite, source_path=src.path)))
    if save_maps is not None:
        sinks.append(stack.enter_context(MapsSaver(save_maps, overwrite=overwrite)))
    return sinks


def _server(stack: contextlib.ExitStack, address: tuple[str, int], max_viewers: int | None,
            description: str, controls: bool) -> ServeSink:
    """The browser view (--serve), listening when it returns; its address is said at once."""
    from livecam.sinks.serve import ServeSink

    server = ServeSink(*address, max_viewers=_MAX_VIEWERS if max_viewers is None else max_viewers,
                       source=description, controls=controls)
    stack.enter_context(server)
    say(f"livecam: serving {server.url}")
    return server


def _on_frame(bar: tqdm[Any]) -> Callable[[object], None]:
    """The pipeline's on_frame: count frames on the bar, and log (-v) how long after the command the first
    annotated frame came."""
    from livecam.timing import process_age

    first: list[float] = []

    def on_frame(_annotated: object) -> None:
        if not first:
            first.append(process_age())
            logging.getLogger("livecam").info("first annotated frame %.2f s after the command", first[0])
        bar.update()

    return on_frame


def _warn_slow(engine: AnyEngine) -> None:
    """Say how long a slow method's frames will take (Score-CAM: one forward pass per channel)."""
    cost = engine.expected_frame_time()
    if cost is not None:
        logging.warning("scorecam runs one forward pass per channel of %s (%d per frame): expect up to %.1f s per "
                        "frame on %s. It is for images and recorded video, not live sources.",
                        cost.layer, cost.passes, cost.seconds, cost.device)
