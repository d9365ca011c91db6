"""FILE.py:FUNCTION and package.module:FUNCTION: any nn.Module, its optional attributes, weights, and the errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import torch

import livecam
from livecam.types import IMAGENET_MEAN, IMAGENET_STD, Preprocess
from livecam import choices
from tests.conftest import assert_one_line_error, invoke

NET = '''
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self, classes):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def build():
    torch.manual_seed(0)
    return Net(3)


build.class_names = ["red", "green", "blue"]
build.input_size = 48
build.mean = 0.5
build.std = (0.2, 0.3, 0.4)


def wide():
    net = Net(1000)
    net.input_size = (32, 64)
    return net


def few():
    return Net(10)


def broken():
    raise ValueError("no such backbone\\nsecond line")


def not_a_module():
    return {"fc": 1}
'''


@pytest.fixture
def net_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_net.py"
    path.write_text(NET)
    return path


def test_a_factory_file_with_its_attributes(net_file: Path) -> None:
    spec = f"{net_file}:build"
    model = livecam.load_model(spec)
    assert (model.name, model.family, model.weights) == (spec, "factory", f"as built by {spec}")
    assert model.class_names == ["red", "green", "blue"]
    assert model.preprocess == Preprocess((48, 48), (0.5, 0.5, 0.5), (0.2, 0.3, 0.4))
    assert (model.target_layer, model.head.kind) == ("features", "gap_linear")
    assert not model.module.training and not any(p.requires_grad for p in model.module.parameters())


def test_the_defaults_and_the_modules_own_attributes(net_file: Path) -> None:
    wide = livecam.load_model(f"{net_file}:wide")
    assert wide.preprocess == Preprocess((32, 64), IMAGENET_MEAN, IMAGENET_STD)  # the module's input_size
    assert len(wide.class_names) == 1000 and wide.class_names[967] == "espresso"  # 1000 outputs: ImageNet's
    few = livecam.load_model(f"{net_file}:few")
    assert few.preprocess == Preprocess() and few.class_names == [str(i) for i in range(10)]


def test_a_dotted_module_path(net_file: Path, monkeypatch) -> None:
    package = net_file.parent / "zoo_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(NET)
    monkeypatch.syspath_prepend(str(net_file.parent))
    model = livecam.load_model("zoo_pkg.nets:build")
    assert model.family == "factory" and model.class_names == ["red", "green", "blue"]


def test_weights_round_trip_in_both_formats(net_file: Path, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    torch.manual_seed(3)
    source = livecam.load_model(f"{net_file}:build").module
    trained = {k: torch.randn_like(v) for k, v in source.state_dict().items()}
    x = torch.randn(2, 3, 48, 48, generator=torch.Generator().manual_seed(4))
    source.load_state_dict(trained)
    with torch.no_grad():
        expected = source(x)
    save_file(trained, str(tmp_path / "w.safetensors"))
    torch.save(trained, tmp_path / "w.pth")
    for path in (tmp_path / "w.safetensors", tmp_path / "w.pth"):
        model = livecam.load_model(f"{net_file}:build", weights=str(path))
        assert model.weights == str(path)
        with torch.no_grad():
            assert torch.allclose(model.module(x), expected, atol=1e-6)


def test_cli_reports_a_factory_that_raises(net_file: Path, tmp_path: Path) -> None:
    result = invoke(["export", "--model", f"{net_file}:broken", "--output", str(tmp_path / "x.onnx")])
    assert_one_line_error(result, f"{net_file}:broken raised ValueError: no such backbone; it must build and "
                                  "return the model")


def test_cli_reports_a_factory_that_returns_no_module(net_file: Path, tmp_path: Path) -> None:
    result = invoke(["export", "--model", f"{net_file}:not_a_module", "--output", str(tmp_path / "x.onnx")])
    assert_one_line_error(result, f"{net_file}:not_a_module returned a dict, not a torch.nn.Module")


def test_missing_files_functions_modules_and_misnamed_classes(net_file: Path, tmp_path: Path) -> None:
    with pytest.raises(livecam.LivecamError, match=r"model file .*nowhere.py does not exist; pass model FILE.py"):
        livecam.load_model(f"{tmp_path / 'nowhere.py'}:build")
    with pytest.raises(livecam.LivecamError, match=r"my_net.py has no function 'biuld' \(it defines .*build"):
        livecam.load_model(f"{net_file}:biuld")
    with pytest.raises(livecam.LivecamError, match="there is no module 'no_such_pkg.nets' to import"):
        livecam.load_model("no_such_pkg.nets:build")
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\ndef build():\n    return torch.nn.Linear(4, 2)\nbuild.class_names = ['a']\n"
                   "1 / 0\n")
    with pytest.raises(livecam.LivecamError, match=r"importing .*bad.py failed \(ZeroDivisionError: division by zero"):
        livecam.load_model(f"{bad}:build")
    bad.write_text(textwrap.dedent(NET) + "\nbuild.class_names = ['only', 'two']\n")
    with pytest.raises(livecam.LivecamError, match="names 2 classes but outputs 3 logits"):
        livecam.load_model(f"{bad}:build")


def test_what_reads_as_a_factory() -> None:
    assert choices.factory_spec("nets/my_net.py:build") == ("nets/my_net.py", "build")
    assert choices.factory_spec("C:/nets/my_net.py:build") == ("C:/nets/my_net.py", "build")
    assert choices.factory_spec("pkg.mod:make_model") == ("pkg.mod", "make_model")
    for other in ("resnet50", "folder/x:1build", "my-net:build", "a/b:build", "pkg.mod:"):
        assert choices.factory_spec(other) is None, other
