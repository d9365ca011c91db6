"""An ONNX Runtime session on the right execution provider, and a check of what actually runs.

The ONNX Runtime engine runs exported explainer graphs where PyTorch is not installed (edge boxes, Jetson), so
this module imports no torch: only the standard library, NumPy, ``livecam.errors``, and ``onnxruntime``
lazily, inside the functions that need it.

Three things about ONNX Runtime shape this module:

- **"Available" is not "usable".** The onnxruntime-gpu wheel lists the TensorRT and CUDA providers on any
  machine, GPU or not, and its CPU provider runs fine without one. So the GPU providers are planned only when
  the CUDA driver reports a GPU, counted through the driver library itself (``cuDeviceGetCount`` via
  ctypes: no torch, no nvidia-smi).
- **A GPU provider that fails to load falls back to the CPU silently** (onnxruntime issue #23372): the
  session is created, and only ``session.get_providers()`` tells. An explicit ``cuda`` or ``tensorrt``
  request that ends up elsewhere is therefore an error; ``auto`` logs a warning and goes on.
- **Copies cost on a GPU.** Without IO binding, every run copies the input to the device and the outputs
  back, into fresh buffers. With it, the input lives in one device buffer per input shape, refilled in place
  (``OrtValue.update_inplace``), and the outputs are allocated on the device and copied back once.

The TensorRT provider comes first, then CUDA for the nodes TensorRT cannot run, then the CPU. TensorRT builds
its engine on the first run (minutes on a Jetson), so the engines and the timing cache are kept on disk;
cached engines do not carry across ONNX Runtime or TensorRT versions.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import io
import logging
import re
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from livecam.errors import GraphError, LivecamError

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"
CUDA = "CUDAExecutionProvider"
TENSORRT = "TensorrtExecutionProvider"
GPU_PROVIDERS = (TENSORRT, CUDA)

DEVICE_KINDS = ("auto", "cpu", "cuda", "tensorrt")
DEVICE_FORMS = "auto, cpu, cuda, cuda:N, tensorrt or tensorrt:N"

# One device buffer per input (shape, dtype) under IO binding; a few, so that a batch size that varies
# from call to call cannot make them pile up on the GPU.
MAX_BOUND_SHAPES = 4

_NUMPY_TYPES = {
    "tensor(float)": np.dtype(np.float32),
    "tensor(float16)": np.dtype(np.float16),
    "tensor(double)": np.dtype(np.float64),
    "tensor(uint8)": np.dtype(np.uint8),
    "tensor(int8)": np.dtype(np.int8),
    "tensor(int32)": np.dtype(np.int32),
    "tensor(int64)": np.dtype(np.int64),
    "tensor(bool)": np.dtype(np.bool_),
}


@dataclass(frozen=True)
class DeviceRequest:
    """What the user asked for: a kind of device and, for ``cuda`` and ``tensorrt``, which GPU."""

    kind: str  # "auto", "cpu", "cuda" or "tensorrt"
    index: int = 0

    def __str__(self) -> str:
        return f"{self.kind}:{self.index}" if self.kind in ("cuda", "tensorrt") else self.kind


def parse_device(text: str) -> DeviceRequest:
    """``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``tensorrt`` or ``tensorrt:N`` (any case, spaces around ignored)."""
    match = re.fullmatch(r"(auto|cpu|cuda|tensorrt)(?::(\d+))?", str(text).strip().lower())
    if match is None or (match[2] is not None and match[1] in ("auto", "cpu")):
        raise LivecamError(f"unknown device {str(text).strip()!r} for ONNX Runtime; use {DEVICE_FORMS}")
    return DeviceRequest(match[1], int(match[2] or 0))


@functools.lru_cache(maxsize=1)
def cuda_device_count() -> int:
    """The number of NVIDIA GPUs the CUDA driver sees (it honours CUDA_VISIBLE_DEVICES), 0 without a driver.

    Asks the driver library directly (``cuInit(0)``, then ``cuDeviceGetCount``), so it needs neither torch
    nor nvidia-smi; any failure (no library, no device, a driver too old) counts as no GPU.
    """
    if sys.platform == "win32":
        names = ["nvcuda.dll"]
    elif sys.platform.startswith("linux"):
        names = ["libcuda.so.1", "libcuda.so"]
    else:
        return 0  # no CUDA driver on macOS
    for name in names:
        try:
            library = ctypes.CDLL(name)
        except OSError:
            continue
        try:
            if library.cuInit(0) != 0:
                return 0
            count = ctypes.c_int(0)
            if library.cuDeviceGetCount(ctypes.byref(count)) != 0:
                return 0
            return max(count.value, 0)
        except (AttributeError, OSError, ValueError):
            return 0
    return 0


def _short(provider: str) -> str:
    return {CPU: "CPU", CUDA: "CUDA", TENSORRT: "TensorRT"}.get(provider, provider.removesuffix("ExecutionProvider"))


def _check_gpu(request: DeviceRequest, provider: str, available: Sequence[str], gpus: int) -> None:
    """The errors of an explicit ``cuda`` or ``tensorrt`` request that cannot be served."""
    if provider not in available:
        have = ", ".join(_short(name) for name in available) or "none"
        raise LivecamError(f"device {request} needs ONNX Runtime's {_short(provider)} provider, which this onnxruntime "
                           f"lacks (it has: {have}); replace onnxruntime with onnxruntime-gpu (pip uninstall "
                           f"onnxruntime && pip install onnxruntime-gpu), or use device cpu")
    if gpus <= 0:
        raise LivecamError(f"device {request} needs an NVIDIA GPU, but the CUDA driver reports none; check the driver "
                           f"(nvidia-smi) and CUDA_VISIBLE_DEVICES, or use device cpu")
    if request.index >= gpus:
        plural = "" if gpus == 1 else "s"
        raise LivecamError(f"there is no cuda:{request.index}: the CUDA driver reports {gpus} GPU{plural}, cuda:0 to "
                           f"cuda:{gpus - 1}; pick one of those, or use device cpu")


def _tensorrt_options(device_id: int, cache_dir: Path, fp16: bool, int8: bool = False) -> dict[str, str]:
    folder = str(cache_dir / "trt")
    return {
        "device_id": str(device_id),
        "trt_fp16_enable": "True" if fp16 else "False",
        # a QDQ graph's own scales decide where TensorRT runs int8 (explicit quantization: no calibration table)
        "trt_int8_enable": "True" if int8 else "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": folder,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": folder,
    }


def plan_providers(request: DeviceRequest, available: Sequence[str], gpus: int, cache_dir: Path,
                   fp16: bool = True, int8: bool = False) -> list[tuple[str, dict[str, str]]]:
    """ONNX Runtime's ``providers`` list for ``request``, as (name, options) pairs, best first, the CPU last.

    ``available`` is ``onnxruntime.get_available_providers()`` and ``gpus`` is :func:`cuda_device_count`;
    this function only decides (it touches neither ONNX Runtime nor the disk). ``auto`` takes TensorRT, then
    CUDA, when the provider is there and the driver reports a GPU, and falls back to the CPU quietly; an
    explicit ``cuda`` or ``tensorrt`` that cannot be served raises :class:`LivecamError`.
    ``cache_dir / "trt"`` holds TensorRT's engines and timing cache; ``fp16`` lets TensorRT run layers in fp16;
    ``int8``, a QDQ graph, its int8 path.
    """
    cpu: tuple[str, dict[str, str]] = (CPU, {})
    if request.kind == "cpu":
        return [cpu]
    if request.kind == "auto":
        plan: list[tuple[str, dict[str, str]]] = []
        if gpus > 0 and TENSORRT in available:
            plan.append((TENSORRT, _tensorrt_options(0, cache_dir, fp16, int8)))
        if gpus > 0 and CUDA in available:
            plan.append((CUDA, {"device_id": "0"}))
        return [*plan, cpu]
    if request.kind == "cuda":
        _check_gpu(request, CUDA, available, gpus)
        return [(CUDA, {"device_id": str(request.index)}), cpu]
    if request.kind == "tensorrt":
        _check_gpu(request, TENSORRT, available, gpus)
        plan = [(TENSORRT, _tensorrt_options(request.index, cache_dir, fp16, int8))]
        if CUDA in available:  # the nodes TensorRT cannot run
            plan.append((CUDA, {"device_id": str(request.index)}))
        return [*plan, cpu]
    raise LivecamError(f"unknown device kind {request.kind!r} for ONNX Runtime; use {DEVICE_FORMS}")


_preloaded = False


def _preload_gpu_libraries(ort: Any) -> None:
    """``onnxruntime.preload_dlls()``, once: it loads CUDA and cuDNN from NVIDIA's pip wheels when they are there.

    It reports what it cannot find with ``print`` (and ``warnings``); that goes to the debug log instead.
    CPU builds return at once, and versions before 1.21 don't have it.
    """
    global _preloaded
    preload = getattr(ort, "preload_dlls", None)
    if _preloaded or preload is None:
        return
    _preloaded = True
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            preload()
    except Exception as exc:  # noqa: BLE001 - a failed preload only means: the provider finds its libraries itself
        log.debug("onnxruntime.preload_dlls() failed: %s: %s", type(exc).__name__, exc)
    if out.getvalue().strip():
        log.debug("onnxruntime.preload_dlls(): %s", " | ".join(out.getvalue().split("\n")).strip(" |"))


def _first_line(exc: BaseException) -> str:
    """The first line of an ONNX Runtime error, without its ``[ONNXRuntimeError] : 7 : `` prefix."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return re.sub(r"^\[ONNXRuntimeError\]\s*:\s*\d+\s*:\s*", "", text)


