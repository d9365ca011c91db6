"""``livecam annotate``: many recordings in, one annotated video per recording out, with a manifest.

Three parts, so that a later Ray actor can run the same per-file code:

- planning (:func:`find_inputs`, :func:`plan`), in the parent, before any
  model loads or Ray starts: which files, where each output goes, which ones
  an earlier run already did (the manifest says so, the source is unchanged,
  the output exists and the settings compare equal as they run, see
  :func:`same_settings`), and which would replace a file livecam did not
  write (refused: livecam never loses a file the user has). It is torch-free
  but for one case: a zoo model's default layer, looked up only when one run
  named the layer and the other did not (:class:`Defaults`);
- :class:`FileWorker`, which loads the engine once and annotates one file per
  :meth:`FileWorker.run` call, returning a plain dict (the manifest's line);
- :class:`Manifest`, written by the parent only: one JSON line per input and
  run, appended and flushed as each file finishes (the latest line per input
  wins).

:func:`run_jobs` runs the jobs in this process (``jobs=1``) or in local worker
processes (spawned; each loads the engine once in its initializer). The
pipeline is the live one (:func:`livecam.pipeline.run`): there is no second.

An output is recorded to a hidden partial file beside its final name (as every
recording is, see :class:`livecam.sinks.VideoFileSink`), moved into place only
when the whole source went through, so a final name never holds a
partial file, whether a file fails, the run is interrupted or a worker dies.
"""

from __future__ import annotations

import contextlib
import functools
import glob
import json
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from livecam.errors import LivecamError

if TYPE_CHECKING:
    from livecam.annotate.parts import Span

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".ts", ".mts", ".m2ts", ".3gp", ".ogv"})
# The container every output is written in, whatever the input's; the codec (H.264 unless --codec) and --crf
# are in the settings, which FileWorker passes to VideoFileSink.
OUTPUT_SUFFIX = ".mp4"
MANIFEST_NAME = "manifest.jsonl"
DONE, FAILED, SKIPPED = "done", "failed", "skipped"
INTERRUPTED = "interrupted"  # a file stopped part-way: no output, no manifest line (a rerun redoes it)
TOP_CLASSES = 3
_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class Job:
    """One input file and where its annotated video goes (absolute paths), with the source's identity.

    With ``span``, one part of a long file (``--chunk-seconds``): those frames only, into a hidden part file
    (``output``) that :class:`Chunker` joins with the others into the file's output.
    """

    input: str
    output: str
    size: int
    mtime_ns: int
    span: Span | None = None
    part: int = 0


def _is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES and not path.name.startswith(".")


def _within(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def _walk(folder: Path, exclude: Path) -> list[Path]:
    """Video files under ``folder`` (recursively, hidden files and folders and ``exclude`` left out), sorted."""
    found = []
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _within((root_path / d).resolve(), exclude))
        found.extend(root_path / name for name in sorted(files) if _is_video(Path(name)))
    return found


def find_inputs(specs: Iterable[str], out_dir: Path) -> list[tuple[Path, Path]]:
    """Resolve the command's INPUTS to (source file, output path relative to ``out_dir``) pairs, in order.

    - a folder: its video files, walked recursively (by extension; hidden files are left out, and so is
      ``out_dir`` when it lies inside), each relative to that folder;
    - a file: taken as it is, whatever its extension;
    - a glob (``'clips/**/*.mp4'``, quoted so that livecam expands it): the video files it matches;
    - files and glob matches are placed relative to the deepest folder that holds them all.

    The output keeps the relative path and takes the suffix ``.mp4``. A path that does not exist, a glob that
    matches nothing, no video at all, or two inputs that would write one output are one-line errors.
    """
    out_dir = out_dir.resolve()
    foldered: list[tuple[Path, Path]] = []
    loose: list[Path] = []
    for spec in specs:
        path = Path(spec).expanduser()
        if path.is_dir():
            root = path.resolve()
            foldered.extend((file.resolve(), file.resolve().relative_to(root)) for file in _walk(root, out_dir))
        elif path.is_file():
            loose.append(path.resolve())
        elif _GLOB_CHARS & set(spec):
            matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(spec), recursive=True))
            files = [m.resolve() for m in matches if m.is_file() and _is_video(m)]
            for folder in (m for m in matches if m.is_dir()):
                files.extend(f.resolve() for f in _walk(folder.resolve(), out_dir))
            if not files:
                raise LivecamError(f"no video file matches {spec}; check the pattern (videos: "
                                   f"{', '.join(sorted(VIDEO_SUFFIXES))})")
            loose.extend(files)
        else:
            raise LivecamError(f"{spec} does not exist; give video files, folders of videos or a quoted glob")
    pairs = list(foldered)
    if loose:
        parent = Path(os.path.commonpath([str(p.parent) for p in loose]))
        pairs.extend((p, p.relative_to(parent)) for p in loose)
    seen: dict[Path, Path] = {}
    unique: list[tuple[Path, Path]] = []
    outputs: dict[Path, Path] = {}
    for source, relative in pairs:
        if source in seen:  # the same file named twice (a folder and a file in it): once is enough
            continue
        seen[source] = relative
        target = relative.with_suffix(OUTPUT_SUFFIX)
        if target in outputs:
            raise LivecamError(f"{outputs[target]} and {source} would both be written to {out_dir / target}; "
                               "rename one, or annotate them into different --out-dir folders")
        if (out_dir / target).resolve() == source:
            raise LivecamError(f"the output for {source} would replace it; choose an --out-dir outside the inputs")
        outputs[target] = source
        unique.append((source, target))
    if not unique:
        raise LivecamError(f"no video files among the inputs ({' '.join(specs)}); videos end in "
                           f"{', '.join(sorted(VIDEO_SUFFIXES))}")
    return unique


