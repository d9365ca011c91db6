"""The PyTorch engine: the model with hooks and autograd, every method, and its device step.

- :mod:`~livecam.engines.pytorch.explainer`: hooks on the target layer and the map of one method;
- :mod:`~livecam.engines.pytorch.device_step`: preprocessing, forward, map and blend on the device;
- :mod:`~livecam.engines.pytorch.engine`: the engine the pipeline drives.
"""


def set_threads(threads: int) -> None:
    """Let PyTorch's CPU kernels use ``threads`` threads (PyTorch's own default is one per core)."""
    import torch

    torch.set_num_threads(threads)
