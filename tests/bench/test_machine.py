"""livecam bench's machine: the device and the versions a report records, without PyTorch."""

from __future__ import annotations

import livecam
from livecam.bench import machine_info


def test_machine_info_names_the_device_and_the_versions() -> None:
    info = machine_info()
    assert info["device"].startswith("CPU ") and info["cpu_count"] >= 1 and info["gpus"] == []
    assert info["versions"]["livecam"] == livecam.__version__
    assert info["versions"]["onnxruntime"] and info["versions"]["torch"]