def check_out_dir(out_dir: Path, create: bool = True) -> Path:
    """The output folder, created if needed (``create``); a file there (or an unwritable place) is an error."""
    if out_dir.exists() and not out_dir.is_dir():
        raise LivecamError(f"--out-dir {out_dir} is a file; give a folder (it is created if missing)")
    if not create:
        return out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LivecamError(f"cannot create --out-dir {out_dir} ({exc.strerror or exc})") from None
    if not os.access(out_dir, os.W_OK):
        raise LivecamError(f"cannot write in --out-dir {out_dir}; choose another folder")
    return out_dir


def _unchanged(job: Job, earlier: dict | None, settings: dict, defaults: Defaults) -> bool:
    return (earlier is not None and earlier.get("status") in (DONE, SKIPPED) and earlier.get("output") == job.output
            and earlier.get("source_size") == job.size and earlier.get("source_mtime_ns") == job.mtime_ns
            and Path(job.output).is_file() and same_settings(earlier.get("settings"), settings, defaults))


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)  # to annotate now
    skipped: list[tuple[Job, dict]] = field(default_factory=list)  # done before: the job and its earlier line
    refused: list[tuple[Job, str]] = field(default_factory=list)  # a file livecam did not write is in the way: why


def plan(specs: Iterable[str], out_dir: Path, settings: dict, force: bool = False) -> Plan:
    """What to do: every input, minus those an earlier run finished with the same settings (unless ``force``).

    An input is skipped when the manifest's latest line for it says done (or skipped), with the same output,
    source size and modification time and settings (:func:`same_settings`), and the output file exists.
    An input whose output holds a file that no manifest line says livecam wrote is refused (unless ``force``):
    livecam never replaces a file the user has.
    """
    out_dir = out_dir.resolve()
    earlier, written = _read(out_dir / MANIFEST_NAME)
    defaults = Defaults(settings)
    result = Plan()
    for source, relative in find_inputs(specs, out_dir):
        try:
            stat = source.stat()
        except OSError as exc:  # gone since the walk, or unreadable: the worker reports it
            stat = None
            log.debug("cannot stat %s: %s", source, exc)
        job = Job(str(source), str(out_dir / relative), stat.st_size if stat else -1, stat.st_mtime_ns if stat else -1)
        record = earlier.get(job.input)
        if not force and _unchanged(job, record, settings, defaults):
            result.skipped.append((job, record))
            continue
        reason = None if force else in_the_way(Path(job.output), written)
        if reason is not None:
            result.refused.append((job, reason))
        else:
            result.jobs.append(job)
    return result


def in_the_way(output: Path, written: set[str]) -> str | None:
    """Why annotating into ``output`` would replace a file livecam did not write (None: it would not).

    Livecam's own are the outputs a manifest line records as done or skipped (``written``); whatever else is
    at ``output`` is the user's. The hidden names an output is recorded under (``.NAME.partial.mp4``, the
    parts' ``.NAME.part000.mp4``) are livecam's working files: one a killed run left is written over.
    """
    if os.path.lexists(output) and str(output) not in written:
        return (f"{output} exists and no manifest line says livecam wrote it, so it is left as it is; move it "
                "away, or pass --force to replace it")
    return None


