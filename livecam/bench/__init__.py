"""``livecam bench``: latency as edge devices are compared, where the time goes, and the speed a user sees.

On the same decoded frames, in one process, with the engine ``livecam run`` would pick:

1. **Single-stream latency** (MLPerf's SingleStream scenario: one frame at a time,
   the next when the last is done): the whole step, frame in to annotated frame
   out, and each stage of it (synchronized per stage on a GPU), as p50, p90 and
   p99 over many frames after a warm-up, as trtexec reports them.
2. **The explanation against plain inference**, like for like: the explanation
   call and plain inference of the same model, each timed whole on the same
   prepared input, in turns, so that a noisy neighbour slows both alike. On ONNX
   Runtime plain inference is the explainer graph cut down to its logits.
3. **End to end**: the threaded pipeline on a real video file (decode, explain,
   overlay, encode): FPS, and each frame's latency from the decoder to the sinks.
4. **Start-up**: from the command to the first annotated frame, in fresh processes.
5. **The peer**, where PyTorch and pytorch-grad-cam are installed: its ``GradCAM``
   and ``show_cam_on_image`` per frame, as its README shows.

The JSON report (schema ``livecam-bench/2``, documented in benchmarks/README.md
and checked by ``bench.schema.json``) records the device, the provider or
backend, the precision, batch and input size and the versions, so that
``livecam bench --compare A.json B.json`` lines up results from different
machines. No PyTorch is imported unless the PyTorch engine or the peer runs.

The package, by concern:

- :mod:`~livecam.bench.report`: :class:`Stat`, :class:`BenchResult`, the JSON
  report's records, reading (:func:`load_result`) and comparing reports;
- :mod:`~livecam.bench.machine`: the machine, the versions, the memory in use;
- :mod:`~livecam.bench.runs`: the frames, the runs, and :func:`run_bench`;
- :mod:`~livecam.bench.runtime_target` and :mod:`~livecam.bench.torch_target`:
  what is timed on each engine (the second, and the peer, need PyTorch);
- :mod:`~livecam.bench.plots`: the charts (matplotlib).
"""

from livecam.bench.machine import machine_info, rss_mb, versions
from livecam.bench.plots import plot, plot_compare
from livecam.bench.report import (
    SCHEMA,
    SCHEMA_FILE,
    BenchConfig,
    BenchReport,
    BenchResult,
    Machine,
    Stat,
    compare_markdown,
    load_result,
)
from livecam.bench.runs import (
    BenchTarget,
    bench_pipeline,
    bench_step,
    load_frames,
    parse_size,
    run_bench,
    startup_runs,
)
from livecam.bench.runtime_target import RuntimeTarget

__all__ = [
    "SCHEMA", "SCHEMA_FILE", "BenchConfig", "BenchReport", "BenchResult", "BenchTarget", "Machine", "RuntimeTarget",
    "Stat", "bench_pipeline", "bench_step", "compare_markdown", "load_frames", "load_result", "machine_info",
    "parse_size", "plot", "plot_compare", "rss_mb", "run_bench", "startup_runs", "versions",
]
