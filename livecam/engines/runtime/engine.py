"""The ONNX Runtime engine: frames in, annotated frames out, from one exported graph. No PyTorch.

The graph (``livecam export``) holds the model and the explanation: one call
gives the logits, the explained classes, their probabilities and their maps,
already normalized. Around that call the engine does what the PyTorch engine
does on the CPU: OpenCV turns frames into the graph's input (unless the graph
takes raw uint8 frames and does it itself), and the overlay, labels and panels
are drawn in uint8 with :mod:`livecam.render`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from livecam.engines.base import AnyEngine, Engine, check_combination
from livecam.engines.runtime.graph import INPUT_FRAMES, OUTPUTS, GraphInfo, read_metadata
from livecam.engines.runtime.session import RuntimeSession
from livecam.errors import LivecamError, option
from livecam.paths import cache_dir
from livecam.preprocess import to_array
from livecam.render import Annotator, panels_image, softmax, top_labels
from livecam.smooth import Smoother
from livecam.types import Annotated, ArrayExplanation, Frame, Label


class RuntimeEngine(Engine[np.ndarray, ArrayExplanation]):
    """Explain and annotate frames with an exported explainer graph on ONNX Runtime, without PyTorch.

    The graph (``livecam export``, or :func:`livecam.export_explainer`) holds the model and the
    explanation; the engine makes its input with OpenCV (unless the graph takes raw frames) and
    draws the overlay, the labels or the panels.

    Args:
        path: the exported ``.onnx`` graph.
        device: auto (TensorRT, then CUDA, then the CPU, as available), cpu, cuda[:N] or tensorrt[:N].
        annotator: the colour map and blend of the overlay (default: :class:`~livecam.render.Annotator`).
        topk: how many of the most probable classes each frame is labelled with.
        panels: show each of the ``topk`` best classes in its own panel, as many as the graph explains (K).
        threads: ONNX Runtime's CPU threads; None: its own choice.
        session: an open :class:`RuntimeSession` on ``path`` to reuse (default: one is opened).
        smooth: ``--smooth``'s time constant in seconds (0: off; see :mod:`livecam.smooth`): the maps, the
            probabilities and the explained class are steadied over time before they are drawn and logged.
        method: which of the methods the file holds to draw (default: its own, the first); see
            :meth:`switch_method`.

    Returns from :meth:`process`: an :class:`~livecam.types.Annotated` frame whose ``explanation`` is an
    :class:`~livecam.types.ArrayExplanation`.

    Example::

        >>> with livecam.RuntimeEngine("lite0.onnx", device="cpu") as engine:
        ...     out = engine.process(livecam.Frame(bgr_frame, 0, 0.0))
        >>> out.labels[0].name, out.maps.shape
    """

    def __init__(
        self,
        path: str | Path,
        device: str = "auto",
        annotator: Annotator | None = None,
        topk: int = 3,
        panels: bool = False,
        threads: int | None = None,
        session: RuntimeSession | None = None,
        smooth: float = 0.0,
        method: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.device, self.threads = device, threads
        self.session, self.info = self._open(self.path, session, method)
        self._method = method or self.info.method
        self._sessions = {self._method: self.session}  # the file's methods opened so far, each its own session
        check_combination(panels, topk)
        if panels and self.info.topk < 2:
            raise LivecamError(f"{self.path.name} explains one class per frame, so there are no panels to show; "
                               f"export it with {option('topk')} 3 (or more) for panels")
        self.annotator = annotator or Annotator()
        self.topk = topk
        self.panels = panels
        self.smoother = Smoother(smooth, panels=panels, fixed=self.info.target_class is not None)
        # live controls: the methods the file holds, and those another graph can be had for, and how (launch sets
        # them for zoo models)
        self.methods: tuple[str, ...] = self.info.all_methods
        self.graph_for: Callable[[str], Path] | None = None
        self._switching: dict[str, Future[tuple[Path, RuntimeSession, GraphInfo]]] = {}
        self._shared: dict[tuple[str, str], RuntimeSession] = {}  # explain_beside: two methods' maps in one call

    def _open(self, path: Path, session: RuntimeSession | None = None, method: str | None = None
              ) -> tuple[RuntimeSession, GraphInfo]:
        """A session on ``path`` and what the file says. A file of several methods is opened for one (``method``,
        else its own): ONNX Runtime would compute every method's maps on each call (see
        :func:`~livecam.engines.runtime.session.pruned_graph`)."""
        info = GraphInfo.from_metadata(path, session.metadata if session is not None else read_metadata(path))
        method = method or info.method
        if method not in info.all_methods:
            raise LivecamError(f"{path.name} holds the maps of {', '.join(info.all_methods)}, not {method}; export it "
                               f"with {option('method')} {','.join((*info.all_methods, method))}")
        if session is not None:  # the caller's, on the whole graph
            info.check_graph(session.input_shape, session.output_shapes)
            return session, info
        session = self._session(info, (method,))
        info.check_graph(session.input_shape, session.output_shapes, (method,))
        return session, info

    def _session(self, info: GraphInfo, methods: tuple[str, ...]) -> RuntimeSession:
        """A session on ``info``'s file for the maps of ``methods`` only (the whole graph when it holds no other)."""
        wanted = [*OUTPUTS[:3], *dict.fromkeys(info.output_for(method) for method in methods)]
        outputs = wanted if set(info.all_methods) - set(methods) else None
        return RuntimeSession(info.path, self.device, threads=self.threads, cache_dir=cache_dir(),
                              int8=info.precision == "int8", outputs=outputs)

    @property
    def method(self) -> str:
        """The method whose maps are read and drawn: the graph's own, or another the file holds."""
        return self._method

    def live_methods(self) -> tuple[str, ...]:
        return self.methods

    def switch_method(self, method: str) -> bool:
        """Switch to ``method`` from the next call on; False while it is being made ready, the old method running on.

        A method the file holds is opened once (its own session, in a background thread) and kept, so switching
        back is at once. Any other method is another graph: found in the cache or exported (``graph_for``), and
        opened, in a background thread."""
        if method == self._method:
            return True
        held = method in self.info.all_methods
        if held and method in self._sessions:
            self.session, self._method = self._sessions[method], method
            return True
        if not held and (method not in self.methods or self.graph_for is None):
            raise LivecamError(f"{self.path.name} explains with {', '.join(self.info.all_methods)}; this run offers "
                               f"{', '.join(self.methods)}")
        future = self._switching.get(method)
        if future is None:
            graph_for = self.graph_for if not held else (lambda _method, path=self.path: path)
            assert graph_for is not None
            future = self._switching[method] = Future()
            threading.Thread(target=self._prepare, args=(graph_for, method, future), daemon=True,
                             name="livecam-graph").start()
        if not future.done():
            return False
        del self._switching[method]
        path, session, info = future.result()  # a LivecamError says why the method has no graph
        if info.topk < self.info.topk or method not in info.all_methods:
            raise LivecamError(f"the graph for {method} explains {', '.join(info.all_methods)} of {info.topk} "
                               f"classes per frame, not {method} of {self.info.topk}")
        if path != self.path:
            self._sessions = {}
        self.path, self.session, self.info, self._method = path, session, info, method
        self._sessions[method] = session
        return True

    def _prepare(self, graph_for: Callable[[str], Path], method: str,
                 future: Future[tuple[Path, RuntimeSession, GraphInfo]]) -> None:
        """The graph for ``method`` found or made, and opened for it (in its own daemon thread)."""
        try:
            path = graph_for(method)
            future.set_result((path, *self._open(path, method=method)))
        except BaseException as exc:  # noqa: BLE001 - handed to switch_method, on the pipeline's thread
            future.set_exception(exc)

    def explain_beside(self, other: AnyEngine, x: np.ndarray) -> tuple[ArrayExplanation, ArrayExplanation] | None:
        """This engine's explanation of :meth:`prepare`'s ``x`` and ``other``'s from one call, where ``other``
        runs the same file (``--compare-method`` with a graph that holds both methods, ``livecam export --method
        gradcam,cam``) with the same input; else None. The session is cut to the two methods' maps (opened on
        the first call, then kept)."""
        if not isinstance(other, RuntimeEngine) or other.path != self.path or other.info != self.info:
            return None
        fixed = self.session.input_shape[0]
        if isinstance(fixed, int) and fixed > 0 and len(x) != fixed:
            return None  # a fixed batch: each side's own calls (run_prepared pads)
        pair = (self._method, other.method)
        session = self._shared.get(pair)
        if session is None:
            session = self._shared[pair] = self._session(self.info, pair)
        logits, classes, scores, *maps = session.run(x, [*OUTPUTS[:3], *map(self.info.output_for, pair)])
        return (self._explanation(logits, classes, scores, maps[0]),
                other._explanation(logits, classes, scores, maps[1]))

    @property
    def max_rank(self) -> int:
        """The ranks the graph explains: up to its K (0 for a graph of one fixed class)."""
        return 0 if self.info.target_class is not None else min(self.topk, self.info.topk)

    @property
    def can_show_panels(self) -> bool:
        return self.info.target_class is None and min(self.topk, self.info.topk) >= 2

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def layer(self) -> str:
        return self.info.layer

    @property
    def description(self) -> str:
        """What runs, for the header line: the provider and the precision."""
        return f"{self.session.description} in {self.info.precision}"

    def explain(self, images: list[np.ndarray]) -> ArrayExplanation:
        """Explain a batch of BGR uint8 frames (any sizes), at the graph's map resolution."""
        if self.info.input == INPUT_FRAMES and len({image.shape for image in images}) > 1:  # a call per size
            return _concatenate([self.run_prepared(image[None]) for image in images])
        return self.run_prepared(self.prepare(images))

    def prepare(self, images: list[np.ndarray]) -> np.ndarray:
        """The graph's input: the frames stacked (N, H, W, 3) uint8 for a graph that takes frames (one size),
        else the float32 (N, 3, H, W) tensor, made with OpenCV."""
        if self.info.input == INPUT_FRAMES:
            return np.stack(images)
        return np.ascontiguousarray(to_array(images, self.info.preprocess).transpose(0, 3, 1, 2))

    def run_prepared(self, x: np.ndarray) -> ArrayExplanation:
        """One call of the graph on :meth:`prepare`'s input: the logits, classes, scores and the maps of
        :attr:`method` (a call per sample for a graph whose batch is fixed at 1; a fixed batch of B: calls of B,
        the last one padded)."""
        fixed = self.session.input_shape[0]
        if isinstance(fixed, int) and fixed > 0 and len(x) != fixed:
            parts = []
            for start in range(0, len(x), fixed):
                chunk = x[start:start + fixed]
                padded = np.concatenate([chunk, np.repeat(chunk[-1:], fixed - len(chunk), axis=0)])
                parts.append(self.run_prepared(padded))
            whole = _concatenate(parts)
            return ArrayExplanation(cams=whole.cams[:len(x)], classes=whole.classes[:len(x)],
                                    scores=whole.scores[:len(x)], logits=whole.logits[:len(x)],
                                    method=whole.method, layer=whole.layer)
        return self._explanation(*self.session.run(x, [*OUTPUTS[:3], self.info.output_for(self._method)]))

    def _explanation(self, logits: np.ndarray, classes: np.ndarray, scores: np.ndarray, cams: np.ndarray
                     ) -> ArrayExplanation:
        """One call's outputs as this engine explains them: with a rank chosen live, that class's map only."""
        if self.rank > 1 and not self.panels:  # live controls: the rank-th class's map, as the first
            k = slice(self.rank - 1, self.rank)
            cams, classes, scores = cams[:, k], classes[:, k], scores[:, k]
        return ArrayExplanation(cams=cams, classes=classes, scores=scores, logits=logits, method=self._method,
                                layer=self.info.layer)

    def render(self, frame: Frame, explanation: ArrayExplanation, i: int = 0, readout: str | None = None,
               labels: list[Label] | None = None) -> np.ndarray:
        """Frame ``frame`` (sample ``i`` of the batch) annotated with its row of ``explanation``
        (and ``labels``, its top classes, when the caller has them already)."""
        k = self.panel_count
        if labels is None:
            labels = self._labels(explanation, i)
        return self._draw(frame, explanation.cams[i, :k], [int(c) for c in explanation.classes[i, :k]],
                          explanation.scores[i, :k].tolist(), labels, readout)

    def _draw(self, frame: Frame, maps: np.ndarray, classes: list[int], scores: list[float], labels: list[Label],
              readout: str | None) -> np.ndarray:
        """The frame with ``maps`` (a panel each, of ``classes`` with ``scores``; else the first) and ``labels``."""
        if self.panels:
            return panels_image(self.annotator, frame.image, maps, [self.info.class_names[c] for c in classes],
                                scores, readout)
        return self.annotator.annotate(frame.image, maps[0], labels, readout)

    @property
    def panel_count(self) -> int:
        """Maps drawn per frame: with panels the ``topk`` best, up to the graph's K; else the first."""
        return min(self.topk, self.info.topk) if self.panels else 1

    def _labels(self, explanation: ArrayExplanation, i: int) -> list[Label]:
        return top_labels(softmax(explanation.logits[i]), list(self.info.class_names), self.topk,
                          explanation.classes[i, :self.panel_count].tolist())

    def process_batch(self, frames: list[Frame], readout: str | None = None) -> list[Annotated]:
        """Explain and annotate frames in one batch; timings are per frame."""
        n = len(frames)
        t0 = t1 = time.perf_counter()
        if self.info.input == INPUT_FRAMES:  # the graph resizes and normalizes: no preprocess stage here
            explanation = self.explain([f.image for f in frames])
        else:
            x = self.prepare([f.image for f in frames])
            t1 = time.perf_counter()
            explanation = self.run_prepared(x)
        t2 = time.perf_counter()
        results = [self.annotated(explanation, frame, i, readout) for i, frame in enumerate(frames)]
        t3 = time.perf_counter()
        timings = {"preprocess": (t1 - t0) / n, "explain": (t2 - t1) / n, "render": (t3 - t2) / n}
        if self.info.input == INPUT_FRAMES:
            del timings["preprocess"]
        for out in results:
            out.timings = dict(timings)
        return results

    def annotated(self, explanation: ArrayExplanation, frame: Frame, i: int = 0,
                  readout: str | None = None) -> Annotated:
        """Sample ``i``'s output frame, drawn, with its labels and maps (the panels' with panels, else the first),
        smoothed where ``smooth_s`` is on (then the frame's own are the raw ones)."""
        k = self.panel_count
        probs = softmax(explanation.logits[i])
        maps, classes = explanation.cams[i, :k], [int(c) for c in explanation.classes[i, :k]]
        labels = top_labels(probs, list(self.info.class_names), self.topk, classes)
        # without panels or a fixed class, every map the graph has: the class held on screen is often among them
        every = k if self.panels or self.smoother.fixed else explanation.cams.shape[1]
        steady = self.steady(frame, probs, explanation.cams[i, :every], explanation.classes[i, :every].tolist())
        if steady is None:
            image = self._draw(frame, maps, classes, explanation.scores[i, :k].tolist(), labels, readout)
            return Annotated(image, explanation, frame, {}, i, labels, maps, classes)
        shown = top_labels(steady.probs, list(self.info.class_names), self.topk, steady.classes)
        image = self._draw(frame, steady.maps, steady.classes, [float(steady.probs[c]) for c in steady.classes],
                           shown, readout)
        return Annotated(image, explanation, frame, {}, i, shown, steady.maps, steady.classes, labels, maps, classes)

    def expected_frame_time(self) -> None:
        """None: every method an exported graph holds takes one pass, so none is slow enough to warn about."""
        return None

    def close(self) -> None:
        """Nothing to release but the session, which Python frees (a graph being made for another method is left
        to its daemon thread); here for the engines' common contract."""


def _concatenate(parts: list[ArrayExplanation]) -> ArrayExplanation:
    return ArrayExplanation(
        cams=np.concatenate([p.cams for p in parts]), classes=np.concatenate([p.classes for p in parts]),
        scores=np.concatenate([p.scores for p in parts]), logits=np.concatenate([p.logits for p in parts]),
        method=parts[0].method, layer=parts[0].layer)