def _records(path: Path) -> Iterator[dict]:
    """The records of a manifest, in order (an absent file: none). Lines that do not parse are passed over.

    A torn last line (a run killed while writing it) is reported once, by :class:`Manifest` when it next
    opens the file and starts a new line below it; later, a line that does not parse is mentioned at ``-v``.
    """
    if not path.is_file():
        return
    with path.open(encoding="utf-8", errors="replace") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("input"), str):
                    raise ValueError("no input")
            except ValueError:
                log.info("%s line %d is not a manifest record; passed over", path, number)
                continue
            yield record


def _read(path: Path) -> tuple[dict[str, dict], set[str]]:
    """The latest line per input, and every output a line records as done or skipped: livecam's files."""
    latest: dict[str, dict] = {}
    written: set[str] = set()
    for record in _records(path):
        latest[record["input"]] = record
        if record.get("status") in (DONE, SKIPPED) and isinstance(record.get("output"), str):
            written.add(record["output"])
    return latest, written


def read_manifest(path: Path) -> dict[str, dict]:
    """The latest line per input of a manifest (an absent file: none). Lines that do not parse are passed over."""
    return _read(path)[0]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _base_record(job: Job, settings: dict) -> dict[str, Any]:
    mtime = (datetime.fromtimestamp(job.mtime_ns / 1e9, timezone.utc).isoformat(timespec="seconds")
             if job.mtime_ns >= 0 else None)
    return {"input": job.input, "output": job.output, "status": None, "frames": 0, "source_frames": None,
            "seconds": 0.0, "fps": 0.0, "top_classes": [], "source_size": job.size, "source_mtime_ns": job.mtime_ns,
            "source_mtime": mtime, "error": None, "settings": settings, "finished": None, "chunks": 1,
            **({"part": job.part} if job.span is not None else {})}


def skipped_record(job: Job, earlier: dict, settings: dict) -> dict[str, Any]:
    """The manifest line for an input an earlier run finished: its frames and classes, no time spent now.

    The settings are this run's, with the layer the earlier run resolved where this run left it to the model
    (they compared equal, so it is the one this run would use).
    """
    before = earlier.get("settings") if isinstance(earlier.get("settings"), dict) else {}
    if settings.get("layer") is None and before.get("layer") is not None:
        settings = {**settings, "layer": before["layer"]}
    record = _base_record(job, settings)
    record.update(status=SKIPPED, frames=earlier.get("frames", 0), source_frames=earlier.get("source_frames"),
                  top_classes=earlier.get("top_classes", []), chunks=earlier.get("chunks", 1), finished=_now())
    return record


def refused_record(job: Job, reason: str, settings: dict) -> dict[str, Any]:
    """The failed manifest line for an input whose output would replace a file livecam did not write."""
    record = _base_record(job, settings)
    record.update(status=FAILED, error=reason, finished=_now())
    return record


def early_records(planned: Plan, settings: dict) -> list[dict]:
    """The manifest lines a run writes before any work: the inputs done before, and those refused."""
    return ([skipped_record(job, earlier, settings) for job, earlier in planned.skipped]
            + [refused_record(job, reason, settings) for job, reason in planned.refused])


class Manifest:
    """``DIR/manifest.jsonl``, appended one flushed line at a time by the parent process only.

    A run killed while writing a line leaves it torn (no newline at its end). Opening the file finishes that
    line with a newline, so this run's first line is a line of its own rather than glued onto the torn one
    and lost with it; the torn line is reported here, once, and left as it is (it is the user's file).
    """

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / MANIFEST_NAME
        self._file = self.path.open("a", encoding="utf-8")
        torn = _torn_tail(self.path)
        if torn is not None:
            try:
                json.loads(torn)
            except ValueError:
                log.warning("%s ends in a torn line (a run was stopped while writing it): %s; it is left as it "
                            "is and passed over, and new lines start below it", self.path, _shortened(torn))
            self._file.write("\n")
            self._file.flush()

    def append(self, record: dict) -> None:
        self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _torn_tail(path: Path) -> str | None:
    """The text after the last newline of ``path`` when there is some (a line not ended), else None."""
    with path.open("rb") as file:
        end = file.seek(0, os.SEEK_END)
        if end == 0:
            return None
        file.seek(end - 1)
        if file.read(1) == b"\n":
            return None
        start = end
        while start > 0:  # read back a block at a time to the last newline
            block_start = max(0, start - 65536)
            file.seek(block_start)
            block = file.read(start - block_start)
            newline = block.rfind(b"\n")
            if newline >= 0:
                start = block_start + newline + 1
                break
            start = block_start
        file.seek(start)
        return file.read(end - start).decode("utf-8", errors="replace")


