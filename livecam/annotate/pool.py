"""Local workers: the jobs in this process (``workers=1``) or in spawned worker processes.

Each worker process loads the engine once, in its initializer, and takes files
in turn, so a long file does not hold up the others. The parent alone handles
Ctrl-C: it tells the workers through a shared event, and each file in progress
ends between frames (``interrupted``, no output). A worker that dies takes only
its file with it (a failed line; its partial recording is removed). Lines come
back to the parent with their errors :func:`~livecam.annotate.worker.marked`,
and are rendered there with the caller's ``describe``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from livecam.annotate.job import Job
from livecam.annotate.manifest import FAILED, Describe, Record, error_record
from livecam.annotate.settings import Settings
from livecam.annotate.worker import FileWorker, marked, remove_partial, rendered
from livecam.errors import LivecamError

if TYPE_CHECKING:
    import multiprocessing.queues
    import multiprocessing.synchronize
    from concurrent.futures import Future

    from livecam.engines.launch import EngineOptions

_WORKER: FileWorker | None = None
_WORKER_ERROR: str | None = None  # why the engine did not load, marked
_STOP = threading.Event()  # set when the parent's shared stop is
_PROGRESS: multiprocessing.queues.Queue[int] | None = None


def _init_worker(options: EngineOptions, batch: int, settings: Settings, stop: multiprocessing.synchronize.Event,
                 progress: multiprocessing.queues.Queue[int]) -> None:
    """A worker process's start: the parent handles Ctrl-C (and tells us through ``stop``); load the engine once."""
    global _WORKER, _WORKER_ERROR, _PROGRESS
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    threading.Thread(target=_follow, args=(stop,), name="livecam-stop", daemon=True).start()
    _PROGRESS = progress
    try:
        _WORKER = FileWorker(options, batch, settings, describe=marked)
    except LivecamError as exc:  # reported by the first job, in the parent, as bad usage
        _WORKER_ERROR = marked(exc)


def _follow(stop: multiprocessing.synchronize.Event) -> None:
    """Set this process's stop (what the pipeline watches) when the parent sets the shared one."""
    stop.wait()
    _STOP.set()


def _work(job: Job) -> Record:
    if _WORKER is None:
        raise LivecamError(_WORKER_ERROR or "the worker could not load the model")
    return _WORKER.run(job, stop=_STOP, on_frames=_PROGRESS.put if _PROGRESS is not None else None)


def run_jobs(jobs: list[Job], options: EngineOptions, settings: Settings, *, batch: int = 1, workers: int = 1,
             stop: threading.Event | None = None, on_result: Callable[[Record], None] | None = None,
             on_frames: Callable[[int], object] | None = None, worker: FileWorker | None = None,
             describe: Describe = str) -> list[Record]:
    """Annotate ``jobs`` and hand each finished record to ``on_result`` as it comes (the manifest's writer).

    ``workers=1`` runs in this process (``worker``: an engine already loaded, with its own ``describe``); more
    start that many spawned processes, each loading the engine once. Setting ``stop`` ends the files in
    progress between frames and starts no more; their records say ``interrupted``. A model that cannot load
    raises LivecamError. Errors in the records read as ``describe`` renders them.
    """
    stop = stop or threading.Event()
    results: list[Record] = []
    if not jobs:
        return results

    def finish(record: Record) -> None:
        results.append(record)
        if on_result is not None:
            on_result(record)

    if workers <= 1 or len(jobs) <= 1:
        own = worker or FileWorker(options, batch, settings, describe=describe)
        try:
            for job in jobs:
                if stop.is_set():
                    break
                finish(own.run(job, stop=stop, on_frames=on_frames))
        finally:
            if worker is None:
                own.close()
        return results
    workers = min(workers, len(jobs))
    if options.threads is None:  # N engines, each with every core's thread, would fight over the cores
        options = replace(options, threads=threads_per_worker(workers))
    _run_pool(jobs, options, settings, batch, workers, stop, lambda record: finish(rendered(record, describe)),
              on_frames)
    return results


def threads_per_worker(workers: int) -> int:
    """The CPU threads each of ``workers`` local engines gets: this process's cores shared out, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(workers, 1))


def _run_pool(jobs: list[Job], options: EngineOptions, settings: Settings, batch: int, workers: int,
              stop: threading.Event, finish: Callable[[Record], None],
              on_frames: Callable[[int], object] | None) -> None:
    import multiprocessing
    import queue
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    context = multiprocessing.get_context("spawn")
    shared_stop = context.Event()
    progress: multiprocessing.queues.Queue[int] = context.Queue()

    def drain() -> None:
        while True:
            try:
                count = progress.get_nowait()
            except (queue.Empty, OSError, ValueError):
                return
            if on_frames is not None:
                on_frames(count)

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(options, batch, settings, shared_stop, progress))
    # The workers start while submitting; ignoring Ctrl-C meanwhile makes them start with it ignored (a terminal
    # sends it to them too, and a worker still importing would otherwise die of it): the parent tells them.
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        pending = {pool.submit(_work, job): job for job in jobs}
    finally:
        if main:
            signal.signal(signal.SIGINT, previous)
    try:
        while pending:
            done, _ = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            drain()
            if stop.is_set() and not shared_stop.is_set():
                shared_stop.set()
                for future in pending:
                    future.cancel()
            for future in done:
                _finished(future, pending.pop(future), settings, finish)
            pending = {f: j for f, j in pending.items() if not f.cancelled()}
    except BaseException:
        shared_stop.set()
        for future in pending:
            future.cancel()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        drain()
        progress.close()


def _finished(future: Future[Record], job: Job, settings: Settings, finish: Callable[[Record], None]) -> None:
    """A worker's answer for ``job``: its line, or a failed one when the worker process died on it."""
    from concurrent.futures.process import BrokenProcessPool

    if future.cancelled():
        return
    try:
        finish(future.result())
    except BrokenProcessPool as exc:
        remove_partial(Path(job.output))
        finish(error_record(job, settings, FAILED, f"the worker process died ({exc})"))
