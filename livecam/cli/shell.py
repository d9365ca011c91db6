"""The shell around every command: the one place that prints, exits and owns the terminal.

Bad input raises :class:`LivecamError` anywhere below; here it becomes one line on stderr
and exit code 2 (1 for a :class:`RunError`), with each setting the library names
(:func:`livecam.errors.option`) shown as its flag. Ctrl-C (or SIGTERM) ends a run between
frames with the recording complete, and exit code 130. What a command writes is checked,
by one rule, before its work begins (:class:`LivecamCommand`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from livecam import choices
from livecam.cli.options import InputPath, OutputPath
from livecam.errors import LivecamError
from livecam.text import one_line, plural

if TYPE_CHECKING:
    from tqdm import tqdm

    from livecam.pipeline import RunReport
    from livecam.sinks import VideoFileSink

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"], "max_content_width": 100}

_USER_FFMPEG_LOGLEVEL = os.environ.get("OPENCV_FFMPEG_LOGLEVEL")  # as the user set it, before any command ran
# opencv-python's import replaces it with a font folder its wheels may lack; the window puts the user's back
USER_QT_FONTDIR = None if "cv2" in sys.modules else os.environ.get("QT_QPA_FONTDIR")


def flag(setting: str) -> str:
    """The flag that gives a library setting: overwrite -> --overwrite, out_dir -> --out-dir."""
    return "--" + setting.replace("_", "-")


def render(message: str) -> str:
    """A library message as the terminal shows it: each setting named with ``option()`` read as its flag."""
    return LivecamError(message).render(flag)


def render_error(exc: Exception) -> str:
    """An error as the terminal shows it: a library message with its settings read as flags."""
    return exc.render(flag) if isinstance(exc, LivecamError) else str(exc)


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """End the command with ``message`` on one line of stderr."""
    click.echo(f"livecam: error: {one_line(render(message))}", err=True)
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

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> NoReturn:
        # (click overloads main on standalone_mode; this one always exits, as click's standalone mode does)
        previous = signal.getsignal(signal.SIGINT)
        if previous is signal.default_int_handler:  # not in a test runner or an embedding program with its own
            signal.signal(signal.SIGINT, _note_interrupt)
        code: object = 0
        try:
            code = super().main(args=args, prog_name=prog_name or "livecam", complete_var=complete_var,
                                standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            code = 0
        except click.ClickException as exc:
            fail(f"{exc.format_message()} (see 'livecam --help')", exc.exit_code or EXIT_USAGE)
        except LivecamError as exc:
            fail(exc.render(flag), exc.exit_code)
        except (KeyboardInterrupt, click.exceptions.Abort, _Interrupted):
            interrupted()
        except Exception as exc:  # noqa: BLE001 - a bug: one line unless debugging
            if _INTERRUPTS:  # Ctrl-C inside an import or a library call can come out as another error
                interrupted()
            if os.environ.get("LIVECAM_DEBUG"):
                raise
            fail(f"internal error: {type(exc).__name__}: {exc} (set LIVECAM_DEBUG=1 to see the traceback, "
                 "and please report it)", 1)
        finally:
            if signal.getsignal(signal.SIGINT) is _note_interrupt:
                signal.signal(signal.SIGINT, previous)
        sys.exit(code if isinstance(code, int) else 0)


_INTERRUPTS: list[int] = []  # Ctrl-C seen by _note_interrupt


def _note_interrupt(signum: int, frame: FrameType | None) -> None:
    """Python's own SIGINT handler (KeyboardInterrupt), remembering that one came: a KeyboardInterrupt raised while
    an extension module initializes (onnxruntime's, at start-up) surfaces as ImportError instead."""
    _INTERRUPTS.append(signum)
    signal.default_int_handler(signum, frame)


def interrupted() -> NoReturn:
    click.echo("livecam: interrupted", err=True)
    sys.exit(EXIT_INTERRUPTED)


class FlagFilter(logging.Filter):
    """Shows the settings a library warning names (:func:`livecam.errors.option`) as the flags that give them."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\x02" in message:
            record.msg, record.args = render(message), None
        return True


def setup_logging(verbose: int) -> None:
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
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, FlagFilter) for f in handler.filters):
            handler.addFilter(FlagFilter())
    logging.getLogger("livecam").setLevel(level)


@contextlib.contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """While running, Ctrl-C and SIGTERM set ``stop`` (the loop ends between frames); a second one aborts."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


@contextlib.contextmanager
def progress_bar(total: int | None, stop: threading.Event) -> Iterator[tqdm[Any]]:
    """The frames counted on stderr (where it is a terminal), while Ctrl-C and SIGTERM set ``stop``."""
    from tqdm import tqdm

    with tqdm(total=total, unit="frame", disable=None, file=sys.stderr, leave=False) as bar, stop_on_signals(stop):
        yield bar


def run_summary(report: RunReport, recorder: VideoFileSink | None) -> None:
    """The lines that end a run: frames, speed, how it ended, each stage's median, the recording."""
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
            width, height = recorder.size or (0, 0)  # known once a frame is written
            click.echo(f"livecam: wrote {recorder.path} ({plural(recorder.frames_written, 'frame')}, "
                       f"{width}x{height}, {recorder.fps:.1f} fps)")
        else:
            click.echo(f"livecam: no frame was processed, so {recorder.path} was not written")


def say(line: str) -> None:
    """A line about the work (what runs, on what) on stderr, so that stdout keeps only results."""
    click.echo(render(line), err=True)