def _shortened(text: str, width: int = 60) -> str:
    return text if len(text) <= width else f"{text[:width]}..."


class _NoReadout:
    """The engine without the live speed readout: an archive's frames carry no timing, so reruns match."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine

    def process_batch(self, frames: list, readout: str | None = None) -> list:
        return self.engine.process_batch(frames, None)


class FileWorker:
    """Loads the engine once; :meth:`run` annotates one file and returns its manifest line (a dict).

    What a local worker process keeps for every file it takes, and what a Ray actor can wrap as it is.
    """

    def __init__(self, options: Any, batch: int = 1, settings: dict | None = None) -> None:
        from livecam.engines.launch import open_engine

        self.batch = batch
        self.launched = open_engine(options)
        self.engine = self.launched.engine
        self.settings = dict(settings or {})
        if "layer" in self.settings and self.settings["layer"] is None:  # left to the model: the one it took
            self.settings["layer"] = engine_layer(self.engine)

    def run(self, job: Job, stop: Any = None, on_frames: Callable[[int], None] | None = None) -> dict[str, Any]:
        """Annotate ``job.input`` into ``job.output``; a bad input is a failed record, never an exception.

        ``stop`` (an object with ``is_set()``) ends the file between frames: the record's status is then
        ``interrupted`` and no output is left. ``on_frames(n)`` counts progress.
        """
        from livecam.pipeline import run
        from livecam.sinks import record_source

        record = _base_record(job, self.settings)
        started, started_at = time.perf_counter(), time.time()
        final = Path(job.output)
        counts: Counter[str] = Counter()
        unreported = [0]

        def on_frame(annotated: Any) -> None:
            if annotated.labels:
                counts[annotated.labels[0].name] += 1
            unreported[0] += 1
            if on_frames is not None and unreported[0] >= 8:
                on_frames(unreported[0])
                unreported[0] = 0

        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            with self._source(job) as src:
                record["source_frames"] = src.frame_count
                # the recorder's partial file becomes the output only when the whole source went through
                with record_source(src, final, overwrite=True, source_path=Path(job.input),
                                   codec=self.settings.get("codec"), crf=self.settings.get("crf"),
                                   keep_incomplete=False) as sink:
                    try:
                        report = run(src, _NoReadout(self.engine), [sink], batch=self.batch, stop=stop,
                                     on_frame=on_frame)
                    except BaseException:
                        sink.discard()
                        raise
                    if report.interrupted or report.frames == 0:
                        sink.discard()
            record.update(frames=report.frames, seconds=round(report.seconds, 3), fps=round(report.fps, 2))
            if report.interrupted:
                record.update(status=INTERRUPTED, error="interrupted")
            elif report.frames == 0:
                record.update(status=FAILED, error="no frame could be decoded")
            else:
                record["status"] = DONE
        except LivecamError as exc:
            record.update(status=FAILED, error=" ".join(str(exc).split()))
        except Exception as exc:  # noqa: BLE001 - one bad file must not end the archive's run
            log.debug("%s failed", job.input, exc_info=True)
            record.update(status=FAILED, error=f"{type(exc).__name__}: {' '.join(str(exc).split())}")
        finally:
            if on_frames is not None and unreported[0]:
                on_frames(unreported[0])
        if record["status"] != DONE:
            record["seconds"] = round(time.perf_counter() - started, 3)
        record["top_classes"] = [{"name": name, "count": n} for name, n in counts.most_common(TOP_CLASSES)]
        record["finished"] = _now()
        if job.span is not None:  # what joining the parts takes: all the counts, and when the part began
            record.update(class_counts=dict(counts), started_at=started_at)
        return record

    @staticmethod
    def _source(job: Job) -> Any:
        if job.span is None:
            from livecam.sources import open_source

            return open_source(job.input)
        from livecam.annotate.parts import ClipSource

        return ClipSource(job.input, job.span)

    def close(self) -> None:
        self.engine.close()


def engine_layer(engine: Any) -> str:
    """The layer an engine explains: an ONNX Runtime graph's (its metadata), or the PyTorch explainer's."""
    info = getattr(engine, "info", None)
    return info.layer if info is not None else engine.explainer.layer


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


# --- local worker processes -------------------------------------------------------------------------------------

_WORKER: FileWorker | None = None
_WORKER_ERROR: str | None = None
_STOP: Any = None
_PROGRESS: Any = None


def _init_worker(options: Any, batch: int, settings: dict, stop: Any, progress: Any) -> None:
    """A worker process's start: the parent handles Ctrl-C (and tells us through ``stop``); load the engine once."""
    global _WORKER, _WORKER_ERROR, _STOP, _PROGRESS
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    _STOP, _PROGRESS = stop, progress
    try:
        _WORKER = FileWorker(options, batch, settings)
    except LivecamError as exc:  # reported by the first job, in the parent, as bad usage
        _WORKER_ERROR = str(exc)


