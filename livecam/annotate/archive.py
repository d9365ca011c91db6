"""A whole archive annotated in one call: plan, manifest, parts, workers, in the order that fails fastest.

``livecam annotate`` and a program that annotates a folder of recordings want the same thing: the inputs
found and checked, the ones done before skipped, long files cut into parts, the files run on local
workers or Ray actors, every result appended to the manifest as it comes, and at the end what happened.
:func:`annotate_archive` does that, and says what it is about to do (``describe``) and how far it got
(``progress``) through callbacks, so that the caller decides what is printed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from livecam import annotate
from livecam.errors import LivecamError, option
from livecam.text import plural

if TYPE_CHECKING:
    from livecam.engines.launch import EngineOptions

Record = annotate.Record


class Progress(Protocol):
    """Where the work stands, told as it goes."""

    def frames(self, count: int) -> None:
        """``count`` more frames are annotated."""

    def files(self, done: int, total: int) -> None:
        """``done`` of the ``total`` files to annotate are finished."""


class _Quiet:
    def frames(self, count: int) -> None:
        pass

    def files(self, done: int, total: int) -> None:
        pass


@contextlib.contextmanager
def quiet(total_frames: int | None) -> Iterator[Progress]:
    """No progress shown (the default)."""
    yield _Quiet()


@dataclass(frozen=True)
class ArchivePlan:
    """What a run is about to do, before the work: the engine (when it runs in this process) and the plan."""

    engine: str | None  # the loaded engine's summary line; None when workers load their own
    line: str  # "3 to annotate (1 of them in 4 parts), 2 done before, into out/ with 2 workers"


@dataclass
class ArchiveResult:
    """What a run did: a manifest line per input it looked at, and whether it was stopped."""

    records: list[Record] = field(default_factory=list)  # sorted by input
    skipped: int = 0  # done before: skipped
    interrupted: bool = False
    manifest: Path = Path(annotate.MANIFEST_NAME)

    @property
    def done(self) -> int:
        return sum(r["status"] == annotate.DONE for r in self.records)

    @property
    def failed(self) -> list[Record]:
        return [r for r in self.records if r["status"] == annotate.FAILED]


@dataclass(frozen=True)
class Workers:
    """Who annotates: ``jobs`` local processes (1: this one), or Ray actors at ``ray_address``."""

    jobs: int | None = None  # None: 1 locally, 2 on Ray
    ray_address: str | None = None  # None: no Ray; "local", "auto" or a cluster's address
    gpus_per_worker: float | None = None  # Ray only
    retries: int = 2  # Ray only

    @property
    def count(self) -> int:
        return self.jobs if self.jobs is not None else 2 if self.ray_address is not None else 1


def annotate_archive(specs: Iterable[str], out_dir: Path, options: EngineOptions, *, batch: int = 1,
                     codec: str | None = None, crf: int | None = None, force: bool = False,
                     chunk_seconds: float | None = None, workers: Workers = Workers(),
                     stop: threading.Event | None = None,
                     progress: Callable[[int | None], AbstractContextManager[Progress]] = quiet,
                     describe: Callable[[ArchivePlan], None] = lambda plan: None,
                     errors: annotate.Describe = str) -> ArchiveResult:
    """Annotate every input of ``specs`` (files, folders, globs) into ``out_dir``, with its manifest.

    Bad settings and inputs are refused (:class:`LivecamError`) before any work; a file that fails is a
    failed record and the rest go on. Setting ``stop`` ends the files in progress between frames. The
    errors in the records read as ``errors`` renders them (the CLI: with its flags).
    """
    stop = stop or threading.Event()
    settings = annotate.settings_of(options, codec=codec, crf=crf)  # a codec .mp4 cannot hold: refused here
    annotate.check_out_dir(out_dir, create=False)
    planned = annotate.plan(specs, out_dir, settings, force=force, describe=errors)
    annotate.check_out_dir(out_dir)  # created once the inputs are known to be there
    _check_workers(workers)
    # long files in parts: read their keyframes
    chunker = annotate.Chunker(planned.jobs, chunk_seconds, settings, describe=errors)
    in_process = workers.ray_address is None and (workers.count == 1 or len(chunker.work) == 1)  # as run_jobs does
    worker = (annotate.FileWorker(options, batch, settings, describe=errors)
              if chunker.work and in_process else None)
    try:
        describe(ArchivePlan(worker.launched.summary if worker is not None else None,
                             _plan_line(planned, chunker, out_dir, None if in_process else workers)))
        result = ArchiveResult(skipped=len(planned.skipped), manifest=out_dir / annotate.MANIFEST_NAME)
        with annotate.Manifest(out_dir.resolve()) as manifest:
            for record in annotate.early_records(planned, settings):
                result.records.append(record)
                manifest.append(record)
            early = len(result.records)
            with progress(annotate.frame_total(planned.jobs)) as shown:
                shown.files(0, len(planned.jobs))

                def on_result(record: Record) -> None:
                    if record["status"] == annotate.INTERRUPTED:
                        return  # no output, no line: a rerun does it
                    manifest.append(record)
                    result.records.append(record)
                    shown.files(len(result.records) - early, len(planned.jobs))

                chunker.on_result = on_result
                try:
                    _run(chunker.work, options, settings, batch, workers, stop, chunker.take, shown.frames, worker,
                         errors)
                finally:
                    chunker.close()
    finally:
        if worker is not None:
            worker.close()
    result.records.sort(key=lambda r: str(r["input"]))
    result.interrupted = stop.is_set()
    return result


def _check_workers(workers: Workers) -> None:
    if workers.ray_address is not None:
        from livecam.annotate.ray import check_ray

        check_ray()  # without Ray: one line saying how to install it, before any work (Ray starts if there is some)
    elif workers.gpus_per_worker is not None:
        raise LivecamError(f"{option('gpus_per_worker')} goes with {option('ray')}")


def _plan_line(planned: annotate.Plan, chunker: annotate.Chunker, out_dir: Path, workers: Workers | None) -> str:
    pieces = len(chunker.work) - len(planned.jobs) + chunker.split
    parts = f" ({chunker.split} of them in {pieces} parts)" if chunker.split else ""
    refused = f", {len(planned.refused)} refused (a file in the way)" if planned.refused else ""
    who = ("" if workers is None
           else f" with {plural(workers.count, 'Ray actor' if workers.ray_address else 'worker')}")
    return f"{len(planned.jobs)} to annotate{parts}, {len(planned.skipped)} done before{refused}, into {out_dir}{who}"


def _run(work: list[annotate.Job], options: EngineOptions, settings: annotate.Settings, batch: int, workers: Workers,
         stop: threading.Event, on_result: Callable[[Record], None], on_frames: Callable[[int], None],
         worker: annotate.FileWorker | None, errors: annotate.Describe) -> None:
    if workers.ray_address is not None:
        from livecam.annotate.ray import run_ray

        run_ray(work, options, settings, batch=batch, workers=workers.count, address=workers.ray_address,
                gpus_per_worker=workers.gpus_per_worker, retries=workers.retries, stop=stop, on_result=on_result,
                on_frames=on_frames, describe=errors)
    else:
        annotate.run_jobs(work, options, settings, batch=batch, workers=workers.count, stop=stop,
                          on_result=on_result, on_frames=on_frames, worker=worker, describe=errors)
