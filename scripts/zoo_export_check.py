"""The zoo table's export column: each model exported (Grad-CAM, or Eigen-CAM where the head is not
GAP -> Linear) and run on ONNX Runtime against livecam's PyTorch path, with random weights.

    .venv/bin/python scripts/zoo_export_check.py resnet18 resnet50 mobilenet_v2 ...
"""
import sys
import tempfile
import time

import numpy as np
import onnxruntime as ort
import torch

import livecam
from livecam.errors import LivecamError
from livecam.export import export_explainer
from livecam.zoo.analysis import GAP_LINEAR

names = sys.argv[1:]
folder = tempfile.mkdtemp(prefix='livecam-zoo-')
for name in names:
    torch.manual_seed(0)
    m = livecam.load_model(name, weights="random")
    method = "gradcam" if m.head.kind == GAP_LINEAR else "eigencam"
    t = time.perf_counter()
    try:
        path = export_explainer(m, f"{folder}/{name}.onnx", method=method)
    except LivecamError as e:
        print(f"{name}: {method} refused/failed: {e}")
        continue
    secs = time.perf_counter() - t
    h, w = m.preprocess.size
    x = torch.randn(2, 3, h, w, generator=torch.Generator().manual_seed(1))
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    logits, classes, scores, cams = s.run(None, {"x": x.numpy()})
    with livecam.Explainer(m, method) as e:
        ref = e(x, upsample=False)
    same = np.array_equal(classes[:, 0], ref.classes.numpy())
    err = np.abs(cams[:, 0] - ref.cams.numpy()).max()
    corr = min(np.corrcoef(cams[i, 0].ravel(), ref.cams[i].numpy().ravel())[0, 1] for i in range(2))
    print(f"{name}: {method} export {secs:.1f} s, same class {same}, max map diff {err:.1e}, r {corr:.6f}", flush=True)
