"""The machine a benchmark ran on, and the memory it used: what lets reports from different machines line up.

Read without PyTorch: the CPU from /proc, the GPU and driver from nvidia-smi, a
Jetson's board and power mode from the device tree and nvpmodel, and the versions
of what ran from the installed packages' metadata.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import os
import platform
import shutil
import subprocess
import time

import cv2
import numpy as np

from livecam import __version__
from livecam.bench.report import Jetson, Machine, Versions

def _read(path: str) -> str:
    try:
        with open(path, errors="replace") as f:
            return f.read().replace("\x00", "").strip()
    except OSError:
        return ""


def _command(*args: str) -> str:
    if shutil.which(args[0]) is None:
        return ""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def _version(*packages: str) -> str | None:
    for package in packages:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(package)
    return None


def versions() -> Versions:
    """The versions of livecam and of what it ran on (None: not installed)."""
    return {"livecam": __version__, "onnxruntime": _version("onnxruntime-gpu", "onnxruntime"),
            "torch": _version("torch"), "opencv": cv2.__version__, "numpy": np.__version__}


def machine_info() -> Machine:
    """The machine, without PyTorch: CPU, GPU and driver (nvidia-smi), Jetson model and power mode, versions."""
    cpuinfo = _read("/proc/cpuinfo")
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
               "") or platform.processor() or platform.machine()
    gpus = [line.split(", ") for line in _command("nvidia-smi", "--query-gpu=name,driver_version",
                                                  "--format=csv,noheader").splitlines() if line]
    board = _read("/proc/device-tree/model")
    jetson: Jetson | None = None
    if "jetson" in board.lower() or os.path.exists("/etc/nv_tegra_release"):
        mode = _command("nvpmodel", "-q")
        jetson = {"model": board, "l4t": _read("/etc/nv_tegra_release").splitlines()[0:1] or None,
                  "power_mode": " ".join(mode.split()) or None}
    gpu = gpus[0][0] if gpus else None
    device = f"{gpu} (driver {gpus[0][1]})" if gpus and len(gpus[0]) > 1 else gpu or f"CPU {cpu}"
    return {
        "device": jetson["model"] if jetson else device,
        "cpu": cpu, "cpu_count": os.cpu_count(), "gpus": [g[0] for g in gpus],
        "gpu_driver": gpus[0][1] if gpus and len(gpus[0]) > 1 else None, "jetson": jetson,
        "os": platform.platform(), "python": platform.python_version(), "date": time.strftime("%Y-%m-%d"),
        "versions": versions(),
    }


def rss_mb() -> float:
    """This process's resident memory in MB (Linux /proc; else the peak from getrusage)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
    except (OSError, ValueError, IndexError):
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3
