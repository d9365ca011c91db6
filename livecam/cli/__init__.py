"""The command line (click): the only place that prints or exits.

Bad input raises :class:`LivecamError` anywhere below; here it becomes one line
on stderr and exit code 2. Ctrl-C (or SIGTERM) ends a run between frames with
the recording complete, and exit code 130.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from pathlib import Path

import click
from click.core import ParameterSource

from livecam import __version__, choices
from livecam.errors import LivecamError, require_torch
from livecam.text import one_line, plural

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


class InputPath(click.Path):
    """A value that may name a file the command reads (``--source``, ``--model``, ``--weights``, reports).

    It is passed on as typed (a camera index, a URL or a zoo name are not paths); where it names an existing
    file or folder, no output of the command may be that path.
    """

    def __init__(self, path_type: type | None = None) -> None:
        super().__init__(path_type=path_type)


class OutputPath(click.Path):
    """A file (``folder=True``: a folder) the command writes, checked by :mod:`livecam.outputs` before any work."""

    def __init__(self, folder: bool = False, suffixes: tuple[str, ...] = ()) -> None:
        super().__init__(path_type=Path)
        self.folder = folder
        self.suffixes = suffixes


# From the torch-free livecam.choices, so that --help is quick; tests check that they match
# livecam.cams.METHODS and livecam.render.COLORMAPS.
METHOD_NAMES = choices.METHODS
COLORMAP_NAMES = choices.COLORMAPS
BACKEND_OPTION = click.option(
    "--backend", type=click.Choice(choices.BACKENDS), default="auto", show_default=True,
    help="The engine. auto: ONNX Runtime on a CPU wherever the method fits in one graph (the model and its "
         "explanation, exported once and cached; no PyTorch on later runs), PyTorch otherwise and on CUDA. "
         "onnx insists on ONNX Runtime; torch runs PyTorch.")


WEIGHTS_OPTION = click.option(
    "--weights", type=InputPath(), metavar="FILE|random",
    help="A state dict for the model, saved with torch.save(model.state_dict(), FILE) and loaded with "
         "weights_only=True. Default: the model's ImageNet weights (shipped for efficientnet_lite0; torchvision's "
         "cache or download otherwise). 'random': untrained, for timing.")
DEVICE_OPTION = click.option("--device", default="auto", show_default=True,
                             help="auto (CUDA when available), cpu, cuda or cuda:N.")
CODEC_OPTION = click.option(
    "--codec", type=click.Choice(["h264", "hevc", "mjpeg", "mp4v"]),
    help="The recording's codec. Default: h264 (x264, yuv420p) for .mp4, .mov and .mkv, which browsers, slide "
         "decks and phones play; mjpeg for .avi. hevc: smaller files, fewer players. mp4v: MPEG-4 Part 2.")
CRF_OPTION = click.option("--crf", type=click.IntRange(0, 51), metavar="0-51",
                          help="The h264/hevc quality: lower is better and bigger (default 23 for h264, 28 for hevc).")
VERBOSE_OPTION = click.option("-v", "--verbose", count=True, help="Say more (-vv for debug messages).")


def flag(setting: str) -> str:
    """The flag that gives a library setting: overwrite -> --overwrite, out_dir -> --out-dir."""
    return "--" + setting.replace("_", "-")


def _fail(message: str, code: int = EXIT_USAGE) -> None:
    click.echo(f"livecam: error: {one_line(message)}", err=True)
    sys.exit(code)


def _option_name(param: click.Parameter) -> str:
    return max(param.opts, key=len) if param.opts else param.name or "?"


def _input_files(values: tuple[object, ...]) -> list[Path]:
    """The existing files and folders among an input option's values ('demo': the built-in clip's file)."""
    from livecam.sources.demo import demo_clip_location

    found = []
    for value in values:
        text = str(value).strip()
        path = demo_clip_location() if text.lower() == "demo" else Path(text).expanduser()
        if text and path.exists():
            found.append(path)
    return found


def check_command_outputs(ctx: click.Context) -> None:
    """The one output rule (:func:`livecam.outputs.check_outputs`) for every output option of ``ctx``'s command."""
    from livecam.outputs import Output, check_outputs

    outputs: list[Output] = []
    inputs: list[Path] = []
    for param in ctx.command.params:
        value = ctx.params.get(param.name or "")
        if value is None:
            continue
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        if isinstance(param.type, OutputPath):
            outputs.extend(Output(_option_name(param), Path(v), param.type.folder, param.type.suffixes)
                           for v in values)
        elif isinstance(param.type, InputPath):
            inputs.extend(_input_files(values))
    check_outputs(outputs, inputs, overwrite=bool(ctx.params.get("overwrite")))


