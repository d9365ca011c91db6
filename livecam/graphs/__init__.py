"""Explaining ONNX classifiers livecam did not export, and int8 graphs: ``onnx`` and ONNX Runtime, no PyTorch."""
