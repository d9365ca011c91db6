"""The model with its target activation as a second output, as an ONNX graph.

For users who compute their own maps from the raw activation outside PyTorch.
livecam's own deployment format is the explainer graph of :mod:`livecam.export`,
which holds the whole explanation.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from livecam.errors import LivecamError, option

OPSET = 18


class WithActivation(nn.Module):
    """``module`` returning (logits, the output of ``layer``) instead of the logits alone."""

    def __init__(self, module: nn.Module, layer: str) -> None:
        super().__init__()
        self.module = module
        self._activation: torch.Tensor | None = None
        module.get_submodule(layer).register_forward_hook(self._keep)

    def _keep(self, _module: nn.Module, _inputs: tuple[object, ...], output: torch.Tensor) -> torch.Tensor:
        self._activation = output
        return output.clone()  # in-place operations after the layer must not change what is returned

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.module(x)
        activation, self._activation = self._activation, None
        if activation is None:
            raise LivecamError(f"the target layer did not run in the forward pass; pick another with {option('layer')}")
        return logits, activation


def export_onnx(module: nn.Module, layer: str | None, path: Path, input_size: tuple[int, int] = (224, 224)) -> Path:
    """Write ``module`` (eval mode, fp32, on the CPU) with ``layer``'s activation as a second output; with
    ``layer`` None, the plain classifier (input ``x``, output ``logits``), as a third party would export it.

    The batch size is dynamic. The caller's module is not changed (a copy is exported).
    """
    import copy

    plain = copy.deepcopy(module).float().cpu().eval()
    wrapped = plain if layer is None else WithActivation(plain, layer)
    outputs = ["logits"] if layer is None else ["logits", "activation"]
    x = torch.zeros(2, 3, *input_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        # the exporter reports its progress on stdout, and warns about things that do not concern the user
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (x,), str(partial), input_names=["x"], output_names=outputs,
                              dynamic_shapes=({0: batch},), opset_version=OPSET, dynamo=True, external_data=False,
                              verbose=False)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path
