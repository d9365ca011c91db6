"""What to do, decided in the parent before any model loads or Ray starts.

Which files the command's INPUTS name (:func:`find_inputs`), where each output
goes, which ones an earlier run already did (the manifest says so, the source
is unchanged, the output exists and the settings compare equal as they run,
see :func:`livecam.annotate.settings.same_settings`), and which would replace a
file livecam did not write (refused, :func:`in_the_way`: livecam never loses a
file the user has). It is torch-free but for one case: a zoo model's default
layer, looked up only when one run named the layer and the other did not
(:class:`livecam.annotate.settings.Defaults`).
"""

from __future__ import annotations

import glob
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from livecam.annotate.job import Job
from livecam.annotate.manifest import (DONE, MANIFEST_NAME, SKIPPED, Describe, Line, Record, read_history,
                                       refused_record, skipped_record)
from livecam.annotate.settings import OUTPUT_SUFFIX, Defaults, Settings, same_settings
from livecam.errors import LivecamError, option

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = frozenset({".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv",
                            ".ts", ".mts", ".m2ts", ".3gp", ".ogv"})
_GLOB_CHARS = set("*?[")


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
    found: list[Path] = []
    for root, dirs, files in os.walk(folder):
        root_path = Path(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and not _within((root_path / d).resolve(), exclude))
        found.extend(root_path / name for name in sorted(files) if _is_video(Path(name)))
    return found


def _glob_files(spec: str, out_dir: Path) -> list[Path]:
    """The video files a glob names: the files it matches, and those in the folders it matches."""
    matches = sorted(Path(m) for m in glob.glob(os.path.expanduser(spec), recursive=True))
    files = [m.resolve() for m in matches if m.is_file() and _is_video(m)]
    for folder in (m for m in matches if m.is_dir()):
        files.extend(f.resolve() for f in _walk(folder.resolve(), out_dir))
    if not files:
        raise LivecamError(f"no video file matches {spec}; check the pattern (videos: "
                           f"{', '.join(sorted(VIDEO_SUFFIXES))})")
    return files


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
    specs = list(specs)
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
            loose.extend(_glob_files(spec, out_dir))
        else:
            raise LivecamError(f"{spec} does not exist; give video files, folders of videos or a quoted glob")
    pairs = list(foldered)
    if loose:
        parent = Path(os.path.commonpath([str(p.parent) for p in loose]))
        pairs.extend((p, p.relative_to(parent)) for p in loose)
    unique = _one_output_each(pairs, out_dir)
    if not unique:
        raise LivecamError(f"no video files among the inputs ({' '.join(specs)}); videos end in "
                           f"{', '.join(sorted(VIDEO_SUFFIXES))}")
    return unique


def _one_output_each(pairs: list[tuple[Path, Path]], out_dir: Path) -> list[tuple[Path, Path]]:
    """Each source once, with its output's relative path; two sources for one output, or an output that would
    replace its source, are errors."""
    seen: set[Path] = set()
    unique: list[tuple[Path, Path]] = []
    outputs: dict[Path, Path] = {}
    for source, relative in pairs:
        if source in seen:  # the same file named twice (a folder and a file in it): once is enough
            continue
        seen.add(source)
        target = relative.with_suffix(OUTPUT_SUFFIX)
        if target in outputs:
            raise LivecamError(f"{outputs[target]} and {source} would both be written to {out_dir / target}; "
                               f"rename one, or annotate them into different {option('out_dir')} folders")
        if (out_dir / target).resolve() == source:
            raise LivecamError(f"the output for {source} would replace it; choose an {option('out_dir')} outside "
                               "the inputs")
        outputs[target] = source
        unique.append((source, target))
    return unique


def check_out_dir(out_dir: Path, create: bool = True) -> Path:
    """The output folder, created if needed (``create``); a file there (or an unwritable place) is an error."""
    if out_dir.exists() and not out_dir.is_dir():
        raise LivecamError(f"{option('out_dir')} {out_dir} is a file; give a folder (it is created if missing)")
    if not create:
        return out_dir
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise LivecamError(f"cannot create {option('out_dir')} {out_dir} ({exc.strerror or exc})") from None
    if not os.access(out_dir, os.W_OK):
        raise LivecamError(f"cannot write in {option('out_dir')} {out_dir}; choose another folder")
    return out_dir


def _unchanged(job: Job, earlier: Line | None, settings: Settings, defaults: Defaults) -> bool:
    return (earlier is not None and earlier.get("status") in (DONE, SKIPPED) and earlier.get("output") == job.output
            and earlier.get("source_size") == job.size and earlier.get("source_mtime_ns") == job.mtime_ns
            and Path(job.output).is_file() and same_settings(earlier.get("settings"), settings, defaults))


@dataclass
class Plan:
    jobs: list[Job] = field(default_factory=list)  # to annotate now
    skipped: list[tuple[Job, Line]] = field(default_factory=list)  # done before: the job and its earlier line
    refused: list[tuple[Job, str]] = field(default_factory=list)  # a file livecam did not write is in the way: why


def _job(source: Path, output: Path) -> Job:
    try:
        stat = source.stat()
    except OSError as exc:  # gone since the walk, or unreadable: the worker reports it
        log.debug("cannot stat %s: %s", source, exc)
        return Job(str(source), str(output), -1, -1)
    return Job(str(source), str(output), stat.st_size, stat.st_mtime_ns)


def plan(specs: Iterable[str], out_dir: Path, settings: Settings, force: bool = False,
         describe: Describe = str) -> Plan:
    """What to do: every input, minus those an earlier run finished with the same settings (unless ``force``).

    An input is skipped when the manifest's latest line for it says done (or skipped), with the same output,
    source size and modification time and settings (:func:`same_settings`), and the output file exists.
    An input whose output holds a file that no manifest line says livecam wrote is refused (unless ``force``):
    livecam never replaces a file the user has. The reason reads as ``describe`` renders it (the CLI: its flags).
    """
    out_dir = out_dir.resolve()
    history = read_history(out_dir / MANIFEST_NAME)
    defaults = Defaults(settings)
    result = Plan()
    for source, relative in find_inputs(specs, out_dir):
        job = _job(source, out_dir / relative)
        earlier = history.latest.get(job.input)
        if not force and earlier is not None and _unchanged(job, earlier, settings, defaults):
            result.skipped.append((job, earlier))
            continue
        refusal = None if force else in_the_way(Path(job.output), history.written)
        if refusal is not None:
            result.refused.append((job, describe(refusal)))
        else:
            result.jobs.append(job)
    return result


def in_the_way(output: Path, written: set[str]) -> LivecamError | None:
    """Why annotating into ``output`` would replace a file livecam did not write (None: it would not).

    Livecam's own are the outputs a manifest line records as done or skipped (``written``); whatever else is
    at ``output`` is the user's. The hidden names an output is recorded under (``.NAME.partial.mp4``, the
    parts' ``.NAME.part000.mp4``) are livecam's working files: one a killed run left is written over.
    """
    if os.path.lexists(output) and str(output) not in written:
        return LivecamError(f"{output} exists and no manifest line says livecam wrote it, so it is left as it is; "
                            f"move it away, or pass {option('force')} to replace it")
    return None


def early_records(planned: Plan, settings: Settings) -> list[Record]:
    """The manifest lines a run writes before any work: the inputs done before, and those refused."""
    return ([skipped_record(job, earlier, settings) for job, earlier in planned.skipped]
            + [refused_record(job, reason, settings) for job, reason in planned.refused])
