"""``livecam annotate``: an archive of recordings annotated into a folder, with a manifest; reruns resume.

The work is :func:`livecam.annotate.archive.annotate_archive`; the command gives it the options, a
progress bar and Ctrl-C, prints the table and the summary line, and turns the result into the exit code.
"""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

import livecam.cli.options as opt
from livecam.cli.options import OutputPath
from livecam.cli.shell import (CONTEXT_SETTINGS, EXIT_INTERRUPTED, LivecamCommand, progress_bar, render_error, say,
                               setup_logging)

if TYPE_CHECKING:
    from tqdm import tqdm

    from livecam.annotate.archive import ArchivePlan, Progress

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


@click.command("annotate", cls=LivecamCommand, context_settings=CONTEXT_SETTINGS, epilog=ANNOTATE_EPILOG,
               short_help="Annotate many recordings into a folder, with a manifest; reruns resume.")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("--out-dir", "-o", "out_dir", required=True, type=OutputPath(folder=True), metavar="DIR",
              help="Where the annotated videos and manifest.jsonl go (created if missing).")
@opt.apply(
    opt.model(),
    opt.weights(),
    opt.method("As for livecam run (see livecam run --help)."),
    opt.layer(),
    opt.target_class("Explain this class in every frame, by name or index. Default: each frame's top class."),
    opt.topk(),
    opt.compare(),
)
@click.option("--panels", is_flag=True, help="Explain each of the --topk classes in its own labelled panel.")
@opt.smooth()
@opt.apply(
    opt.precision("The model's arithmetic: auto is fp16 on CUDA and fp32 on the CPU."),
    opt.device("auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N, as for livecam run."),
    opt.backend(),
    opt.batch("Frames explained per step (more throughput on a GPU)."),
    opt.alpha(),
    opt.colormap(),
)
@click.option("--jobs", "-j", type=click.IntRange(1, 64), cls=opt.LibraryDefault, implied="1",
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
@opt.apply(opt.codec(), opt.crf(), opt.verbose())
def annotate_command(inputs: tuple[str, ...], out_dir: Path, batch: int, jobs: int | None, force: bool,
                     chunk_seconds: float | None, ray_address: str | None, gpus_per_worker: float | None,
                     retries: int, codec: str | None, crf: int | None, verbose: int, **engine: Any) -> None:
    """Annotate many recordings (files, folders, globs): one annotated video per input in --out-dir,
    and a manifest line for each with its status, frames, speed and most frequent top classes.

    A rerun resumes: inputs done before are skipped. A bad input is reported and the rest go on.
    """
    setup_logging(verbose)
    from livecam import annotate
    from livecam.annotate.archive import Workers, annotate_archive

    stop = threading.Event()

    @contextlib.contextmanager
    def progress(total: int | None) -> Iterator[Progress]:
        with progress_bar(total, stop) as bar:
            yield _Bar(bar)

    result = annotate_archive(inputs, out_dir, opt.engine_options(**engine), batch=batch, codec=codec, crf=crf,
                              force=force, chunk_seconds=chunk_seconds,
                              workers=Workers(jobs, ray_address, gpus_per_worker, retries), stop=stop,
                              progress=progress, describe=_describe, errors=render_error)
    click.echo(annotate.summary_table(result.records, Path.cwd()))
    click.echo(f"livecam annotate: {result.done} done, {result.skipped} skipped, {len(result.failed)} failed"
               + (", interrupted" if result.interrupted else "") + f"; manifest {result.manifest}")
    if result.interrupted:
        sys.exit(EXIT_INTERRUPTED)
    if result.failed:
        sys.exit(1)


def _describe(plan: ArchivePlan) -> None:
    if plan.engine is not None:
        say(f"livecam: {plan.engine}")
    say(f"livecam annotate: {plan.line}")


class _Bar:
    """The archive's progress on the bar: frames counted, 'files 2/5' beside them."""

    def __init__(self, bar: tqdm[Any]) -> None:
        self.bar = bar

    def frames(self, count: int) -> None:
        self.bar.update(count)

    def files(self, done: int, total: int) -> None:
        self.bar.set_postfix_str(f"files {done}/{total}")
