"""The edge box's graph in one step: a classifier explained, and its model part in int8, with the fidelity measured.

``livecam export --from-onnx`` (and ``--precision int8`` for the zoo's models,
whose classifier is first exported as a plain graph) comes here: the
explanation is written into the graph in float32 (:mod:`livecam.graphs.explain`);
for int8, frames of the calibration source are read, every other one goes to
calibration and the rest are held out, ONNX Runtime's static quantization
(:mod:`livecam.graphs.quantize`) turns the model part into QDQ int8 while the
explanation's nodes stay float32, and the held-out frames measure what int8
changed: the share with the same top-1 class and the maps' correlation. Those go
into the graph's metadata and onto the screen; below the agreement wanted, a
warning (or, with ``min_agreement``, an error) says what to try.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import onnx

from livecam.engines.runtime.graph import GraphInfo
from livecam.errors import LivecamError, option
from livecam.graphs.options import InputOptions
from livecam.graphs.third_party import Explained, explain_graph, write_model
from livecam.preprocess import to_array

if TYPE_CHECKING:
    from livecam.graphs.quantize import Fidelity

log = logging.getLogger(__name__)

WARN_AGREEMENT = 0.95  # below this share of held-out frames with fp32's top-1 class, export warns
HELD_OUT = 64  # held-out frames at most


@dataclass(frozen=True)
class Int8Options:
    """How the model part is quantized: the calibration source, method and frames, and the agreement required."""

    calibrate: str | None = None  # a video, a folder of images, or "demo"
    calibration: str | None = None  # minmax, entropy or percentile; None: the measured default
    frames: int | None = None  # calibration frames; None: the measured default
    min_agreement: float | None = None  # 0..1: fail below this share of held-out frames keeping fp32's top-1

    @property
    def given(self) -> list[str]:
        names = ("calibrate", "calibration", "calibration_frames", "min_agreement")
        values = (self.calibrate, self.calibration, self.frames, self.min_agreement)
        return [name for name, value in zip(names, values, strict=True) if value is not None]


@dataclass(frozen=True)
class EdgeGraph:
    """What was written: the explained graph, and for int8 its fidelity to fp32 (None in fp32)."""

    explained: Explained
    fidelity: Fidelity | None
    warning: str | None  # the agreement is under WARN_AGREEMENT: what to try


def calibration_frames(source: str, count: int, held_out: int = HELD_OUT) -> tuple[list[np.ndarray],
                                                                                   list[np.ndarray]]:
    """Up to ``count`` frames for calibration and ``held_out`` others, spread over ``source`` (alternating)."""
    from livecam.sources import open_source

    wanted = count + held_out
    with open_source(source) as src:
        stride = max(1, (src.frame_count or wanted) // wanted)
        frames = [frame.image for i, frame in zip(range(wanted * stride), src, strict=False) if i % stride == 0]
    calibrate, hold = frames[0::2], frames[1::2]
    if len(frames) < 2 * min(count, 4) or not hold:
        raise LivecamError(f"{source} gave {len(frames)} frames; calibration needs at least 8 (a video, a folder of "
                           f"images, or 'demo')")
    return calibrate[:count], hold[:held_out]


def _batches(info: GraphInfo, images: Sequence[np.ndarray], fixed_batch: int | None) -> list[np.ndarray]:
    """The graph's input for ``images``: (n, 3, H, W) float32 batches, of the graph's fixed batch size if any."""
    x = np.ascontiguousarray(to_array(list(images), info.preprocess).transpose(0, 3, 1, 2))
    size = fixed_batch or 1
    return [x[i:i + size] for i in range(0, len(x) - size + 1, size)]


def _fixed_batch(path: Path) -> int | None:
    model = onnx.load(str(path), load_external_data=False)
    dims = next(i for i in model.graph.input if i.name == "x").type.tensor_type.shape.dim
    return dims[0].dim_value if dims and dims[0].HasField("dim_value") else None


def export_graph(source: Path, target: Path, method: str | Sequence[str] | None = None, layer: str | None = None,
                 topk: int = 1, target_class: str | None = None, inputs: InputOptions | None = None,
                 precision: str = "fp32", int8: Int8Options | None = None, identity: tuple[str, str] | None = None,
                 class_names: Sequence[str] | None = None) -> EdgeGraph:
    """``source`` (a classifier graph) explained and written to ``target``, in fp32 or with its model part in int8.

    Args:
        source, method, layer, topk, target_class, inputs: as :func:`livecam.graphs.third_party.explain_graph`.
        precision: "fp32" or "int8".
        int8: the calibration (:class:`Int8Options`); its source is required for int8. As many frames as are
            calibrated on are held out, up to 64; under ``min_agreement``, a LivecamError.
        identity: (model name, weights) for the metadata, when the graph is a zoo model's.
        class_names: the class names, when the caller knows them (a zoo model).

    Returns:
        :class:`EdgeGraph`; ``target`` is written only when everything succeeded.
    """
    if precision not in ("fp32", "int8"):
        raise LivecamError(f"an ONNX classifier is exported in fp32 or int8, not {precision}")
    settings = int8 or Int8Options()
    if precision == "fp32":
        if settings.given:
            raise LivecamError(f"{', '.join(option(name) for name in settings.given)} are for {option('precision')} "
                               "int8")
        return EdgeGraph(explain_graph(source, target, method, layer, topk, target_class, inputs,
                                       identity=identity, class_names=class_names), None, None)
    if settings.calibrate is None:
        raise LivecamError(f"{option('precision')} int8 calibrates its activations on real frames: pass "
                           f"{option('calibrate')} VIDEO (or a folder of images, or demo)")
    import livecam.graphs.quantize as quantize

    method_name = settings.calibration or quantize.DEFAULT_CALIBRATION
    count = settings.frames or quantize.DEFAULT_CALIBRATION_FRAMES
    min_agreement = settings.min_agreement
    with tempfile.TemporaryDirectory(prefix="livecam-int8-") as tmp:
        fp32 = Path(tmp) / "fp32.onnx"
        explained = explain_graph(source, fp32, method, layer, topk, target_class, inputs, identity=identity,
                                  class_names=class_names)
        info = GraphInfo.read(fp32)
        calibrate_images, held_images = calibration_frames(settings.calibrate, count)
        batch = _fixed_batch(fp32)
        quantized = Path(tmp) / "int8.onnx"
        # the head's Gemm stays as the quantizer leaves it: keeping it in fp32 changed no class (benchmarks/results/
        # int8-calibration-epyc-2core.md); the logits are read from its float output either way
        quantize.quantize_graph(fp32, quantized, _batches(info, calibrate_images, batch), method=method_name)
        fidelity = quantize.fidelity(fp32, quantized, _batches(info, held_images, batch))
        warning = None
        if min_agreement is not None and fidelity.agreement < min_agreement:
            raise LivecamError(f"int8 keeps fp32's top-1 class on {fidelity.agreement:.0%} of the held-out frames, "
                               f"under {option('min_agreement')} {min_agreement:.0%}; {_advice(method_name, count)}")
        if fidelity.agreement < WARN_AGREEMENT:
            warning = (f"int8 keeps fp32's top-1 class on only {fidelity.agreement:.0%} of the held-out frames; "
                       f"{_advice(method_name, count)}")
        model = onnx.load(str(quantized))
        props = {p.key: p.value for p in model.metadata_props}
        props.update(precision="int8", calibration=method_name, calibration_frames=str(len(calibrate_images)),
                     **fidelity.as_metadata())
        del model.metadata_props[:]
        for key, value in props.items():
            model.metadata_props.add(key=key, value=value)
        write_model(model, Path(target))
    return EdgeGraph(replace(explained, path=Path(target)), fidelity, warning)


def _advice(method: str, count: int) -> str:
    others = [m for m in ("minmax", "entropy", "percentile") if m != method]
    return (f"try {option('calibration')} {' or '.join(others)}, more {option('calibration_frames')} than {count}, "
            "or frames closer to what the model will see")
