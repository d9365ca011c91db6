"""The ONNX Runtime engine: runs livecam's exported explainer graphs without PyTorch. Nothing in this package
imports torch, so an edge box or a Jetson can run an exported graph on the CPU, CUDA or TensorRT provider with
only NumPy and onnxruntime (or onnxruntime-gpu) installed."""
