"""The model and its target activation as one ONNX graph, and ONNX Runtime as the CPU forward pass.

On a 2-core CPU the forward pass is most of the cost of an explanation
(ARCHITECTURE.md, fact 4), and ONNX Runtime runs EfficientNet-Lite0 about twice as
fast as PyTorch: 3.9 against 7.7 ms at 224x224, measured on this project's machine.

The exported graph has two outputs: the logits and the target layer's
activation A. For a GAP -> Linear head the class score's gradient with respect to
A has a closed form (W_c / (h w)), and the gradient-free methods need A alone, so
every method that needs neither autograd nor a second pass over the input gets
its whole explanation from one ONNX Runtime call plus a few float32 tensor
operations in PyTorch.

Exports are cached on disk (``$LIVECAM_CACHE_DIR/onnx``), keyed by a hash of the
weights, the layer and the input size, so the export (2 to 4 s) happens once.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from livecam.errors import LivecamError
from livecam.paths import cache_dir

log = logging.getLogger(__name__)

OPSET = 18


class WithActivation(nn.Module):
    """``module`` returning (logits, the output of ``layer``) instead of the logits alone."""

    def __init__(self, module: nn.Module, layer: str) -> None:
        super().__init__()
        self.module = module
        self._activation: torch.Tensor | None = None
        module.get_submodule(layer).register_forward_hook(self._keep)

    def _keep(self, _module: nn.Module, _inputs: tuple, output: torch.Tensor) -> torch.Tensor:
        self._activation = output
        return output.clone()  # in-place operations after the layer must not change what is returned

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.module(x)
        activation, self._activation = self._activation, None
        return logits, activation


def onnx_available() -> bool:
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        return False
    return True


def weights_key(module: nn.Module, layer: str, input_size: tuple[int, int]) -> str:
    """A hash of everything the exported graph depends on."""
    digest = hashlib.sha256(f"{type(module).__qualname__}|{layer}|{input_size}|{torch.__version__}|{OPSET}".encode())
    for name, tensor in module.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def export_onnx(module: nn.Module, layer: str, path: Path, input_size: tuple[int, int] = (224, 224)) -> Path:
    """Write ``module`` (eval mode, fp32, on the CPU) with ``layer``'s activation as a second output.

    The batch size is dynamic. The caller's module is not changed (a copy is exported).
    """
    import copy

    wrapped = WithActivation(copy.deepcopy(module).float().cpu().eval(), layer)
    x = torch.zeros(2, 3, *input_size)
    batch = torch.export.Dim("batch", min=1, max=1024)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        # the exporter reports its progress on stdout, and warns about things that do not concern the user
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapped, (x,), str(partial), input_names=["x"], output_names=["logits", "activation"],
                              dynamic_shapes=({0: batch},), opset_version=OPSET, dynamo=True, external_data=False,
                              verbose=False)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


class OnnxRuntime:
    """An ONNX Runtime session on the CPU that returns (logits, activation) as torch tensors."""

    def __init__(self, path: Path, threads: int | None = None) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # ONNX Runtime's threads spin after each run by default; between runs PyTorch computes the
        # map on the same cores, and the spinning made a 4 ms forward pass cost 16 ms in the explainer
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.path = path

    def __call__(self, x: torch.Tensor, outputs: list[str] | None = None) -> list[torch.Tensor]:
        """Run the graph on a float32 CPU batch; ``outputs`` picks outputs by name (default: both)."""
        array = np.ascontiguousarray(x.detach().cpu().float().numpy())
        return [torch.from_numpy(out) for out in self.session.run(outputs, {"x": array})]


def runtime_for(module: nn.Module, layer: str, input_size: tuple[int, int]) -> OnnxRuntime:
    """The ONNX Runtime session for this model and layer, exported once and cached on disk."""
    path = cache_dir() / "onnx" / f"{weights_key(module, layer, input_size)}.onnx"
    if not path.exists():
        log.info("exporting the model to ONNX (once; cached in %s)", path.parent)
        try:
            export_onnx(module, layer, path, input_size)
        except Exception as exc:  # noqa: BLE001 - any exporter failure means: run it in PyTorch
            raise LivecamError(f"the model could not be exported to ONNX ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else ''}); use --backend torch") from None
    return OnnxRuntime(path)