def _work(job: Job) -> dict[str, Any]:
    if _WORKER is None:
        raise LivecamError(_WORKER_ERROR or "the worker could not load the model")
    return _WORKER.run(job, stop=_STOP, on_frames=_PROGRESS.put)


def run_jobs(jobs: list[Job], options: Any, settings: dict, *, batch: int = 1, workers: int = 1,
             stop: threading.Event | None = None, on_result: Callable[[dict], None] | None = None,
             on_frames: Callable[[int], None] | None = None, worker: FileWorker | None = None) -> list[dict]:
    """Annotate ``jobs`` and hand each finished record to ``on_result`` as it comes (the manifest's writer).

    ``workers=1`` runs in this process (``worker``: an engine already loaded); more start that many spawned
    processes, each loading the engine once. Setting ``stop`` ends the files in progress between frames and
    starts no more; their records say ``interrupted``. A model that cannot load raises LivecamError.
    """
    stop = stop or threading.Event()
    results: list[dict] = []
    if not jobs:
        return results

    def finish(record: dict) -> None:
        results.append(record)
        if on_result is not None:
            on_result(record)

    if workers <= 1 or len(jobs) <= 1:
        own = worker or FileWorker(options, batch, settings)
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
        from dataclasses import replace

        options = replace(options, threads=threads_per_worker(workers))
    _run_pool(jobs, options, settings, batch, workers, stop, finish, on_frames)
    return results


def threads_per_worker(workers: int) -> int:
    """The CPU threads each of ``workers`` local engines gets: this process's cores shared out, at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(workers, 1))


def _run_pool(jobs: list[Job], options: Any, settings: dict, batch: int, workers: int, stop: threading.Event,
              finish: Callable[[dict], None], on_frames: Callable[[int], None] | None) -> None:
    import multiprocessing
    import queue
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")
    shared_stop = context.Event()
    progress = context.Queue()

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
                job = pending.pop(future)
                if future.cancelled():
                    continue
                try:
                    finish(future.result())
                except BrokenProcessPool as exc:
                    remove_partial(Path(job.output))
                    record = _base_record(job, settings)
                    record.update(status=FAILED, error=f"the worker process died ({exc})", finished=_now())
                    finish(record)
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


# --- long files in parts (--chunk-seconds) ------------------------------------------------------------------------

def part_path(output: Path, part: int) -> Path:
    """The hidden file part ``part`` of a long file is recorded to, beside the file's output."""
    return output.with_name(f".{output.stem}.part{part:03d}{output.suffix}")


def _remove_parts(output: Path, count: int) -> None:
    """The ``count`` part files of ``output`` this run recorded, and their partial files (livecam's working
    files, by their hidden names)."""
    from livecam.sinks import partial_path

    for part in (part_path(output, i) for i in range(count)):
        for path in (part, partial_path(part)):
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)


@dataclass
class _Split:
    job: Job
    spans: list[Span]
    records: dict[int, dict] = field(default_factory=dict)


