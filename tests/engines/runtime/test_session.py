"""The torch-free ONNX Runtime session: which provider is asked for, which one runs, and what comes back.

There is no GPU here, so the GPU side is tested where it can be without one: the provider plan is a pure
function, and the check of what actually runs is driven by a CPU-only onnxruntime made to believe it has
the CUDA provider (it then falls back to the CPU, exactly as onnxruntime-gpu does when CUDA fails to load).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from livecam.errors import LivecamError
from livecam.engines.runtime import session as rs
from livecam.engines.runtime.session import (
    CPU,
    CUDA,
    TENSORRT,
    DeviceRequest,
    RuntimeSession,
    cuda_device_count,
    parse_device,
    plan_providers,
)

W = (np.arange(12, dtype=np.float32).reshape(3, 4) - 5.5) / 3  # mixed signs, so that the ReLU matters
CACHE = Path("/cache")
ALL = [TENSORRT, CUDA, CPU]


def save_model(path: Path, metadata: dict[str, str] | None = None, input_type: int = TensorProto.FLOAT) -> Path:
    """x (N, 3) -> y = x @ W -> r = relu(y); both y and r are outputs, N is dynamic."""
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Relu", ["y"], ["r"])]
    if input_type != TensorProto.FLOAT:
        nodes[0].input[0] = "xf"
        nodes.insert(0, helper.make_node("Cast", ["x"], ["xf"], to=TensorProto.FLOAT))
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", input_type, ["N", 3])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4]),
                               helper.make_tensor_value_info("r", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(W, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9  # what every onnxruntime since 1.16 reads
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def reference(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    y = x.astype(np.float64) @ W.astype(np.float64)
    return y, np.maximum(y, 0)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return save_model(tmp_path / "tiny.onnx", {"livecam.method": "gradcam", "classes": "cat,dog"})


@pytest.fixture
def fake_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    """A machine with one GPU, as the driver count tells, whose CUDA provider cannot really load.

    With the CPU build of onnxruntime the CUDA provider is listed but missing; with the GPU build (which
    pyproject.toml installs on Linux x86_64) it is there, but this machine has no GPU and no CUDA libraries.
    """
    real = onnxruntime.get_available_providers()
    listed = [CUDA, *(p for p in real if p not in (CUDA, TENSORRT))]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: listed)
    monkeypatch.setattr(rs, "cuda_device_count", lambda: 1)


# --- parse_device -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "kind", "index"), [
    ("auto", "auto", 0), ("cpu", "cpu", 0), ("cuda", "cuda", 0), ("cuda:0", "cuda", 0), ("cuda:3", "cuda", 3),
    ("tensorrt", "tensorrt", 0), ("tensorrt:1", "tensorrt", 1), (" CUDA:2 ", "cuda", 2), ("TensorRT", "tensorrt", 0),
    ("AUTO", "auto", 0),
])
def test_parse_device_accepts_the_documented_forms(text: str, kind: str, index: int) -> None:
    assert parse_device(text) == DeviceRequest(kind, index)


@pytest.mark.parametrize("text", ["", "gpu", "cuda:", "cuda:-1", "cuda:x", "cuda0", "cpu:0", "auto:1", "trt", "mps",
                                  "cuda:1:2", "tensorrt:0.5"])
def test_parse_device_refuses_anything_else_in_one_line(text: str) -> None:
    with pytest.raises(LivecamError) as error:
        parse_device(text)
    message = str(error.value)
    assert "\n" not in message and "cuda:N" in message and "tensorrt:N" in message and "auto" in message


# --- cuda_device_count --------------------------------------------------------------------------------------


class FakeDriver:
    def __init__(self, init: int, count: int, status: int = 0) -> None:
        self.init, self.count, self.status = init, count, status

    def cuInit(self, flags: int) -> int:  # noqa: N802 - the driver's name
        assert flags == 0
        return self.init

    def cuDeviceGetCount(self, pointer) -> int:  # noqa: N802, ANN001
        pointer._obj.value = self.count
        return self.status


@pytest.mark.parametrize(("driver", "expected"), [
    (FakeDriver(0, 2), 2), (FakeDriver(100, 2), 0), (FakeDriver(0, 3, status=999), 0), (OSError("no libcuda"), 0),
])
def test_cuda_device_count_asks_the_driver_and_counts_failures_as_no_gpu(monkeypatch: pytest.MonkeyPatch, driver,
                                                                          expected: int) -> None:
    def cdll(name: str):
        assert name in ("libcuda.so.1", "libcuda.so", "nvcuda.dll")
        if isinstance(driver, Exception):
            raise driver
        return driver

    monkeypatch.setattr(rs.ctypes, "CDLL", cdll)
    monkeypatch.setattr(rs.sys, "platform", "linux")
    cuda_device_count.cache_clear()
    try:
        assert cuda_device_count() == expected
    finally:
        cuda_device_count.cache_clear()


def test_cuda_device_count_is_zero_on_this_gpu_less_machine() -> None:
    cuda_device_count.cache_clear()
    assert cuda_device_count() == 0
    assert cuda_device_count.cache_info().currsize == 1  # cached: the driver is asked once


# --- plan_providers -----------------------------------------------------------------------------------------


def names(plan: list[tuple[str, dict[str, str]]]) -> list[str]:
    return [name for name, _ in plan]


@pytest.mark.parametrize(("available", "gpus", "expected"), [
    (ALL, 1, ALL),
    (ALL, 2, ALL),
    (ALL, 0, [CPU]),  # onnxruntime-gpu lists its GPU providers on a machine without a GPU
    ([CUDA, CPU], 1, [CUDA, CPU]),
    ([CUDA, CPU], 0, [CPU]),
    ([TENSORRT, CPU], 1, [TENSORRT, CPU]),
    ([CPU], 2, [CPU]),
    (["AzureExecutionProvider", CPU], 1, [CPU]),
])
def test_auto_takes_tensorrt_then_cuda_only_with_a_gpu_and_the_cpu_last(available: list[str], gpus: int,
                                                                         expected: list[str]) -> None:
    plan = plan_providers(DeviceRequest("auto"), available, gpus, CACHE)
    assert names(plan) == expected
    for _, options in plan:
        assert options.get("device_id", "0") == "0"
        assert all(isinstance(value, str) for value in options.values())


@pytest.mark.parametrize("available", [ALL, [CPU]])
@pytest.mark.parametrize("gpus", [0, 1, 2])
def test_cpu_is_the_cpu_alone(available: list[str], gpus: int) -> None:
    assert plan_providers(DeviceRequest("cpu"), available, gpus, CACHE) == [(CPU, {})]


@pytest.mark.parametrize(("index", "gpus"), [(0, 1), (0, 2), (1, 2)])
def test_cuda_names_its_gpu_then_the_cpu(index: int, gpus: int) -> None:
    plan = plan_providers(DeviceRequest("cuda", index), ALL, gpus, CACHE)
    assert plan == [(CUDA, {"device_id": str(index)}), (CPU, {})]


@pytest.mark.parametrize(("fp16", "int8"), [(True, False), (False, False), (True, True)])
def test_tensorrt_then_cuda_then_cpu_with_a_persistent_engine_cache(fp16: bool, int8: bool) -> None:
    plan = plan_providers(DeviceRequest("tensorrt", 1), ALL, 2, CACHE, fp16=fp16, int8=int8)
    assert names(plan) == [TENSORRT, CUDA, CPU]
    assert plan[0][1] == {
        "device_id": "1",
        "trt_fp16_enable": "True" if fp16 else "False",
        "trt_int8_enable": "True" if int8 else "False",
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": str(CACHE / "trt"),
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": str(CACHE / "trt"),
    }
    assert plan[1][1] == {"device_id": "1"}  # the nodes TensorRT cannot run, on the same GPU
    assert plan_providers(DeviceRequest("auto"), ALL, 1, Path("/elsewhere"), fp16=fp16)[0][1]["trt_fp16_enable"] \
        == ("True" if fp16 else "False")


@pytest.mark.parametrize(("request_", "available", "gpus", "words"), [
    (DeviceRequest("cuda"), [CPU], 1, ["CUDA provider", "onnxruntime-gpu", "device cpu"]),
    (DeviceRequest("cuda"), ["AzureExecutionProvider", CPU], 2, ["CUDA provider", "Azure, CPU", "onnxruntime-gpu"]),
    (DeviceRequest("cuda"), ALL, 0, ["needs an NVIDIA GPU", "reports none", "device cpu"]),
    (DeviceRequest("cuda", 3), ALL, 1, ["there is no cuda:3: the CUDA driver reports 1 GPU, cuda:0 to cuda:0"]),
    (DeviceRequest("cuda", 2), ALL, 2, ["there is no cuda:2: the CUDA driver reports 2 GPUs, cuda:0 to cuda:1"]),
    (DeviceRequest("tensorrt"), [CUDA, CPU], 1, ["TensorRT provider", "onnxruntime-gpu", "device cpu"]),
    (DeviceRequest("tensorrt"), ALL, 0, ["needs an NVIDIA GPU", "device cpu"]),
    (DeviceRequest("tensorrt", 1), ALL, 1, ["there is no cuda:1", "1 GPU"]),
])
def test_explicit_gpu_requests_that_cannot_be_served_say_why_in_one_line(request_: DeviceRequest,
                                                                           available: list[str], gpus: int,
                                                                           words: list[str]) -> None:
    with pytest.raises(LivecamError) as error:
        plan_providers(request_, available, gpus, CACHE)
    message = str(error.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_plan_providers_refuses_an_unknown_kind() -> None:
    with pytest.raises(LivecamError, match="tensorrt:N"):
        plan_providers(DeviceRequest("vulkan"), ALL, 1, CACHE)


# --- RuntimeSession on the CPU ------------------------------------------------------------------------------


def test_the_cpu_session_matches_numpy_and_reads_the_graph(model: Path) -> None:
    runtime = RuntimeSession(model, "cpu", threads=1)
    assert runtime.provider == CPU and runtime.session.get_providers() == [CPU]
    assert runtime.request == DeviceRequest("cpu") and runtime.device_id == 0
    assert runtime.input_name == "x" and runtime.input_type == "tensor(float)"
    assert runtime.output_names == ["y", "r"]
    assert runtime.metadata == {"livecam.method": "gradcam", "classes": "cat,dog"}
    assert runtime.description == "ONNX Runtime CPU"
    assert runtime.io_binding is False  # default off on the CPU
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    y, r = runtime.run(x)
    ref_y, ref_r = reference(x)
    assert y.dtype == np.float32 and y.shape == (5, 4)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r, ref_r, rtol=1e-5, atol=1e-5)
    assert (r == 0).any() and (r > 0).any()


def test_outputs_are_picked_by_name_in_the_order_asked(model: Path) -> None:
    runtime = RuntimeSession(model, "cpu")
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    ref_y, ref_r = reference(x)
    (r,) = runtime.run(x, ["r"])
    np.testing.assert_allclose(r, ref_r, rtol=1e-5, atol=1e-5)
    r, y = runtime.run(x, ["r", "y"])
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r, ref_r, rtol=1e-5, atol=1e-5)
    with pytest.raises(LivecamError, match="no output 'logits'; its outputs are y, r"):
        runtime.run(x, ["logits"])


def test_a_non_contiguous_batch_is_made_contiguous(model: Path) -> None:
    runtime = RuntimeSession(model, "cpu")
    wide = np.random.default_rng(2).standard_normal((4, 6)).astype(np.float32)
    x = wide[:, ::2]
    assert not x.flags.c_contiguous
    np.testing.assert_allclose(runtime.run(x, ["y"])[0], reference(x)[0], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("io_binding", [False, True])
def test_a_batch_of_the_wrong_dtype_is_refused(model: Path, io_binding: bool) -> None:
    runtime = RuntimeSession(model, "cpu", io_binding=io_binding)
    with pytest.raises(LivecamError, match="takes float32 input"):
        runtime.run(np.zeros((2, 3), np.float64))


def test_io_binding_on_the_cpu_gives_the_plain_results_over_many_calls(model: Path) -> None:
    plain, bound = RuntimeSession(model, "cpu"), RuntimeSession(model, "cpu", io_binding=True)
    assert bound.io_binding and not plain.io_binding
    rng = np.random.default_rng(3)
    kept = []
    for step in range(8):
        batch = (2, 5)[step % 2]  # two shapes, alternating: two input buffers, each reused
        x = rng.standard_normal((batch, 3)).astype(np.float32)
        before = x.copy()
        outputs = None if step % 3 else ["r"]  # the outputs bound change between calls too
        got, want = bound.run(x, outputs), plain.run(x, outputs)
        assert len(got) == len(want) == (1 if outputs else 2)
        for a, b in zip(got, want, strict=True):
            assert a.shape == b.shape and a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(x, before)  # the caller's array is never written
        kept.append((x, got))
    assert len(bound._bound) == 2  # one input buffer per shape, not one per call
    # results handed out earlier are copies: later runs did not overwrite them
    for x, got in kept:
        np.testing.assert_allclose(got[-1], reference(x)[1], rtol=1e-5, atol=1e-5)


def test_io_binding_reuses_the_input_buffer_instead_of_making_a_new_one(model: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    runtime = RuntimeSession(model, "cpu", io_binding=True)
    made = []
    real = onnxruntime.OrtValue.ortvalue_from_numpy
    monkeypatch.setattr(onnxruntime.OrtValue, "ortvalue_from_numpy",
                        staticmethod(lambda *args, **kwargs: made.append(args[1:]) or real(*args, **kwargs)))
    first = np.ones((3, 3), np.float32)
    runtime.run(first)
    for value in range(2, 6):
        x = np.full((3, 3), value, np.float32)
        np.testing.assert_allclose(runtime.run(x, ["y"])[0], reference(x)[0], rtol=1e-5)
    assert made == [("cpu", 0)]
    np.testing.assert_array_equal(first, 1)  # update_inplace wrote into the session's own copy, not the caller's


def test_io_binding_keeps_a_few_shapes_only(model: Path) -> None:
    runtime = RuntimeSession(model, "cpu", io_binding=True)
    for batch in range(1, rs.MAX_BOUND_SHAPES + 4):
        x = np.full((batch, 3), batch, np.float32)
        np.testing.assert_allclose(runtime.run(x, ["y"])[0], reference(x)[0], rtol=1e-5)
    assert len(runtime._bound) == rs.MAX_BOUND_SHAPES


def test_a_uint8_graph_reports_its_input_type(tmp_path: Path) -> None:
    runtime = RuntimeSession(save_model(tmp_path / "u8.onnx", input_type=TensorProto.UINT8), "cpu", io_binding=True)
    assert runtime.input_type == "tensor(uint8)" and runtime.metadata == {}
    x = np.array([[0, 1, 2], [255, 3, 7]], np.uint8)
    np.testing.assert_allclose(runtime.run(x, ["y"])[0], reference(x)[0], rtol=1e-5)


def test_auto_on_a_cpu_only_onnxruntime_is_the_cpu_without_a_warning(model: Path, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="livecam.engines.runtime.session"):
        runtime = RuntimeSession(model)
    assert runtime.request == DeviceRequest("auto") and runtime.provider == CPU
    assert not caplog.records


@pytest.mark.parametrize(("contents", "words"), [
    (None, "there is no ONNX model at"),
    (b"not a protobuf\x00\xff", "could not load"),
    (b"", "could not load"),
])
def test_a_missing_or_broken_model_file_is_one_line(tmp_path: Path, contents: bytes | None, words: str) -> None:
    path = tmp_path / "broken.onnx"
    if contents is not None:
        path.write_bytes(contents)
    with pytest.raises(LivecamError) as error:
        RuntimeSession(path, "cpu")
    message = str(error.value)
    assert "\n" not in message and words in message and str(path) in message and "livecam export" in message


def test_a_bad_device_or_thread_count_is_refused_before_anything_loads(model: Path) -> None:
    with pytest.raises(LivecamError, match="unknown device 'gpu'"):
        RuntimeSession(model, "gpu")
    with pytest.raises(LivecamError, match="threads"):
        RuntimeSession(model, "cpu", threads=-1)


# --- what actually runs: ONNX Runtime's silent fallback to the CPU -----------------------------------------


def test_explicit_cuda_that_falls_back_to_the_cpu_is_an_error(model: Path, fake_cuda: None) -> None:
    # the real, CPU-only onnxruntime cannot run the CUDA provider: it creates a CPU session without a word
    with pytest.raises(LivecamError) as error:
        RuntimeSession(model, "cuda")
    message = str(error.value)
    assert "\n" not in message
    assert "CUDA provider failed to load" in message and "cuDNN" in message and "device cpu" in message


def test_auto_that_falls_back_to_the_cpu_warns_and_runs(model: Path, fake_cuda: None, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="livecam.engines.runtime.session"):
        runtime = RuntimeSession(model, "auto")
    assert [name for name, _ in runtime.plan] == [CUDA, CPU]  # it did ask for CUDA
    assert runtime.provider == CPU and runtime.description == "ONNX Runtime CPU"
    assert runtime.io_binding is False  # the CPU is what runs, so no device buffers
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "CUDA provider failed to load" in warnings[0].getMessage()
    x = np.ones((2, 3), np.float32)
    np.testing.assert_allclose(runtime.run(x)[1], reference(x)[1], rtol=1e-5)


def test_auto_with_tensorrt_listed_makes_its_cache_folder_and_warns_about_tensorrt(
        model: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog) -> None:
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: [TENSORRT, CUDA, CPU])
    monkeypatch.setattr(rs, "cuda_device_count", lambda: 2)
    with caplog.at_level(logging.WARNING, logger="livecam.engines.runtime.session"):
        runtime = RuntimeSession(model, "auto", cache_dir=tmp_path / "cache")
    assert runtime.provider == CPU
    assert (tmp_path / "cache" / "trt").is_dir()
    assert runtime.plan[0] == (TENSORRT, rs._tensorrt_options(0, tmp_path / "cache", True))
    assert any("TensorRT provider failed to load" in r.getMessage() for r in caplog.records)
    with pytest.raises(LivecamError, match="TensorRT provider failed to load.*use device cuda or cpu"):
        RuntimeSession(model, "tensorrt:1", cache_dir=tmp_path / "cache")


class RaisingOnGpu:
    """An InferenceSession that raises when asked for a GPU provider, as some onnxruntime builds do."""

    def __init__(self, real: type) -> None:
        self.real, self.calls = real, []

    def __call__(self, path: str, options, providers):  # noqa: ANN001
        self.calls.append([name for name, _ in providers])
        if any(name in (CUDA, TENSORRT) for name, _ in providers):
            raise RuntimeError("[ONNXRuntimeError] : 1 : FAIL : CUDA failure 100: no CUDA-capable device\nmore")
        return self.real(path, options, providers=providers)


def test_a_gpu_provider_that_raises_counts_as_a_failed_load(model: Path, fake_cuda: None,
                                                            monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    fake = RaisingOnGpu(onnxruntime.InferenceSession)
    monkeypatch.setattr(onnxruntime, "InferenceSession", fake)
    with pytest.raises(LivecamError) as error:
        RuntimeSession(model, "cuda")
    message = str(error.value)
    assert "\n" not in message and "CUDA provider failed to load" in message
    assert "CUDA failure 100" in message and "ONNXRuntimeError" not in message
    with caplog.at_level(logging.WARNING, logger="livecam.engines.runtime.session"):
        runtime = RuntimeSession(model, "auto")
    assert runtime.provider == CPU and fake.calls[-2:] == [[CUDA, CPU], [CPU]]
    assert any("CUDA provider failed to load" in r.getMessage() for r in caplog.records)
    # a broken model on a GPU plan is still called a broken model, not a provider problem
    broken = model.with_name("broken.onnx")
    broken.write_bytes(b"nonsense")
    with pytest.raises(LivecamError, match="could not load .* as an ONNX model"):
        RuntimeSession(broken, "cuda")


def test_the_gpu_libraries_are_preloaded_once_and_quietly(model: Path, fake_cuda: None,
                                                          monkeypatch: pytest.MonkeyPatch, capfd) -> None:
    calls = []

    def noisy_preload() -> None:
        calls.append(1)
        print("Failed to load libcudnn.so.9: not found")
        raise OSError("no such library")

    monkeypatch.setattr(onnxruntime, "preload_dlls", noisy_preload, raising=False)
    monkeypatch.setattr(rs, "_preloaded", False)
    RuntimeSession(model, "cpu")
    assert calls == []  # the CPU needs none
    RuntimeSession(model, "auto")
    RuntimeSession(model, "auto")
    assert calls == [1]
    assert "libcudnn" not in capfd.readouterr().out


# --- no torch -----------------------------------------------------------------------------------------------


def test_the_runtime_session_imports_neither_torch_nor_onnxruntime_at_import() -> None:
    # livecam/__init__.py still imports the PyTorch engine eagerly, so the package is stood in for by a bare
    # namespace: what is checked is this module and what it imports (livecam.errors, numpy), in a fresh process
    root = Path(__file__).resolve().parents[3]
    code = (
        "import sys, types\n"
        f"package = types.ModuleType('livecam'); package.__path__ = [{str(root / 'livecam')!r}]\n"
        "sys.modules['livecam'] = package\n"
        "import livecam.engines.runtime, livecam.engines.runtime.session as s\n"
        "assert s.__file__.startswith(package.__path__[0]), s.__file__\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision', 'onnxruntime')))\n"
        "s.parse_device('cuda:1'); s.plan_providers(s.DeviceRequest('auto'), [], s.cuda_device_count(), s.Path('.'))\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'torchvision')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split("\n")[:2] == ["[]", "[]"]
