"""The engine contract, said once: both engines keep it, and one check says what panels combine with."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

import livecam
from livecam.closing import Closing
from livecam.engines.base import Engine, check_combination
from livecam.engines.pytorch.engine import TorchEngine
from livecam.engines.runtime.engine import RuntimeEngine
from livecam.errors import LivecamError, option
from livecam.types import Frame
from tests.conftest import photo_bgr


def test_both_engines_implement_the_contract() -> None:
    for engine in (TorchEngine, RuntimeEngine):
        assert issubclass(engine, Engine) and issubclass(engine, Closing)
        assert not inspect.isabstract(engine), f"{engine.__name__} leaves part of the contract out"
    assert livecam.Engine is TorchEngine  # the public name is the PyTorch engine, as it always was
    with pytest.raises(TypeError):
        Engine()  # the contract alone runs nothing


def test_each_engine_is_a_context_manager_that_closes_itself(lite0, lite0_graph: Path) -> None:
    frame = Frame(photo_bgr("chelsea"), 0, 0.0)
    for make in (lambda: TorchEngine(lite0, "gradcam"), lambda: RuntimeEngine(lite0_graph, "cpu")):
        with make() as engine:
            assert isinstance(engine, Engine)
            out = engine.process(frame)
            assert out.image.shape == frame.image.shape and engine.panel_count == 1
            assert engine.layer and len(engine.class_names) == 1000 and engine.description
            explanation = engine.run_prepared(engine.prepare([frame.image]))
            assert explanation.classes.shape[0] == 1
            assert engine.expected_frame_time() is None
            # the explainer's own hook (a module copied from one another test left hooked would carry theirs too)
            hook = engine.explainer.hook._handle.id if isinstance(engine, TorchEngine) else None
            assert hook is None or any(hook in m._forward_hooks for m in engine.model.module.modules())
        if isinstance(engine, TorchEngine):  # leaving the block removed the explainer's hook
            assert hook is not None and not any(hook in m._forward_hooks for m in engine.model.module.modules())


@pytest.mark.parametrize(("kwargs", "library", "cli"), [
    ({"view": "guided"}, "panels and view guided do not combine; choose one",
     "--panels and --view guided do not combine; choose one"),
    ({"target_class": "tabby"}, "panels shows the topk most probable classes, so it does not combine with class",
     "--panels shows the --topk most probable classes, so it does not combine with --class"),
    ({"topk": 1}, "panels shows one panel for each of the topk most probable classes, so it needs topk 2 or more, "
     "not 1", "--panels shows one panel for each of the --topk most probable classes, so it needs --topk 2 or "
     "more, not 1"),
])
def test_one_check_says_what_panels_combine_with(kwargs: dict, library: str, cli: str) -> None:
    arguments = {"panels": True, "topk": 3, "view": "overlay", "target_class": None, **kwargs}
    with pytest.raises(LivecamError) as caught:
        check_combination(**arguments)
    assert str(caught.value) == library
    assert caught.value.render(lambda name: "--" + name.replace("_", "-")) == cli
    check_combination(**{**arguments, "panels": False})  # without panels each of these is fine


def test_the_engines_and_launch_call_the_one_check(lite0, lite0_graph: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from livecam.engines import launch
    from livecam.engines.pytorch import engine as torch_engine
    from livecam.engines.runtime import engine as runtime_engine

    calls = []

    def recorded(panels: bool, topk: int, view: str = "overlay", target_class: object = None) -> None:
        calls.append((panels, topk))
        raise LivecamError(f"refused by the one check ({option('panels')})")

    for module in (launch, torch_engine, runtime_engine):
        monkeypatch.setattr(module, "check_combination", recorded)
    for make in (lambda: launch.open_engine(launch.EngineOptions(model=str(lite0_graph), panels=True, topk=2)),
                 lambda: TorchEngine(lite0, "gradcam", topk=2, panels=True),
                 lambda: RuntimeEngine(lite0_graph, "cpu", topk=2, panels=True)):
        with pytest.raises(LivecamError, match="refused by the one check"):
            make()
    assert calls == [(True, 2)] * 3
