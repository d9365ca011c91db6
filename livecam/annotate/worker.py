"""The per-file work: :class:`FileWorker` loads the engine once and annotates one file per call.

What this process runs with ``jobs=1``, what each local worker process keeps
(:mod:`livecam.annotate.pool`) and what a Ray actor wraps as it is
(:mod:`livecam.annotate.ray`). A file's outcome is its manifest line, a plain
dict (:class:`livecam.annotate.manifest.Record`) that pickles to the parent;
a bad input is a failed line, never an exception, so one file cannot end an
archive's run. The pipeline is the live one (:func:`livecam.pipeline.run`):
there is no second.

An output is recorded to a hidden partial file beside its final name (as every
recording is, see :class:`livecam.sinks.VideoFileSink`), moved into place only
when the whole source went through, so a final name never holds a partial
file, whether a file fails, the run is interrupted or a worker dies.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from livecam.annotate.job import Job
from livecam.annotate.manifest import DONE, FAILED, INTERRUPTED, Describe, Record, base_record, top_classes, utc_now
from livecam.annotate.settings import Settings
from livecam.closing import Closing
from livecam.errors import LivecamError, option

if TYPE_CHECKING:
    from livecam.engines.base import AnyEngine
    from livecam.engines.launch import EngineOptions
    from livecam.sources import Source
    from livecam.types import Annotated

log = logging.getLogger(__name__)


def marked(exc: Exception) -> str:
    """An error's message with the settings it names still marked (:func:`livecam.errors.option`).

    What a worker in another process writes into its lines: the parent's ``describe`` (the CLI's, a lambda
    that need not pickle) renders them there, with :func:`rendered`.
    """
    return exc.render(option) if isinstance(exc, LivecamError) else str(exc)


def rendered(record: Record, describe: Describe) -> Record:
    """A line from a worker that wrote its error :func:`marked`, with the error as ``describe`` reads it."""
    if record["error"] is not None:
        record["error"] = describe(LivecamError(record["error"]))
    return record


class FileWorker(Closing):
    """Loads the engine once; :meth:`run` annotates one file and returns its manifest line.

    What a local worker process keeps for every file it takes, and what a Ray actor can wrap as it is.
    Errors in the lines read as ``describe`` renders them.
    """

    def __init__(self, options: EngineOptions, batch: int = 1, settings: Settings | None = None,
                 describe: Describe = str) -> None:
        from livecam.engines.launch import open_engine

        self.batch = batch
        self.describe = describe
        self.launched = open_engine(options)
        self.engine: AnyEngine = self.launched.engine
        self.settings: Settings = {**(settings or {})}
        if "layer" in self.settings and self.settings["layer"] is None:  # left to the model: the one it took
            self.settings["layer"] = self.engine.layer

    def run(self, job: Job, stop: threading.Event | None = None,
            on_frames: Callable[[int], object] | None = None) -> Record:
        """Annotate ``job.input`` into ``job.output``; a bad input is a failed record, never an exception.

        ``stop`` ends the file between frames: the record's status is then ``interrupted`` and no output is
        left. ``on_frames(n)`` counts progress.
        """
        record = base_record(job, self.settings, FAILED)
        started, started_at = time.perf_counter(), time.time()
        counts: Counter[str] = Counter()
        second: Counter[str] = Counter()  # --compare: the second side's top classes
        unreported = [0]

        def on_frame(annotated: Annotated) -> None:
            if annotated.labels:
                counts[annotated.labels[0].name] += 1
            if len(annotated.sides) > 1 and annotated.sides[1].labels:
                second[annotated.sides[1].labels[0].name] += 1
            unreported[0] += 1
            if on_frames is not None and unreported[0] >= 8:
                on_frames(unreported[0])
                unreported[0] = 0

        try:
            self._annotate(job, record, stop, on_frame)
        except LivecamError as exc:
            record.update({"status": FAILED, "error": " ".join(self.describe(exc).split())})
        except Exception as exc:  # noqa: BLE001 - one bad file must not end the archive's run
            log.debug("%s failed", job.input, exc_info=True)
            record.update({"status": FAILED, "error": f"{type(exc).__name__}: {' '.join(self.describe(exc).split())}"})
        finally:
            if on_frames is not None and unreported[0]:
                on_frames(unreported[0])
        if record["status"] != DONE:
            record["seconds"] = round(time.perf_counter() - started, 3)
        record["top_classes"] = top_classes(counts)
        if second:
            record["compare_top_classes"] = top_classes(second)
        record["finished"] = utc_now()
        if job.span is not None:  # what joining the parts takes: all the counts, and when the part began
            record.update({"class_counts": dict(counts), "started_at": started_at})
            if second:
                record["compare_class_counts"] = dict(second)
        return record

    def _annotate(self, job: Job, record: Record, stop: threading.Event | None,
                  on_frame: Callable[[Annotated], None]) -> None:
        """Run the pipeline over ``job``'s source into its recorder, and fill in ``record`` with what came of it."""
        from livecam.pipeline import run
        from livecam.sinks import record_source

        final = Path(job.output)
        final.parent.mkdir(parents=True, exist_ok=True)
        with self._source(job) as src:
            record["source_frames"] = src.frame_count
            # the recorder's partial file becomes the output only when the whole source went through
            sink = record_source(src, final, overwrite=True, source_path=Path(job.input),
                                 codec=self.settings.get("codec"), crf=self.settings.get("crf"),
                                 keep_incomplete=False)
            with sink:
                self.engine.reset_smoothing()  # --smooth: each file (or part) starts afresh, not from the last one
                try:
                    # no live speed readout: an archive's frames carry no timing, so reruns match
                    report = run(src, self.engine, [sink], batch=self.batch, stop=stop, readout=False,
                                 on_frame=on_frame)
                except BaseException:
                    sink.discard()
                    raise
                if report.interrupted or report.frames == 0:
                    sink.discard()
        record.update({"frames": report.frames, "seconds": round(report.seconds, 3), "fps": round(report.fps, 2)})
        if report.interrupted:
            record.update({"status": INTERRUPTED, "error": "interrupted"})
        elif report.frames == 0:
            record.update({"status": FAILED, "error": "no frame could be decoded"})
        else:
            record["status"] = DONE

    @staticmethod
    def _source(job: Job) -> Source:
        if job.span is None:
            from livecam.sources import open_source

            return open_source(job.input)
        from livecam.sources.clip import ClipSource

        return ClipSource(job.input, job.span)

    def close(self) -> None:
        self.engine.close()


def remove_partial(output: Path) -> None:
    """The half-written recording of ``output`` a dead or stopped worker of this run left.

    Only this run's: planning refuses an output whose partial name already holds a file.
    """
    from livecam.sinks import partial_path

    for _ in range(3):  # a killed worker's file may still be closing
        try:
            partial_path(output).unlink(missing_ok=True)
            return
        except OSError:
            time.sleep(0.1)