class Chunker:
    """``--chunk-seconds``: long files handed out in parts, and joined as their parts come back.

    :attr:`work` is what the workers get: the files as they are, except that a file longer than ``seconds``
    becomes one job per span (:func:`livecam.annotate.parts.plan_spans`), each recorded to a hidden part file.
    :meth:`take` is the workers' ``on_result``: a whole file's record passes on to ``on_result`` at once; a
    part's is held until all its file's parts are back, then the parts are joined into the file's output
    (no re-encoding) and the file's one record passes on. :meth:`close` ends the files a stop left with
    parts missing (interrupted, no output) and removes their part files.
    """

    def __init__(self, jobs: list[Job], seconds: float | None, settings: dict,
                 on_result: Callable[[dict], None] | None = None) -> None:
        from dataclasses import replace

        self.settings = settings
        self.on_result = on_result
        self.work: list[Job] = []
        self._splits: dict[str, _Split] = {}
        for job in jobs:
            spans = []
            if seconds:
                from livecam.annotate.parts import plan_spans

                spans = plan_spans(job.input, seconds)
            if len(spans) < 2:
                self.work.append(job)
                continue
            self._splits[job.input] = _Split(job, spans)
            log.info("%s: %d parts, cut at %s s", job.input, len(spans),
                     ", ".join(f"{span.seconds:.1f}" for span in spans[1:]))
            self.work.extend(replace(job, output=str(part_path(Path(job.output), i)), span=span, part=i)
                             for i, span in enumerate(spans))

    @property
    def split(self) -> int:
        """How many files are done in parts."""
        return len(self._splits)

    def take(self, record: dict) -> None:
        split = self._splits.get(record["input"]) if "part" in record else None
        if split is None:
            self._pass(record)
            return
        split.records[record["part"]] = record
        if len(split.records) == len(split.spans):
            del self._splits[split.job.input]
            self._pass(self._join(split))

    def close(self) -> None:
        for split in list(self._splits.values()):
            _remove_parts(Path(split.job.output), len(split.spans))
            record = _base_record(split.job, self.settings)
            record.update(status=INTERRUPTED, error="interrupted", finished=_now())
            self._pass(record)
        self._splits.clear()

    def _pass(self, record: dict) -> None:
        if self.on_result is not None:
            self.on_result(record)

    def _join(self, split: _Split) -> dict[str, Any]:
        """The file's record from its parts' records, after joining the parts into its output."""
        import av

        from livecam.annotate.parts import join

        job, parts = split.job, [split.records[i] for i in range(len(split.spans))]
        # the workers' settings: with the layer their engines resolved (see FileWorker)
        settings = next((part["settings"] for part in parts if isinstance(part.get("settings"), dict)), self.settings)
        record = _base_record(job, settings)
        counts: Counter[str] = Counter()
        for part in parts:
            counts.update(part.get("class_counts") or {})
        frames = sum(part.get("frames", 0) for part in parts)
        record.update(frames=frames, source_frames=sum(span.frames for span in split.spans), chunks=len(parts),
                      top_classes=[{"name": name, "count": n} for name, n in counts.most_common(TOP_CLASSES)])
        bad = next((part for part in parts if part["status"] != DONE), None)
        try:
            if bad is not None:
                status = INTERRUPTED if any(part["status"] == INTERRUPTED for part in parts) else FAILED
                where = split.spans[bad["part"]].seconds
                record.update(status=status, error=bad["error"] if status == INTERRUPTED
                              else f"the part from {where:.1f} s: {bad['error']}")
            else:
                written = join([part_path(Path(job.output), i) for i in range(len(parts))], Path(job.output))
                if written != frames:
                    Path(job.output).unlink(missing_ok=True)
                    raise LivecamError(f"joining the parts gave {written} frames of {frames}")
                record["status"] = DONE
        except (OSError, LivecamError, av.FFmpegError) as exc:
            text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            record.update(status=FAILED, error=f"could not join the parts into {job.output} ({' '.join(text.split())})")
        finally:
            _remove_parts(Path(job.output), len(split.spans))
        starts = [part["started_at"] for part in parts if "started_at" in part]
        record["seconds"] = round(time.time() - min(starts), 3) if starts else 0.0
        if record["status"] == DONE and record["seconds"] > 0:
            record["fps"] = round(frames / record["seconds"], 2)
        record["finished"] = _now()
        return record


# --- settings: what an output depends on, resolved ----------------------------------------------------------------

DEFAULTS = "defaults"  # in the settings: the names of those not given, which livecam resolved itself


