"""The annotate tests' fixtures (the shared helpers are in tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def graph(lite0_graph: Path) -> Path:
    """Lite0's Grad-CAM as one ONNX file: the subprocesses run it on ONNX Runtime without importing PyTorch."""
    return lite0_graph