def _failed_load(provider: str, request: DeviceRequest, reason: str | None = None) -> str:
    why = f": {reason}" if reason else ""
    if provider == TENSORRT:
        return (f"the TensorRT provider failed to load for device {request} (its TensorRT libraries are missing, or "
                f"not the version this onnxruntime-gpu was built for?{why}); install the matching TensorRT, or use "
                f"device cuda or cpu")
    return (f"the CUDA provider failed to load for device {request} (its CUDA or cuDNN libraries are missing?{why}); "
            f"install the versions this onnxruntime-gpu was built for (pip install 'onnxruntime-gpu[cuda,cudnn]'), "
            f"or use device cpu")


def pruned_graph(path: Path, outputs: Sequence[str]) -> bytes | None:
    """The graph at ``path`` cut down to what ``outputs`` need (``onnx.utils.Extractor``), serialized; None when it
    cannot be cut (a name it lacks, external data over protobuf's 2 GB), and the whole graph then runs.

    ONNX Runtime runs every node of a graph on each call, whichever outputs are fetched (measured: a graph of
    four methods costs as much fetching one method's maps as fetching all), so a graph that holds several methods
    is opened once per method, each with its own output only.
    """
    import onnx
    import onnx.checker
    import onnx.utils

    try:
        model = onnx.load(str(path))
        inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        cut = onnx.utils.Extractor(model).extract_model(inputs, list(outputs))
        cut.metadata_props.extend(model.metadata_props)  # the extractor keeps only the graph
        pruned: bytes = cut.SerializeToString()
        return pruned
    except (ValueError, KeyError, OSError, onnx.checker.ValidationError) as exc:
        log.warning("%s is run whole, every method it holds on each frame: it could not be cut to %s (%s: %s)",
                    path.name, ", ".join(outputs), type(exc).__name__, exc)
        return None