def settings_of(options: Any, codec: str | None = None, crf: int | None = None) -> dict[str, Any]:
    """What an output depends on besides its source: a change redoes the files (device, backend, batch don't).

    The values are the ones the run uses, so that equal settings compare equal however they were given: the
    method (a graph's own, else gradcam), the codec (H.264 unless given; one .mp4 cannot hold is refused
    here) and its CRF (the codec's default; none for mjpeg and mp4v), and a graph's layer and class (its
    metadata; a class is its index). A zoo model's default layer needs the model, so it is None here and
    the worker that loads the model writes the one it took (:class:`FileWorker`). ``defaults`` names the
    settings that were not given.
    """
    from livecam.sinks.encode import DEFAULT_CRF, resolve_codec

    chosen = resolve_codec(OUTPUT_SUFFIX, codec, crf)
    model = options.model
    extra = {}
    if options.is_graph_file:
        path = Path(model).expanduser()
        model = str(path.resolve())
        if path.is_file():
            extra["model_mtime_ns"] = path.stat().st_mtime_ns
    values = asdict(options)
    settings = {"model": model, **{k: values[k] for k in ("weights", "method", "layer", "target_class", "topk",
                                                          "panels", "precision", "colormap", "alpha")},
                "codec": chosen, "crf": crf if crf is not None else DEFAULT_CRF.get(chosen), **extra}
    settings.update(Defaults(settings).normalized(settings))
    settings[DEFAULTS] = sorted(name for name, given in (("method", options.method), ("layer", options.layer),
                                                         ("codec", codec), ("crf", crf)) if given is None)
    return settings


def same_settings(earlier: Any, current: dict, defaults: Defaults) -> bool:
    """Whether an earlier run's settings (a manifest line's) give the output ``current`` give.

    Both are taken as the run would use them (:meth:`Defaults.normalized`): a setting that is null or
    missing, as in older manifests, is its default, and a class by name or index is one class. The layer,
    where one run left it to the model and the other named it, is compared with the model's default layer,
    looked up only then (:attr:`Defaults.layer`); where both left it to the model it is the same.
    """
    if not isinstance(earlier, dict):
        return False
    before, now = defaults.normalized(earlier), defaults.normalized(current)
    if {type(before["target_class"]), type(now["target_class"])} == {int, str}:  # a name and an index
        names = defaults.class_names
        if names is not None:
            before["target_class"], now["target_class"] = (defaults.class_key(side.get("target_class"), names)
                                                           for side in (earlier, current))
    if any(before.get(key) != now.get(key) for key in (set(before) | set(now)) - {DEFAULTS, "layer"}):
        return False
    left_before, left_now = _layer_left(before), _layer_left(now)
    if left_before and left_now:
        return True
    if not left_before and not left_now:
        return before["layer"] == now["layer"]
    layer_before, layer_now = (side["layer"] if side["layer"] is not None else defaults.layer for side in (before, now))
    return layer_before is not None and layer_before == layer_now


def _layer_left(settings: dict) -> bool:
    """Whether a run left the layer to the model (older manifests: a null layer)."""
    return settings.get("layer") is None or "layer" in (settings.get(DEFAULTS) or ())


