"""Export for deployment: the whole explanation as one ONNX graph, or the model with its raw activation.

- :mod:`livecam.export.explainer_graph`: logits, classes, scores and maps in one
  graph that ONNX Runtime runs without PyTorch (livecam's own deployment format);
- :mod:`livecam.export.activation`: the model with its target activation as a
  second output, for callers who compute their own maps.

Both need PyTorch.
"""

from livecam.export.activation import export_onnx
from livecam.export.explainer_graph import CLOSED_FORM, EIGEN, EXPORTABLE, export_explainer, exportable

__all__ = ["CLOSED_FORM", "EIGEN", "EXPORTABLE", "export_explainer", "export_onnx", "exportable"]
