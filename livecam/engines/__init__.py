"""The engines: what turns a batch of frames into annotated frames, and which one runs.

- :mod:`livecam.engines.launch` chooses the engine for a run's options and starts it;
- :mod:`livecam.engines.runtime`: ONNX Runtime on an exported graph, no PyTorch;
- :mod:`livecam.engines.pytorch`: the model in PyTorch, with hooks and autograd.
"""