class Defaults:
    """What a run's settings leave to the model: the graph's choices, or a zoo model's default layer.

    A graph's are in its metadata, read at once (about a millisecond, :meth:`GraphInfo.read`). A zoo model's
    default layer and class names are looked up only when a comparison needs them, which a rerun of the
    same command never does: in the graph ONNX Runtime runs it from (the livecam cache), else, for the
    layer, by building the model (PyTorch, seconds; its weights do not matter, its architecture does).
    """

    def __init__(self, settings: dict) -> None:
        from livecam.engines.runtime.graph import GraphInfo

        self.settings = settings
        self.graph = None
        model = settings.get("model")
        if isinstance(model, str) and model.lower().endswith(".onnx"):
            with contextlib.suppress(LivecamError, OSError):  # the engine says what is wrong with it
                self.graph = GraphInfo.read(Path(model))

    def normalized(self, settings: dict) -> dict[str, Any]:
        """``settings`` as the run uses them: the method, codec, CRF, class and a graph's layer resolved."""
        from livecam.choices import DEFAULT_METHOD
        from livecam.sinks.encode import DEFAULT_CODEC, DEFAULT_CRF

        model = settings.get("model")
        on_graph = isinstance(model, str) and model.lower().endswith(".onnx")
        method = settings.get("method")
        if method is None:
            method = self.graph.method if self.graph is not None else None if on_graph else DEFAULT_METHOD
        codec = settings.get("codec") or DEFAULT_CODEC[OUTPUT_SUFFIX]
        crf = settings.get("crf")
        layer = settings.get("layer")
        if layer is None and self.graph is not None:
            layer = self.graph.layer
        return {**settings, "method": method, "codec": codec, "crf": crf if crf is not None else DEFAULT_CRF.get(codec),
                "layer": layer, "target_class": self.class_key(settings.get("target_class"))}

    def class_key(self, value: Any, names: tuple[str, ...] | None = None) -> int | str | None:
        """A class as one value: its index where the class names are known (a graph's), else an index given
        as one, or the name in lower case; None (each frame's top class, or a graph's own class)."""
        from livecam.choices import resolve_class

        if names is None and self.graph is not None:
            names = self.graph.class_names
        if value is None:
            return self.graph.target_class if self.graph is not None else None
        text = str(value).strip()
        if names:
            with contextlib.suppress(LivecamError):
                return resolve_class(text, names)
        return int(text) if text.lstrip("-").isdigit() else text.lower()

    @functools.cached_property
    def _cached_graph(self) -> Any:
        """The zoo model's graph in the livecam cache, for these settings or the default ones; None if none."""
        from livecam import choices
        from livecam.engines import launch
        from livecam.engines.runtime.graph import GraphInfo

        if self.graph is not None or not isinstance(self.settings.get("model"), str):
            return None
        model, settings = self.settings["model"], self.settings
        weights = launch.weights_file(model, settings.get("weights"))
        if weights is None:  # torchvision's own weights: their file is known to torchvision
            return None
        k = settings.get("topk", 1) if settings.get("panels") else 1
        target = settings.get("target_class")
        for method, topk, typed, precision in (
                (settings.get("method") or choices.DEFAULT_METHOD, k, None if target is None else str(target),
                 "fp16" if settings.get("precision") == "fp16" else "fp32"),
                (choices.DEFAULT_METHOD, 1, None, "fp32")):
            path = launch.graph_cache_path(model, weights, method, None, topk, typed, precision)
            if path.is_file():
                with contextlib.suppress(LivecamError, OSError):
                    return GraphInfo.read(path)
        return None

    @functools.cached_property
    def class_names(self) -> tuple[str, ...] | None:
        """The model's class names, where they are cheap to know (a graph's metadata); else None."""
        graph = self.graph or self._cached_graph
        return graph.class_names if graph is not None else None

    @functools.cached_property
    def layer(self) -> str | None:
        """The layer the model is explained at when none is given; None when it cannot be found out."""
        graph = self.graph or self._cached_graph
        if graph is not None:
            return graph.layer
        from livecam.errors import torch_installed
        from livecam.engines.launch import RANDOM

        model = self.settings.get("model")
        if not isinstance(model, str) or model.lower().endswith(".onnx") or not torch_installed():
            return None
        log.info("finding the default layer of %s (it builds the model once)", model)
        try:
            from livecam.zoo import load_model

            return load_model(model, weights=RANDOM, device="cpu").target_layer
        except Exception as exc:  # noqa: BLE001 - then the runs compare unequal and the files are done again
            log.debug("cannot build %s: %s", model, exc)
            return None


def frame_total(jobs: Iterable[Job]) -> int | None:
    """The frames the containers say they hold (for the progress bar); None when unknown."""
    import cv2

    total = 0
    for job in jobs:
        cap = cv2.VideoCapture(job.input)
        count = int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if cap.isOpened() else 0
        cap.release()
        total += max(count, 0)
    return total or None


def summary_table(records: list[dict], base: Path | None = None) -> str:
    """Plain aligned text: one row per input (status, frames, FPS, top class, input, error)."""
    def shown(path: str) -> str:
        if base is not None:
            try:
                return str(Path(path).relative_to(base))
            except ValueError:
                pass
        return path

    rows = [("STATUS", "FRAMES", "FPS", "TOP CLASS", "INPUT", "ERROR")]
    for r in records:
        top = r["top_classes"][0] if r.get("top_classes") else None
        rows.append((r["status"], str(r.get("frames", 0)), f"{r['fps']:.1f}" if r.get("fps") else "-",
                     f"{top['name']} ({top['count']})" if top else "-", shown(r["input"]), r.get("error") or ""))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                     for row in rows)
