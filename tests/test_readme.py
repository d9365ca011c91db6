"""The README's example with onnxruntime, NumPy and OpenCV alone works as printed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import cv2

from tests.conftest import CAT_CLASSES

README = Path(__file__).parents[1] / "README.md"


def test_the_onnxruntime_example_explains_a_photograph(lite0, chelsea_bgr, tmp_path: Path) -> None:
    from livecam.export import export_explainer

    text = README.read_text()
    block = re.search(r"<!-- example: onnxruntime alone -->\n```python\n(.*?)```", text, re.S)
    assert block, "the README lost its example"
    export_explainer(lite0, tmp_path / "lite0.onnx")
    cv2.imwrite(str(tmp_path / "cat.jpg"), chelsea_bgr)
    no_livecam = "import sys\nfor name in ('torch', 'livecam'):\n    sys.modules[name] = None\n"
    proc = subprocess.run([sys.executable, "-c", no_livecam + block.group(1)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    name, score = proc.stdout.strip().splitlines()[-1].rsplit(" ", 1)
    assert name in CAT_CLASSES and 0.3 < float(score) <= 1.0, proc.stdout
    picture = cv2.imread(str(tmp_path / "cat-gradcam.jpg"))
    assert picture is not None and picture.shape == chelsea_bgr.shape