@dataclass
class _Bound:
    """One input shape's device buffer under IO binding, and the binding that reads from it."""

    value: Any  # onnxruntime.OrtValue
    binding: Any  # onnxruntime.IOBinding
    outputs: tuple[str, ...] = ()


class RuntimeSession:
    """An ONNX Runtime session on the requested device, and ``run`` over NumPy arrays.

    ``device`` is ``auto`` (TensorRT, then CUDA, when present, else the CPU), ``cpu``, ``cuda[:N]`` or
    ``tensorrt[:N]``. ``threads`` sets ONNX Runtime's intra-op threads (default: its own choice);
    ``spinning`` lets them spin between runs, which costs CPU time that other work in the process could use.
    ``cache_dir`` holds TensorRT's engine cache under ``trt/`` (default: the model's folder). ``io_binding``
    keeps the input on the provider's device between runs; it is on by default on the GPU providers, and
    ``True`` forces it on the CPU too. ``fp16`` lets TensorRT build fp16 engines; ``int8`` (a QDQ graph from
    ``livecam export --precision int8``) its int8 ones. ``outputs`` loads only the part of the graph those
    outputs need (:func:`pruned_graph`): ONNX Runtime computes every output of a graph on each run, fetched or not.

    ``run`` with IO binding reuses one buffer per input shape, so one session must not be run from two threads
    at once.
    """

    def __init__(self, path: Path | str, device: str | DeviceRequest = "auto", threads: int | None = None,
                 cache_dir: Path | None = None, io_binding: bool | None = None, spinning: bool = False,
                 fp16: bool = True, int8: bool = False, outputs: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        self._ort = ort
        self.path = Path(path)
        self.request = device if isinstance(device, DeviceRequest) else parse_device(device)
        self.cache_dir = Path(cache_dir) if cache_dir is not None else self.path.parent
        self.fp16 = fp16
        self.int8 = int8
        if threads is not None and threads < 0:
            raise LivecamError(f"threads must be 0 (ONNX Runtime's choice) or more, not {threads}")
        if not self.path.is_file():
            raise LivecamError(f"there is no ONNX model at {self.path}; export one with 'livecam export'")
        self._model: bytes | None = pruned_graph(self.path, outputs) if outputs is not None else None

        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # ONNX Runtime's threads spin after each run by default, taking the cores from whatever the process
        # does between runs (decoding, drawing): off unless asked for
        options.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")

        plan = plan_providers(self.request, ort.get_available_providers(), cuda_device_count(), self.cache_dir, fp16,
                              int8)
        self.plan = plan
        if plan[0][0] in GPU_PROVIDERS:
            _preload_gpu_libraries(ort)
        if any(name == TENSORRT for name, _ in plan):
            with contextlib.suppress(OSError):
                (self.cache_dir / "trt").mkdir(parents=True, exist_ok=True)

        self.session, fell_back = self._create(options, plan)
        if not fell_back:
            self._check_providers(plan)

        used = self.session.get_providers()
        self.provider: str = used[0]
        planned = dict(plan)
        self.device_id = int(planned.get(self.provider, {}).get("device_id", 0))
        inputs = self.session.get_inputs()
        if len(inputs) != 1:
            raise GraphError(f"{self.path} takes {len(inputs)} inputs, but livecam's graphs take one (the image "
                               f"batch); export it with 'livecam export'")
        self.input_name: str = inputs[0].name
        self.input_type: str = inputs[0].type
        self.input_shape: list[int | str | None] = list(inputs[0].shape)  # a name or None where it varies
        self.output_names: list[str] = [output.name for output in self.session.get_outputs()]
        self.output_shapes: dict[str, list[int | str | None]] = {o.name: list(o.shape)
                                                                  for o in self.session.get_outputs()}
        self.metadata: dict[str, str] = dict(self.session.get_modelmeta().custom_metadata_map)
        self._input_dtype = _NUMPY_TYPES.get(self.input_type)
        self._device = "cuda" if self.provider in GPU_PROVIDERS else "cpu"
        self.io_binding = self.provider in GPU_PROVIDERS if io_binding is None else io_binding
        self._bound: dict[tuple[tuple[int, ...], str], _Bound] = {}
        log.info("%s runs %s", self.description, self.path.name)

    def _open(self, options: Any, providers: list[tuple[str, dict[str, str]]]) -> Any:
        # ONNX Runtime warns (warnings.warn) about a provider it does not list; _check_providers says it better
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            source = self._model if self._model is not None else str(self.path)
            session = self._ort.InferenceSession(source, options, providers=providers)
        for warning in caught:
            log.debug("onnxruntime: %s", warning.message)
        return session

    def _create(self, options: Any, plan: list[tuple[str, dict[str, str]]]) -> tuple[Any, bool]:
        """The session, and whether it fell back to the CPU because creating it with a GPU provider raised."""
        try:
            return self._open(options, plan), False
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's errors have no common base class
            error = exc
        if plan[0][0] not in GPU_PROVIDERS:
            raise GraphError(f"could not load {self.path} as an ONNX model ({_first_line(error)}); "
                               f"export one with 'livecam export'") from None
        # was it the model or the GPU provider? The CPU alone tells.
        try:
            session = self._open(options, [(CPU, {})])
        except Exception as exc:  # noqa: BLE001
            raise GraphError(f"could not load {self.path} as an ONNX model ({_first_line(exc)}); "
                               f"export one with 'livecam export'") from None
        if self.request.kind != "auto":
            raise LivecamError(_failed_load(plan[0][0], self.request, _first_line(error))) from None
        log.warning("ONNX Runtime's %s provider failed to load (%s); running on the CPU",
                    _short(plan[0][0]), _first_line(error))
        return session, True

    def _check_providers(self, plan: list[tuple[str, dict[str, str]]]) -> None:
        """ONNX Runtime falls back to the CPU silently when a GPU provider fails to load: say so."""
        wanted, used = plan[0][0], self.session.get_providers()
        if wanted in used:
            return
        if self.request.kind != "auto":
            raise LivecamError(_failed_load(wanted, self.request))
        log.warning("ONNX Runtime's %s provider failed to load (its libraries are missing?); running on %s",
                    _short(wanted), _short(used[0]) if used else "the CPU")

    @property
    def description(self) -> str:
        """What runs, for people: "ONNX Runtime CPU", "ONNX Runtime CUDA (cuda:0)", ..."""
        if self.provider == TENSORRT:
            precision = "int8" if self.int8 else "fp16" if self.fp16 else "fp32"
            return f"ONNX Runtime TensorRT (cuda:{self.device_id}, {precision}, engine cache {self.cache_dir / 'trt'})"
        if self.provider == CUDA:
            return f"ONNX Runtime CUDA (cuda:{self.device_id})"
        return f"ONNX Runtime {_short(self.provider)}"

    def run(self, x: np.ndarray, outputs: Sequence[str] | None = None) -> list[np.ndarray]:
        """The graph's outputs (all, or those named in ``outputs``, in that order) for the batch ``x``, on the CPU."""
        names = tuple(self.output_names if outputs is None else outputs)
        unknown = [name for name in names if name not in self.output_names]
        if unknown:
            raise LivecamError(f"{self.path.name} has no output {unknown[0]!r}; its outputs are "
                               f"{', '.join(self.output_names)}")
        x = np.ascontiguousarray(x)
        if self._input_dtype is not None and x.dtype != self._input_dtype:
            raise LivecamError(f"{self.path.name} takes {self._input_dtype} input ({self.input_type}), not "
                               f"{x.dtype}; convert the batch first")
        if not self.io_binding:
            results: list[np.ndarray] = self.session.run(list(names), {self.input_name: x})
            return results
        return self._run_bound(x, names)

    def _run_bound(self, x: np.ndarray, names: tuple[str, ...]) -> list[np.ndarray]:
        key = (tuple(x.shape), x.dtype.str)
        bound = self._bound.get(key)
        if bound is None:
            # on the CPU the OrtValue would share the caller's memory, and update_inplace would then write into
            # the caller's first array: give it a buffer of its own
            data = x.copy() if self._device == "cpu" else x
            value = self._ort.OrtValue.ortvalue_from_numpy(data, self._device, self.device_id)
            binding = self.session.io_binding()
            binding.bind_ortvalue_input(self.input_name, value)
            if len(self._bound) >= MAX_BOUND_SHAPES:
                del self._bound[next(iter(self._bound))]  # the oldest shape
            bound = self._bound[key] = _Bound(value, binding)
        else:
            bound.value.update_inplace(x)
        if bound.outputs != names:
            bound.binding.clear_binding_outputs()
            for name in names:
                bound.binding.bind_output(name, self._device, self.device_id)
            bound.outputs = names
        self.session.run_with_iobinding(bound.binding)
        return list(bound.binding.copy_outputs_to_cpu())
