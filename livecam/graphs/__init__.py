"""Explaining ONNX classifiers livecam did not export, and int8 graphs: ``onnx`` and ONNX Runtime, no PyTorch.

- :mod:`livecam.graphs.classifier` reads a third-party graph: its input, logits, head and feature map;
- :mod:`livecam.graphs.explain` writes the explanation into it, in livecam's file contract;
- :mod:`livecam.graphs.builder` the added nodes, for the graph's own opset;
- :mod:`livecam.graphs.third_party` the whole step, with the input's conventions and class names;
- :mod:`livecam.graphs.quantize` the model part in int8 (ONNX Runtime's static quantization), and its fidelity.
"""