class LivecamCommand(click.Command):
    """A command whose outputs are checked, all by one rule, before its work begins."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            check_command_outputs(ctx)
            return super().invoke(ctx)
        except KeyboardInterrupt:  # past click, which would print an empty line for it
            raise _Interrupted from None


class _Interrupted(Exception):
    """Ctrl-C inside a command."""


class LivecamGroup(click.Group):
    """``livecam [run] OPTIONS``: ``run`` is the default command, so ``livecam --source 0`` works."""

    default_command = "run"
    command_class = LivecamCommand

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if args and args[0] in ("-h", "--help"):
            args = ["--help"]  # the tool's own help: what it is, its commands, where each one's options are
        elif args and not args[0].startswith("-") and args[0] not in self.commands:
            raise click.UsageError(f"no command '{args[0]}'{choices.suggest(args[0], list(self.commands))}; the "
                                   f"commands are {', '.join(self.commands)}, and a run takes options only "
                                   "(livecam --source 0)")
        elif args and args[0] not in self.commands and args[0] != "--version":
            args = [self.default_command, *args]
        return super().parse_args(ctx, args)

    def format_usage(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        formatter.write_usage(ctx.command_path, "[run] OPTIONS | COMMAND [ARGS]...")

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands, then every option of a run (the default command), then the tool's own."""
        self.format_commands(ctx, formatter)
        run = self.commands[self.default_command]
        run_ctx = click.Context(run, info_name=self.default_command, parent=ctx)
        records = [r for r in (p.get_help_record(run_ctx) for p in run.get_params(run_ctx)) if r is not None]
        with formatter.section("Options of a run (livecam [run] ...)"):
            formatter.write_dl([r for r in records if not r[0].startswith("-h, --help")])
        with formatter.section("Options"):
            formatter.write_dl([r for r in (p.get_help_record(ctx) for p in self.get_params(ctx)) if r is not None])

    def main(self, args=None, prog_name=None, **extra):  # noqa: ANN001 - click's signature
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.default_int_handler:  # not in a test runner or an embedding program with its own
            signal.signal(signal.SIGINT, _note_interrupt)
        try:
            code = super().main(args=args, prog_name=prog_name or "livecam", standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            code = 0
        except click.ClickException as exc:
            _fail(f"{exc.format_message()} (see 'livecam --help')", exc.exit_code or EXIT_USAGE)
        except LivecamError as exc:
            _fail(exc.render(flag), exc.exit_code)
        except (KeyboardInterrupt, click.exceptions.Abort, _Interrupted):
            _interrupted()
        except Exception as exc:  # noqa: BLE001 - a bug: one line unless debugging
            if _INTERRUPTS:  # Ctrl-C inside an import or a library call can come out as another error
                _interrupted()
            if os.environ.get("LIVECAM_DEBUG"):
                raise
            _fail(f"internal error: {type(exc).__name__}: {exc} (set LIVECAM_DEBUG=1 to see the traceback, "
                  "and please report it)", 1)
        finally:
            if signal.getsignal(signal.SIGINT) is _note_interrupt:
                signal.signal(signal.SIGINT, previous)
        sys.exit(code if isinstance(code, int) else 0)


_INTERRUPTS: list[int] = []  # Ctrl-C seen by _note_interrupt


def _note_interrupt(signum: int, frame: object) -> None:
    """Python's own SIGINT handler (KeyboardInterrupt), remembering that one came: a KeyboardInterrupt raised while
    an extension module initializes (onnxruntime's, at start-up) surfaces as ImportError instead."""
    _INTERRUPTS.append(signum)
    signal.default_int_handler(signum, frame)


def _interrupted() -> None:
    click.echo("livecam: interrupted", err=True)
    sys.exit(EXIT_INTERRUPTED)


MAIN_EPILOG = """\b
Examples:
  livecam --source 0                                  explain the webcam live, in a window
  livecam --source video.mp4 --output out.mp4         annotate a recorded video
  livecam --source demo --method cam --topk 3 --panels
  livecam annotate dashcam/ --out-dir annotated/      a whole archive, with a manifest
  livecam export --output lite0.onnx                  the model and its explanation in one ONNX file
  livecam bench --json this-box.json                  latency percentiles, FPS and start-up

\b
'livecam run --help' lists every option of a run; each command has its own --help.
"""


@click.group(cls=LivecamGroup, context_settings=CONTEXT_SETTINGS, epilog=MAIN_EPILOG)
@click.version_option(__version__, prog_name="livecam")
def main() -> None:
    """livecam: see what an image classifier looks at, live.

    It reads a webcam, a video, a stream or a folder of images, explains every
    frame with one of ten methods (Grad-CAM, CAM, Grad-CAM++, XGrad-CAM,
    LayerCAM, HiResCAM, Eigen-CAM, Score-CAM, guided backpropagation, Guided
    Grad-CAM), blends the map over the frame with the most probable classes,
    and shows, records or serves the result. 'run' is the default command:
    'livecam --source 0' is 'livecam run --source 0'.
    """


_USER_FFMPEG_LOGLEVEL = os.environ.get("OPENCV_FFMPEG_LOGLEVEL")  # as the user set it, before any command ran
# opencv-python's import replaces it with a font folder its wheels may lack; the window puts the user's back
_USER_QT_FONTDIR = None if "cv2" in sys.modules else os.environ.get("QT_QPA_FONTDIR")


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    # FFmpeg writes its own lines ("moov atom not found") to stderr; livecam's errors say it in one line.
    # OpenCV reads this once, when it first opens a video, so every command sets it before opening anything.
    # With -vv, FFmpeg logs as it does by default. (OpenCV's own FFmpeg log handler, used once this is set
    # to a level, writes to stdout.)
    if _USER_FFMPEG_LOGLEVEL is None and verbose < 2:
        os.environ["OPENCV_FFMPEG_LOGLEVEL"] = "-8"
        os.environ.setdefault("OPENCV_LOG_LEVEL", "SILENT")
    # other libraries (PIL, torch's exporter) only warn: their debug output is not livecam's to show
    logging.basicConfig(level=logging.WARNING, format="livecam: %(message)s", stream=sys.stderr)
    logging.getLogger("livecam").setLevel(level)


@contextlib.contextmanager
def _stop_on_signals(stop: threading.Event):
    """While running, Ctrl-C and SIGTERM set ``stop`` (the loop ends between frames); a second one aborts."""

    def handler(_signum: int, _frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class ReconnectType(click.ParamType):
    """--reconnect: seconds (a number >= 0) or 'forever' (math.inf)."""

    name = "seconds"

    def convert(self, value, param, ctx):  # noqa: ANN001, ANN201 - click's signature
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

\b
In the window, q or Esc quits. Ctrl-C stops a run between frames; the
recording then holds every processed frame and plays to the end.
Bad input exits with code 2 and one line saying what to do.

\b
Other commands (each with --help):
  livecam annotate   annotate many recordings into a folder, with a manifest
  livecam export     the model and its explanation as one ONNX file
  livecam bench      latency (p50/p90/p99), FPS and start-up; --compare
  livecam evaluate   how faithful each method's maps are
"""


@main.command("run", context_settings=CONTEXT_SETTINGS, epilog=RUN_EPILOG,
              short_help="Explain a camera, video, stream or images frame by frame (the default command).")
@click.option("--source", "-s", required=True, type=InputPath(), metavar="SOURCE",
              help="What to explain: a camera index (0), a video file, an image or a folder of images, "
                   "a stream URL (rtsp://, http://, ...), or 'demo' for the built-in clip.")
@click.option("--model", "-m", "model_name", type=InputPath(), default="efficientnet_lite0", show_default=True,
              metavar="NAME|FILE.onnx",
              help="efficientnet_lite0 (real ImageNet weights, shipped), a torchvision classification model by "
                   "name (resnet50, mobilenet_v2, vgg16, efficientnet_b0, convnext_tiny, ...), or FILE.onnx, a "
                   "graph from 'livecam export', which runs on ONNX Runtime alone (no PyTorch needed) with "
                   "the method, layer and classes it was exported with.")
@WEIGHTS_OPTION
@click.option("--method", type=click.Choice(METHOD_NAMES), default="gradcam", show_default=True,
              help="gradcam: Grad-CAM (Selvaraju et al. 2017). cam: CAM (Zhou et al. 2016), for heads of "
                   "global average pooling and one Linear layer. gradcampp: Grad-CAM++. xgradcam: XGrad-CAM. "
                   "layercam: LayerCAM (per-pixel weights; good on earlier layers). hirescam: HiResCAM. "
                   "eigencam: Eigen-CAM (class-agnostic, no gradients). scorecam: Score-CAM (one forward pass "
                   "per channel: seconds to a minute per frame, not live). guided: Guided Backpropagation "
                   "(input-resolution edges, weakly class-specific). guidedgradcam: Guided Grad-CAM.")
@click.option("--layer", metavar="MODULE.PATH",
              help="The layer to explain, as a module path (e.g. layer4, features.7). "
                   "Default: the last feature map before the pooling head.")
@click.option("--class", "class_", metavar="NAME|INDEX",
              help="Explain this ImageNet class in every frame, by name (case-insensitive, e.g. 'tabby') "
                   "or index. Default: each frame's most probable class.")
@click.option("--topk", type=click.IntRange(1, choices.MAX_TOPK), default=3, show_default=True,
              help="How many of the most probable classes to label on each frame.")
@click.option("--panels", is_flag=True,
              help="Explain each of the --topk most probable classes in its own labelled panel (one forward "
                   "pass and one batched backward for all of them), tiled as wide as the frame.")
@click.option("--view", type=click.Choice(choices.VIEWS), default="overlay", show_default=True,
              help="guided: show beside the overlay the guided detail map of the explained class (Guided "
                   "Grad-CAM for gradcam: the guided backprop gradient times the map), at input resolution.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N. auto: on a CPU, ONNX Runtime; with an "
                   "NVIDIA GPU, PyTorch's CUDA path for zoo models and, for a .onnx graph, ONNX Runtime's "
                   "TensorRT, then CUDA provider, whichever loads. tensorrt runs graphs on ONNX Runtime's "
                   "TensorRT provider (fp16, engines cached).")
@click.option("--output", "-o", type=OutputPath(suffixes=choices.RECORDING_SUFFIXES), metavar="FILE",
              help="Record the annotated video (.mp4, .avi, .mkv or .mov) at the source's size and frame "
                   "rate; for cameras and streams, the rate measured over the first frames.")
@CODEC_OPTION
@CRF_OPTION
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
@click.option("--serve", metavar="[HOST:]PORT",
              help="Watch the run in a browser at http://HOST:PORT/: the annotated video (MJPEG), the most "
                   "probable classes as bars, FPS, latency and dropped frames. HOST defaults to 127.0.0.1 (this "
                   "machine only; 0.0.0.0 for every network interface); port 0 picks a free port. Works with "
                   "--no-show on headless boxes, and with --output. The server stops when the run ends.")
@click.option("--max-viewers", type=click.IntRange(1, 64), default=4, show_default=True, metavar="N",
              help="With --serve: how many browsers may watch the video at once; one more is turned away "
                   "(HTTP 503). A slow viewer skips to the latest frame and never slows the run.")
@click.option("--max-frames", type=click.IntRange(min=1), metavar="N", help="Stop after N frames.")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Opacity of the heatmap over the frame.")
@click.option("--colormap", type=click.Choice(COLORMAP_NAMES), default="jet", show_default=True,
              help="The heatmap's colour map.")
@click.option("--precision", type=click.Choice(choices.PRECISIONS), default="auto", show_default=True,
              help="The model's arithmetic: auto is fp16 on CUDA and fp32 on the CPU. The map itself is "
                   "always computed in fp32.")
@click.option("--batch", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Frames explained per step, for files and images (more throughput on a GPU). Cameras "
                   "and streams always take the latest frame, dropping the ones there was no time for.")
@click.option("--graph/--no-graph", default=True, show_default=True,
              help="On CUDA, capture the whole per-frame step in a CUDA graph and replay it (eager when "
                   "capture fails).")
@BACKEND_OPTION
@click.option("--fps", type=click.FloatRange(0.1, 1000.0), metavar="RATE",
              help="Record at this constant frame rate (default: each frame at its time in the source, 2 a "
                   "second for images; cameras and streams: the rate measured over their first 2 s).")
@click.option("--reconnect", type=ReconnectType(), default=None, metavar="SECONDS|forever",
              help="Cameras and streams: when one stops delivering frames (unplugged, a network drop, the stream "
                   "ended, a read blocked for 5 s), reopen it with growing pauses for this long after its last good "
                   "frame, the frames going on into the same recording and window; then end the run as if the "
                   "source had ended. 0 ends at the first drop; forever never gives up. Default: 30. Files are "
                   "never reopened.")
@VERBOSE_OPTION
def run_command(source: str, model_name: str, weights: str | None, method: str, layer: str | None,
                class_: str | None, topk: int, panels: bool, view: str, device: str, output: Path | None,
                codec: str | None, crf: int | None, overwrite: bool, show: bool | None, serve: str | None,
                max_viewers: int, max_frames: int | None, alpha: float, colormap: str, precision: str, batch: int,
                graph: bool, backend: str, fps: float | None, reconnect: float | None, verbose: int,
                log_path: Path | None = None, save_maps: Path | None = None, on_error: str = "stop") -> None:
    """Explain every frame of a camera, video, stream or images with Grad-CAM or another --method.

    Each frame gets the heatmap of where the classifier looked, blended over it,
    with the most probable classes and a speed readout. The result is shown in a
    window and/or recorded to --output, and served to browsers with --serve.
    """
    _setup_logging(verbose)
    address = _serve_address(serve, max_viewers)
    from tqdm import tqdm

    from livecam.engines.launch import EngineOptions, open_engine
    from livecam.pipeline import ModelError, run
    from livecam.sinks.records import JsonlLog, MapsSaver
    from livecam.sinks import Sink, WindowSink, has_display, record_source
    from livecam.sources import open_source

    method_given = click.get_current_context().get_parameter_source("method") != click.core.ParameterSource.DEFAULT
    options = EngineOptions(model=model_name, weights=weights, method=method if method_given else None,
                            layer=layer, target_class=class_, topk=topk, panels=panels, view=view, device=device,
                            precision=precision, backend=backend, graph=graph, colormap=colormap, alpha=alpha)
    show_window = has_display() if show is None else show
    with contextlib.ExitStack() as stack:
        src = stack.enter_context(open_source(source, reconnect=reconnect))
        if src.is_live and batch > 1:
            raise LivecamError(f"--batch {batch} is for files and images; a camera or stream is explained one latest "
                               "frame at a time (leave --batch out)")
        sinks: list[Sink] = []
        recorder = None
        if output is not None:
            recorder = stack.enter_context(
                record_source(src, output, fps=fps, overwrite=overwrite, codec=codec, crf=crf))
            sinks.append(recorder)
        if log_path is not None:
            sinks.append(stack.enter_context(JsonlLog(log_path, overwrite=overwrite, source_path=src.path)))
        if save_maps is not None:
            sinks.append(stack.enter_context(MapsSaver(save_maps, overwrite=overwrite)))
        if show_window:
            sinks.append(stack.enter_context(WindowSink(f"livecam: {src.description}", font_dir=_USER_QT_FONTDIR)))
        if address is not None:  # bound before the model loads: a port in use fails fast
            from livecam.sinks.serve import ServeSink

            server = stack.enter_context(ServeSink(*address, max_viewers=max_viewers, source=src.description))
            sinks.append(server)
            click.echo(f"livecam: serving {server.url}", err=True)
        launched = open_engine(options)
        engine = launched.engine
        stack.callback(engine.close)
        if launched.method == "scorecam":
            _warn_slow(engine)
        if not sinks:
            logging.warning("nothing is shown or recorded (no display); pass --output FILE to record")
        click.echo(f"livecam: {launched.summary}; source: {src.description}", err=True)
        total = min(filter(None, (src.frame_count, max_frames)), default=None)
        stop = threading.Event()
        with tqdm(total=total, unit="frame", disable=None, file=sys.stderr, leave=False) as bar, \
                _stop_on_signals(stop):
            try:
                report = run(src, engine, sinks, max_frames=max_frames, batch=batch, stop=stop,
                             on_frame=_progress(bar), on_error=on_error)
            except ModelError as exc:
                report = exc.report
    _summary(report, recorder)
    if report.error is not None:
        _fail(report.error, 1)
    if report.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if report.skipped and not report.frames:
        _fail(f"the model failed on every frame ({plural(report.skipped, 'frame')} skipped), so nothing was "
              "processed; see the warnings above", 1)


def _serve_address(serve: str | None, max_viewers: int) -> tuple[str, int] | None:
    """--serve's (host, port), checked before anything opens."""
    if serve is None:
        if click.get_current_context().get_parameter_source("max_viewers") != click.core.ParameterSource.DEFAULT:
            raise LivecamError("--max-viewers is for --serve; add --serve PORT to watch the run in a browser")
        return None
    from livecam.sinks.serve import parse_address

    return parse_address(serve)


def _progress(bar):  # noqa: ANN001, ANN202 - tqdm; returns the pipeline's on_frame callback
    """Count frames on the bar, and log (-v) how long after the command the first annotated frame came."""
    from livecam.timing import process_age

    first = []

    def on_frame(_annotated: object) -> None:
        if not first:
            first.append(process_age())
            logging.getLogger("livecam").info("first annotated frame %.2f s after the command", first[0])
        bar.update()

    return on_frame


def _warn_slow(engine) -> None:  # noqa: ANN001 - Engine (imported lazily)
    """Say how long a slow method's frames will take (Score-CAM: one forward pass per channel)."""
    cost = engine.expected_frame_time()
    if cost is not None:
        logging.warning("scorecam runs one forward pass per channel of %s (%d per frame): expect up to %.1f s per "
                        "frame on %s. It is for images and recorded video, not live sources.",
                        cost.layer, cost.passes, cost.seconds, cost.device)


def _summary(report, recorder) -> None:  # noqa: ANN001 - RunReport, VideoFileSink (imported lazily)
    stages = ", ".join(f"{stage} {report.median_ms(stage):.1f} ms" for stage in report.stage_times
                       if report.stage_times[stage])
    ended = " (interrupted)" if report.interrupted else " (stopped in the window)" if report.stopped_by_user else ""
    dropped = f", {report.dropped} stale frames dropped" if report.dropped else ""
    dropped += f", {report.skipped} skipped (the model failed on them)" if report.skipped else ""
    click.echo(f"livecam: {plural(report.frames, 'frame')} in {report.seconds:.1f} s, "
               f"{report.fps:.1f} FPS end to end{dropped}{ended}")
    if stages:
        click.echo(f"livecam: per frame (median): {stages}")
    if recorder is not None:
        if recorder.frames_written:
            click.echo(f"livecam: wrote {recorder.path} ({plural(recorder.frames_written, 'frame')}, "
                       f"{recorder.size[0]}x{recorder.size[1]}, {recorder.fps:.1f} fps)")
        else:
            click.echo(f"livecam: no frame was processed, so {recorder.path} was not written")


ANNOTATE_EPILOG = """\b
Examples:
  livecam annotate dashcam/ --out-dir annotated/
  livecam annotate 'clips/**/*.mp4' --out-dir out/ --model lite0.onnx --jobs 2
  livecam annotate dashcam/ --out-dir annotated/ --force        redo every file

\b
Outputs mirror the inputs' folders: a folder's videos (found by extension,
recursively) are placed relative to that folder; files and glob matches
relative to the deepest folder holding them all. Each is an .mp4, written
under a hidden name and renamed when complete. DIR/manifest.jsonl gets one
line per input and run (the latest line per input wins); a rerun skips the
inputs done before with the same source (size, mtime) and options. A file
livecam did not write is never replaced (that input fails) unless --force.

\b
Exit codes: 0 every input done or skipped; 1 some failed (the table at the
end names them); 2 bad usage; 130 interrupted (finished files are kept and
recorded; the ones in progress leave no output).
"""


@main.command("annotate", context_settings=CONTEXT_SETTINGS, epilog=ANNOTATE_EPILOG,
              short_help="Annotate many recordings into a folder, with a manifest; reruns resume.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--out-dir", "-o", "out_dir", required=True, type=OutputPath(folder=True), metavar="DIR",
              help="Where the annotated videos and manifest.jsonl go (created if missing).")
@click.option("--model", "-m", "model_name", type=InputPath(), default="efficientnet_lite0", show_default=True,
              metavar="NAME|FILE.onnx",
              help="As for livecam run: a zoo model or FILE.onnx from livecam export (no PyTorch needed).")
@WEIGHTS_OPTION
@click.option("--method", type=click.Choice(METHOD_NAMES), default="gradcam", show_default=True,
              help="As for livecam run (see livecam run --help).")
@click.option("--layer", metavar="MODULE.PATH", help="The layer to explain. Default: the last feature map.")
@click.option("--class", "class_", metavar="NAME|INDEX",
              help="Explain this class in every frame, by name or index. Default: each frame's top class.")
@click.option("--topk", type=click.IntRange(1, choices.MAX_TOPK), default=3, show_default=True,
              help="How many of the most probable classes to label on each frame.")
@click.option("--panels", is_flag=True, help="Explain each of the --topk classes in its own labelled panel.")
@click.option("--precision", type=click.Choice(choices.PRECISIONS), default="auto", show_default=True,
              help="The model's arithmetic: auto is fp16 on CUDA and fp32 on the CPU.")
@click.option("--device", default="auto", show_default=True,
              help="auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N, as for livecam run.")
@BACKEND_OPTION
@click.option("--batch", type=click.IntRange(1, 256), default=1, show_default=True,
              help="Frames explained per step (more throughput on a GPU).")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Opacity of the heatmap over the frame.")
@click.option("--colormap", type=click.Choice(COLORMAP_NAMES), default="jet", show_default=True,
              help="The heatmap's colour map.")
@click.option("--jobs", "-j", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Worker processes, each loading the model once and taking files in turn. 1: in this process. "
                   "With --ray: the number of Ray actors (default 2).")
@click.option("--force", is_flag=True, help="Annotate every input again, also those a previous run finished, "
              "replacing files in the way that livecam did not write.")
@click.option("--threads", type=click.IntRange(1, 1024), metavar="N",
              help="CPU threads for each worker's model. Default: with --jobs N the cores shared out among the "
                   "N workers; with one worker the runtime's own choice (every core); on Ray 1, and each actor "
                   "asks Ray for as many CPUs as it has threads.")
@click.option("--chunk-seconds", type=click.FloatRange(0, min_open=True), metavar="SECONDS",
              help="Split each file longer than this at its keyframes into parts of at least SECONDS that the "
                   "workers (--jobs, --ray) annotate at the same time; the parts are joined, without encoding "
                   "again, into one output. Default: every file whole, by one worker.")
@click.option("--ray", "ray_address", is_flag=False, flag_value="local", default=None, metavar="[ADDRESS]",
              help="Run the files on Ray actors (--jobs of them, default 2), each loading the model once: with no "
                   "value a local Ray instance for this run, 'auto' the running cluster ('ray start --head'), or "
                   "the cluster at ADDRESS. --out-dir must be a path every node can write. Needs "
                   "pip install 'livecam[ray]'.")
@click.option("--gpus-per-worker", type=click.FloatRange(0, 64), metavar="N",
              help="With --ray: GPUs each actor asks for. Default: 1 where the cluster has GPUs, else 0.")
@click.option("--retries", type=click.IntRange(0, 100), default=2, show_default=True,
              help="With --ray: how often a worker that dies is restarted and its file tried again.")
@CODEC_OPTION
@CRF_OPTION
@VERBOSE_OPTION
def annotate_command(inputs: tuple[str, ...], out_dir: Path, model_name: str, weights: str | None, method: str,
                     layer: str | None, class_: str | None, topk: int, panels: bool, precision: str, device: str,
                     backend: str, batch: int, alpha: float, colormap: str, jobs: int, force: bool,
                     threads: int | None, chunk_seconds: float | None, ray_address: str | None,
                     gpus_per_worker: float | None, retries: int, codec: str | None, crf: int | None,
                     verbose: int) -> None:
    """Annotate many recordings (files, folders, globs): one annotated video per input in --out-dir,
    and a manifest line for each with its status, frames, speed and most frequent top classes.

    A rerun resumes: inputs done before are skipped. A bad input is reported and the rest go on.
    """
    _setup_logging(verbose)
    from tqdm import tqdm

    from livecam import annotate
    from livecam.engines.launch import EngineOptions

    method_given = click.get_current_context().get_parameter_source("method") != click.core.ParameterSource.DEFAULT
    options = EngineOptions(model=model_name, weights=weights, method=method if method_given else None,
                            layer=layer, target_class=class_, topk=topk, panels=panels, device=device,
                            precision=precision, backend=backend, colormap=colormap, alpha=alpha, threads=threads)
    settings = annotate.settings_of(options, codec=codec, crf=crf)  # a codec .mp4 cannot hold: refused here
    annotate.check_out_dir(out_dir, create=False)
    planned = annotate.plan(inputs, out_dir, settings, force=force)
    annotate.check_out_dir(out_dir)  # created once the inputs are known to be there
    if ray_address is not None:
        from livecam.annotate.ray import check_ray

        check_ray()  # without Ray: one line saying how to install it, before any work (Ray starts if there is some)
        jobs = jobs if click.get_current_context().get_parameter_source("jobs") == ParameterSource.COMMANDLINE else 2
    elif gpus_per_worker is not None:
        raise LivecamError("--gpus-per-worker goes with --ray")
    records: list[dict] = []
    chunker = annotate.Chunker(planned.jobs, chunk_seconds, settings)  # long files in parts: read their keyframes
    work = chunker.work
    in_process = ray_address is None and (jobs == 1 or len(work) == 1)  # as run_jobs decides
    worker = annotate.FileWorker(options, batch, settings) if work and in_process else None
    if worker is not None:
        click.echo(f"livecam: {worker.launched.summary}", err=True)
    pieces = len(work) - len(planned.jobs) + chunker.split
    parts = f" ({chunker.split} of them in {pieces} parts)" if chunker.split else ""
    refused = f", {len(planned.refused)} refused (a file in the way)" if planned.refused else ""
    click.echo(f"livecam annotate: {len(planned.jobs)} to annotate{parts}, {len(planned.skipped)} done before"
               f"{refused}, into {out_dir}"
               + ("" if in_process else f" with {plural(jobs, 'Ray actor' if ray_address else 'worker')}"), err=True)
    stop = threading.Event()
    with annotate.Manifest(out_dir.resolve()) as manifest:
        for record in annotate.early_records(planned, settings):
            records.append(record)
            manifest.append(record)
        early = len(records)
        with tqdm(total=annotate.frame_total(planned.jobs), unit="frame", disable=None, file=sys.stderr,
                  leave=False) as bar, _stop_on_signals(stop):
            bar.set_postfix_str(f"files 0/{len(planned.jobs)}")

            def on_result(record: dict) -> None:
                if record["status"] == annotate.INTERRUPTED:
                    return  # no output, no line: a rerun does it
                manifest.append(record)
                records.append(record)
                bar.set_postfix_str(f"files {len(records) - early}/{len(planned.jobs)}")

            chunker.on_result = on_result
            try:
                if ray_address is not None:
                    from livecam.annotate.ray import run_ray

                    run_ray(work, options, settings, batch=batch, workers=jobs, address=ray_address,
                            gpus_per_worker=gpus_per_worker, retries=retries, stop=stop, on_result=chunker.take,
                            on_frames=bar.update)
                else:
                    annotate.run_jobs(work, options, settings, batch=batch, workers=jobs, stop=stop,
                                      on_result=chunker.take, on_frames=bar.update, worker=worker)
            finally:
                chunker.close()
                if worker is not None:
                    worker.close()
    failed = [r for r in records if r["status"] == annotate.FAILED]
    click.echo(annotate.summary_table(sorted(records, key=lambda r: r["input"]), Path.cwd()))
    done = sum(r["status"] == annotate.DONE for r in records)
    click.echo(f"livecam annotate: {done} done, {len(planned.skipped)} skipped, {len(failed)} failed"
               + (", interrupted" if stop.is_set() else "") + f"; manifest {out_dir / annotate.MANIFEST_NAME}")
    if stop.is_set():
        sys.exit(EXIT_INTERRUPTED)
    if failed:
        sys.exit(1)


BENCH_EPILOG = """\b
Examples:
  livecam bench                                   the default model on this machine's default engine
  livecam bench --model lite0.onnx --device tensorrt --json orin.json
  livecam bench --backend torch --size 1280x720   the PyTorch engine on 720p frames
  livecam bench --compare orin.json x86.json --plot compare.png
"""


@main.command("bench", context_settings=CONTEXT_SETTINGS, epilog=BENCH_EPILOG,
              short_help="Latency percentiles, FPS and start-up, as edge devices are compared.")
@click.argument("reports", nargs=-1, type=InputPath(path_type=Path), metavar="[REPORT.json]...")
@click.option("--compare", is_flag=True,
              help="Compare JSON reports of earlier runs side by side (a Markdown table; --plot draws them) "
                   "instead of running the benchmark.")
@click.option("--model", "-m", "model_name", type=InputPath(), default="efficientnet_lite0", show_default=True,
              metavar="NAME|FILE.onnx",
              help="As for livecam run: a zoo model or FILE.onnx from livecam export (no PyTorch needed).")
@WEIGHTS_OPTION
@click.option("--method", type=click.Choice(METHOD_NAMES), default="gradcam", show_default=True)
@click.option("--layer", metavar="MODULE.PATH", help="As for livecam run.")
@click.option("--precision", type=click.Choice(choices.PRECISIONS), default="auto", show_default=True)
@click.option("--batch", type=click.IntRange(1, 256), default=1, show_default=True, help="Frames per step.")
@click.option("--source", "-s", type=InputPath(), default="demo", show_default=True,
              help="Frames to measure on: a video, images or 'demo' (decoded once, repeated if short).")
@click.option("--size", metavar="WxH", help="Resize the frames to this size first (e.g. 1280x720, 1920x1080).")
@click.option("--frames", type=click.IntRange(10, 100000), default=300, show_default=True,
              help="Frames to time (after --warmup).")
@click.option("--warmup", type=click.IntRange(0, 1000), default=20, show_default=True)
@click.option("--device", default="auto", show_default=True, help="As for livecam run (tensorrt: ONNX Runtime's).")
@click.option("--graph/--no-graph", default=True, show_default=True,
              help="On CUDA, capture the PyTorch engine's whole step in a CUDA graph and replay it.")
@BACKEND_OPTION
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
@VERBOSE_OPTION
def bench_command(reports: tuple[Path, ...], compare: bool, model_name: str, weights: str | None, method: str,
                  layer: str | None, precision: str, batch: int, source: str, size: str | None, frames: int,
                  warmup: int, device: str, graph: bool, backend: str, fold: bool, peer: bool, startup: int,
                  label: str | None, json_path: Path | None, md_path: Path | None, plot_path: Path | None,
                  overwrite: bool, verbose: int) -> None:
    """Time explanations as edge devices are compared: p50, p90 and p99 latency per stage and per frame,
    end-to-end FPS on a real video, start-up, and the explanation against plain inference of the same
    model and against pytorch-grad-cam, on the same frames.

    The JSON report records the device (CPU, GPU and driver, Jetson power mode), the provider or backend,
    precision, batch, input size and versions; --compare lines reports from several machines up.
    """
    _setup_logging(verbose)
    from livecam import bench
    from livecam.outputs import write_text

    if compare or reports:
        if not compare:
            raise LivecamError("report files are for --compare; add --compare, or leave them out to run the benchmark")
        if not reports:
            raise LivecamError("--compare needs the JSON reports to compare: livecam bench --compare a.json b.json")
        results = [bench.load_result(path) for path in reports]
        table = bench.compare_markdown(results)
        click.echo(table)
        if md_path is not None:
            write_text(md_path, table)
        if plot_path is not None:
            bench.plot_compare(results, plot_path)
        return
    from livecam.engines.launch import EngineOptions

    method_given = click.get_current_context().get_parameter_source("method") != click.core.ParameterSource.DEFAULT
    options = EngineOptions(model=model_name, weights=weights, method=method if method_given else None, layer=layer,
                            device=device, precision=precision, backend=backend, graph=graph, fold_bn=fold)
    wanted = bench.parse_size(size)
    click.echo(f"livecam bench: {model_name}, {frames} frames from {source}{f' at {size}' if size else ''}...",
               err=True)
    result = bench.run_bench(options, batch=batch, source=source, size=wanted, frames=frames, warmup=warmup,
                             peer=peer, startup=startup, label=label or "")
    table = result.markdown()
    click.echo(table)
    if json_path is not None:
        write_text(json_path, result.to_json())
    if md_path is not None:
        write_text(md_path, table)
    if plot_path is not None:
        bench.plot(result, plot_path)


@main.command("evaluate", context_settings=CONTEXT_SETTINGS,
              short_help="How faithful each method's maps are (deletion, insertion, Average Drop).")
@click.option("--source", "-s", type=InputPath(), default="demo", show_default=True,
              help="Images, a folder of images or a video ('demo': the built-in clip).")
@click.option("--methods", default=None, metavar="M1,M2,...",
              help="Methods to compare (default: every method the model supports).")
@click.option("--frames", type=click.IntRange(1, 1000), default=12, show_default=True,
              help="How many frames to evaluate, spread evenly over the source.")
@click.option("--steps", type=click.IntRange(4, 256), default=32, show_default=True,
              help="Steps of the deletion and insertion curves.")
@click.option("--model", "-m", "model_name", type=InputPath(), default="efficientnet_lite0", show_default=True,
              help="A zoo model, as for livecam run (the metrics need PyTorch).")
@WEIGHTS_OPTION
@DEVICE_OPTION
@click.option("--json", "json_path", type=OutputPath(), metavar="FILE", help="Write the results as JSON.")
@click.option("--overwrite", is_flag=True, help="Replace the --json file if it exists.")
@VERBOSE_OPTION
def evaluate_command(source: str, methods: str | None, frames: int, steps: int, model_name: str,
                     weights: str | None, device: str, json_path: Path | None, overwrite: bool, verbose: int) -> None:
    """Compare how faithful each method's maps are: deletion and insertion AUC (Petsiuk et al. 2018),
    Average Drop and Increase in Confidence (Chattopadhay et al. 2018), against a random-map and a
    centre-Gaussian baseline. Each frame is explained for its top-1 class.
    """
    _setup_logging(verbose)
    import json
    from dataclasses import asdict

    if model_name.strip().lower().endswith(".onnx"):
        raise LivecamError(f"livecam evaluate masks each frame and measures the PyTorch model's scores, so it takes "
                           f"a zoo model, not a graph: pass the model {model_name} was exported from "
                           f"(--model {_graph_model(model_name) or 'efficientnet_lite0, say'})")
    require_torch("livecam evaluate")
    from livecam.cams import METHODS
    from livecam.cams.metrics import evaluate, table
    from livecam.outputs import write_text
    from livecam.sources import open_source, spread_frames
    from livecam.zoo import GAP_LINEAR, load_model
    from livecam.zoo.analysis import suggest

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
    click.echo(f"livecam evaluate: {loaded.name}, {plural(len(images), 'frame')} of {src.description}, "
               f"{plural(len(chosen), 'method')}, {steps} steps...", err=True)
    rows = evaluate(loaded, images, chosen, steps)
    click.echo(table(rows))
    if json_path is not None:
        write_text(json_path, json.dumps({"model": loaded.name, "source": source, "frames": len(images),
                                         "steps": steps, "methods": {k: asdict(v) for k, v in rows.items()}},
                                        indent=2))


def _graph_model(path: str) -> str | None:
    """The zoo model an exported graph was made from, as its metadata says (None when it cannot be read)."""
    from livecam.engines.runtime.graph import read_metadata

    try:
        return read_metadata(Path(path).expanduser()).get("model")
    except LivecamError:  # missing or not ONNX: the message then names no model
        return None


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


def _parse_input_size(text: str | None) -> tuple[int, int] | None:
    """'HxW' -> (h, w), sides 8 to 4096."""
    if text is None:
        return None
    parts = text.lower().replace(" ", "").split("x")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or not all(8 <= int(p) <= 4096 for p in parts):
        raise LivecamError(f"--input-size must be HEIGHTxWIDTH with sides from 8 to 4096 (e.g. 224x224), "
                           f"not '{text}'")
    return int(parts[0]), int(parts[1])


@main.command("export", context_settings=CONTEXT_SETTINGS, epilog=EXPORT_EPILOG,
              short_help="The model and its explanation as one ONNX file (no PyTorch to run it).")
@click.option("--model", "-m", "model_name", type=InputPath(), default="efficientnet_lite0", show_default=True,
              help="The model, as for livecam run.")
@WEIGHTS_OPTION
@click.option("--output", "-o", type=OutputPath(suffixes=(".onnx",)), metavar="FILE.onnx", required=True,
              help="The ONNX file to write.")
@click.option("--layer", metavar="MODULE.PATH", help="The layer to explain. Default: the last feature map.")
@click.option("--method", type=click.Choice(EXPORT_METHODS), default="gradcam", show_default=True,
              help="The map computed inside the graph. cam, gradcam, hirescam, xgradcam, gradcampp and layercam "
                   "need a head of global average pooling and one Linear layer (their gradient then has a closed "
                   "form); eigencam works for any head. scorecam and the guided methods cannot be exported.")
@click.option("--topk", type=click.IntRange(1, choices.MAX_TOPK), default=1, show_default=True,
              help="Explain each image's K most probable classes: K maps per image.")
@click.option("--class", "class_", metavar="NAME|INDEX",
              help="Explain this class in every image instead (K = 1), by name or index.")
@click.option("--input-size", metavar="HxW", help="The model's input size, e.g. 320x320. Default: the model's own; "
              "the maps' size follows.")
@click.option("--precision", type=click.Choice(choices.EXPORT_PRECISIONS), default="fp32", show_default=True,
              help="The model's weights and arithmetic inside the graph; the maps are always computed in fp32.")
@click.option("--from-frames", is_flag=True,
              help="Take uint8 BGR frames of any size (N, H, W, 3) as input and resize and normalize them inside "
                   "the graph, instead of a normalized float32 batch.")
@click.option("--overwrite", is_flag=True, help="Replace --output if it exists.")
@VERBOSE_OPTION
def export_command(model_name: str, weights: str | None, output: Path, layer: str | None, method: str, topk: int,
                   class_: str | None, input_size: str | None, precision: str, from_frames: bool, overwrite: bool,
                   verbose: int) -> None:
    """Write the model and its explanation as one ONNX file, which runs with ONNX Runtime alone.

    No PyTorch and no autograd at run time: the graph computes the logits, the
    top-K classes and their probabilities, and each class's map, min-max
    normalized to [0, 1], so a C++ program or an edge device gets the
    explanation from one ONNX Runtime call.
    """
    import time

    _setup_logging(verbose)
    started = time.perf_counter()
    size = _parse_input_size(input_size)
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
