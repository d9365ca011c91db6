"""``livecam annotate --ray``: the same per-file work as ``--jobs``, on Ray actors.

Each actor wraps one :class:`livecam.annotate.worker.FileWorker`: it loads the engine
once and annotates one file per call, recording the output to a hidden partial
file moved into place when complete, straight to ``--out-dir`` (a path every
node can write: a shared file system in a cluster). The parent writes the
manifest from the records the actors return, rendering their errors with its
``describe`` (the actors write them :func:`~livecam.annotate.worker.marked`).

A worker that dies (killed, out of memory, its node lost) is restarted by Ray
(``max_restarts``) and the file it held is tried again (``max_task_retries``),
``retries`` times; a file still failing after that is a failed record. A dead
worker takes no finished output with it: outputs are complete files on disk.
Its half-written partial file is removed here.

Ray is an optional extra (``pip install 'livecam[ray]'``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livecam.annotate.job import Job
from livecam.annotate.manifest import FAILED, INTERRUPTED, Describe, Record, error_record
from livecam.annotate.settings import Settings
from livecam.annotate.worker import FileWorker, marked, remove_partial, rendered
from livecam.errors import LivecamError, option

if TYPE_CHECKING:
    from livecam.engines.launch import EngineOptions

log = logging.getLogger(__name__)

LOCAL = "local"  # --ray with no address: start a Ray instance on this machine for this run


NO_RAY = (f"{option('ray')} needs Ray, which this install lacks: pip install 'livecam[ray]' (or run the files here "
          f"with {option('jobs')} N)")


def check_ray() -> None:
    """Ray is installed: found, not imported (that takes a while, and a run with nothing to do needs no Ray)."""
    import importlib.util

    try:
        found = importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):  # a module blocked in sys.modules has no spec
        found = False
    if not found:
        raise LivecamError(NO_RAY)


def import_ray() -> Any:  # the ray module
    try:
        import ray
    except ImportError:
        raise LivecamError(NO_RAY) from None
    return ray


@contextlib.contextmanager
def ray_cluster(address: str, cpus: int) -> Iterator[Any]:
    """Join the cluster at ``address`` ('auto': the running one), or start a local one (``LOCAL``) with ``cpus``
    CPUs (what the actors ask for); leave after.

    A Ray instance this process already joined (a test's ``ray.init``) is used as it is and left running.
    """
    ray = import_ray()
    if ray.is_initialized():
        yield ray
        return
    options: dict[str, object] = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.ERROR}
    try:
        if address == LOCAL:
            ray.init(num_cpus=max(cpus, 1), **options)
        else:
            ray.init(address=address, **options)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        detail = " ".join(str(exc).split())[:200]
        raise LivecamError(f"cannot join the Ray cluster at {address} ({detail}); start one with 'ray start --head' "
                           f"or give {option('ray')} with no address for a local one") from None
    try:
        yield ray
    finally:
        ray.shutdown()


class _Worker:
    """The actor: one engine, one file per call.

    An engine that cannot load is kept as its message, marked, for the parent to raise (:meth:`ready`): Ray's
    own report of an actor that failed would read the library's words, not the caller's.
    """

    def __init__(self, options: EngineOptions, batch: int, settings: Settings) -> None:
        self.worker: FileWorker | None = None
        self.error: str | None = None
        try:
            self.worker = FileWorker(options, batch, settings, describe=marked)
        except LivecamError as exc:
            self.error = marked(exc)

    def pid(self) -> int:
        import os

        return os.getpid()

    def ready(self) -> str | None:
        """None once the engine is loaded; else why it could not be (marked)."""
        return self.error

    def summary(self) -> str:
        return self._loaded().launched.summary

    def run(self, job: Job) -> Record:
        return self._loaded().run(job)

    def _loaded(self) -> FileWorker:
        if self.worker is None:
            raise LivecamError(self.error or "the worker could not load the model")
        return self.worker


def start_workers(ray: Any, options: EngineOptions, batch: int, settings: Settings, workers: int,
                  gpus_per_worker: float | None, retries: int) -> list[Any]:
    """``workers`` actors, each with ``gpus_per_worker`` GPUs (default: 1 where the cluster has GPUs, else 0).

    Each asks Ray for as many CPUs as its model gets threads (``options.threads``, 1 unless given), so that
    Ray places no more actors on a node than its cores can run.
    """
    from dataclasses import replace

    if gpus_per_worker is None:
        gpus_per_worker = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
    options = replace(options, threads=options.threads or 1)
    actor = ray.remote(num_cpus=options.threads, num_gpus=gpus_per_worker, max_restarts=retries,
                       max_task_retries=retries)(_Worker)
    return [actor.remote(options, batch, settings) for _ in range(workers)]


def run_ray(jobs: list[Job], options: EngineOptions, settings: Settings, *, batch: int = 1, workers: int = 2,
            address: str = LOCAL, gpus_per_worker: float | None = None, retries: int = 2,
            stop: threading.Event | None = None, on_result: Callable[[Record], None] | None = None,
            on_frames: Callable[[int], object] | None = None, on_start: Callable[[Any, list[Any]], None] | None = None,
            describe: Describe = str) -> list[Record]:
    """Annotate ``jobs`` on ``workers`` Ray actors; each finished record goes to ``on_result`` as it comes.

    Files are handed out one at a time to the actor that is free, so a long file does not hold up a queue.
    ``stop`` stops handing out files and kills the actors; the files they held are ``interrupted`` and their
    partial files removed. ``on_start(ray, actors)`` is called once the actors exist (tests use it to kill
    one). Errors in the records read as ``describe`` renders them.
    """
    results: list[Record] = []
    if not jobs:
        return results
    with ray_cluster(address, min(workers, len(jobs)) * (options.threads or 1)) as ray:
        actors = start_workers(ray, options, batch, settings, min(workers, len(jobs)), gpus_per_worker, retries)
        try:
            error = ray.get(actors[0].ready.remote())  # the model loads, or this says why it cannot
        except ray.exceptions.RayActorError as exc:
            raise LivecamError(_actor_error(exc)) from None
        if error is not None:
            raise LivecamError(error)
        if on_start is not None:
            on_start(ray, actors)
        waiting = list(jobs)
        running: dict[Any, tuple[Any, Job]] = {}  # Ray's object refs: the actor and the job
        free = list(actors)

        def finish(record: Record) -> None:
            record = rendered(record, describe)
            results.append(record)
            if record["status"] != INTERRUPTED and on_frames is not None and record.get("frames"):
                on_frames(record["frames"])
            if on_result is not None:
                on_result(record)

        try:
            while waiting or running:
                if stop is not None and stop.is_set():
                    break
                while waiting and free:
                    job, worker = waiting.pop(0), free.pop(0)
                    running[worker.run.remote(job)] = (worker, job)
                ready, _ = ray.wait(list(running), num_returns=1, timeout=0.2)
                for ref in ready:
                    worker, job = running.pop(ref)
                    free.append(worker)
                    try:
                        finish(ray.get(ref))
                    except (ray.exceptions.RayActorError, ray.exceptions.RayTaskError) as exc:
                        remove_partial(Path(job.output))
                        finish(error_record(job, settings, FAILED, _actor_error(exc)))
        finally:
            for worker in actors:
                ray.kill(worker, no_restart=True)
            for _, job in running.values():  # stopped part-way: no output, no line (a rerun does it)
                remove_partial(Path(job.output))
                finish(error_record(job, settings, INTERRUPTED, "interrupted"))
    return results


def _actor_error(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    for line in str(exc).splitlines():  # the worker's own exception, when Ray carries one
        if "LivecamError:" in line:
            return line.split("LivecamError:", 1)[1].strip()
    return f"the Ray worker failed after its retries ({text[:300]})"
