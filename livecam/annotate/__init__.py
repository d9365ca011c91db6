"""``livecam annotate``: many recordings in, one annotated video per recording out, with a manifest.

The stage, in the order a run goes through it:

- :mod:`~livecam.annotate.plan`: in the parent, before any model loads or Ray
  starts: which files the INPUTS name, where each output goes, which ones an
  earlier run already did, and which would replace a file livecam did not
  write (refused). Its :class:`~livecam.annotate.job.Job` s are the work.
- :mod:`~livecam.annotate.settings`: what an output depends on besides its
  source, resolved so that equal settings compare equal (a rerun skips a file
  only then).
- :mod:`~livecam.annotate.manifest`: ``manifest.jsonl``, one line per input and
  run, written by the parent only, as each file finishes; what a rerun
  resumes from.
- :mod:`~livecam.annotate.parts`: a long file cut at keyframes into parts that
  workers annotate at the same time, joined without re-encoding
  (``chunk_seconds``); the parts are decoded by
  :class:`livecam.sources.clip.ClipSource`.
- :mod:`~livecam.annotate.worker`: :class:`FileWorker`, which loads the engine
  once and annotates one file per call, returning the file's manifest line.
- :mod:`~livecam.annotate.pool` (this process, or local worker processes) and
  :mod:`~livecam.annotate.ray` (Ray actors) hand the jobs to FileWorkers.
- :mod:`~livecam.annotate.summary`: the frames to expect and the table the CLI
  prints.

Errors in the lines read as the caller's ``describe`` renders them (``str``:
the library's words; the CLI passes one that names its flags).
"""

from __future__ import annotations

from livecam.annotate.job import Job
from livecam.annotate.manifest import (DONE, FAILED, INTERRUPTED, MANIFEST_NAME, SKIPPED, TOP_CLASSES, Describe,
                                       History, Line, Manifest, Record, TopClass, base_record, error_record,
                                       read_history, read_manifest, refused_record, skipped_record, top_classes,
                                       utc_now)
from livecam.annotate.parts import Chunker, part_path
from livecam.annotate.plan import (VIDEO_SUFFIXES, Plan, check_out_dir, early_records, find_inputs, in_the_way,
                                   plan)
from livecam.annotate.pool import run_jobs, threads_per_worker
from livecam.annotate.settings import DEFAULTS, OUTPUT_SUFFIX, Defaults, Settings, same_settings, settings_of
from livecam.annotate.summary import frame_total, summary_table
from livecam.annotate.worker import FileWorker, marked, remove_partial, rendered

__all__ = [
    "DEFAULTS", "DONE", "FAILED", "INTERRUPTED", "MANIFEST_NAME", "OUTPUT_SUFFIX", "SKIPPED", "TOP_CLASSES",
    "VIDEO_SUFFIXES", "Chunker", "Defaults", "Describe", "FileWorker", "History", "Job", "Line", "Manifest", "Plan",
    "Record", "Settings", "TopClass", "base_record", "check_out_dir", "early_records",
    "error_record", "find_inputs", "frame_total", "in_the_way", "marked", "part_path", "plan", "read_history",
    "read_manifest", "refused_record", "remove_partial", "rendered", "run_jobs", "same_settings", "settings_of",
    "skipped_record", "summary_table", "threads_per_worker", "top_classes", "utc_now",
]
