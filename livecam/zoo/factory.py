"""Any ``nn.Module``, from a function that builds it: ``path/to/file.py:build`` or ``package.module:build``.

The function is called with no arguments and returns the classifier. Optional
attributes, on the function or on the module it returns (the module's win):
``class_names`` (a list of names, one per output), ``input_size`` ((height,
width) or one side), ``mean`` and ``std`` (three numbers, or one). Without them
the input is 224x224 with ImageNet's mean and std, and the classes are
ImageNet's for a 1000-class output, else their indices.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from livecam.choices import factory_spec
from livecam.errors import LivecamError, option
from livecam.types import Preprocess
import livecam.zoo.torchvision_models as tvm


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {tvm.first_line(exc)[:160]}"


def _import_file(path: Path) -> ModuleType:
    if not path.is_file():
        raise LivecamError(f"model file {path} does not exist; pass {option('model')} FILE.py:FUNCTION with the "
                           "file that defines the function that builds the model")
    name = f"livecam_factory_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise LivecamError(f"{path} cannot be imported as a Python module; pass a .py file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # as an import does: classes defined in the file can be found by their module
    folder = str(path.resolve().parent)
    sys.path.insert(0, folder)  # so that the file can import its neighbours
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 - any error in the user's file
        del sys.modules[name]
        raise LivecamError(f"importing {path} failed ({_reason(exc)})") from None
    finally:
        if folder in sys.path:
            sys.path.remove(folder)
    return module


def _import_module(dotted: str) -> ModuleType:
    try:
        return importlib.import_module(dotted)
    except ModuleNotFoundError as exc:
        if exc.name is not None and dotted.startswith(exc.name):
            raise LivecamError(f"there is no module '{dotted}' to import; pass {option('model')} "
                               "package.module:FUNCTION for an importable module, or FILE.py:FUNCTION") from None
        raise LivecamError(f"importing {dotted} failed ({_reason(exc)})") from None
    except Exception as exc:  # noqa: BLE001 - any error in the user's module
        raise LivecamError(f"importing {dotted} failed ({_reason(exc)})") from None


def _function(where: str, name: str) -> Callable[[], Any]:
    module = _import_file(Path(where).expanduser()) if where.lower().endswith(".py") else _import_module(where)
    function = getattr(module, name, None)
    if function is None:
        public = [n for n, v in vars(module).items() if callable(v) and not n.startswith("_")
                  and getattr(v, "__module__", None) == module.__name__]
        hint = f" (it defines {', '.join(public[:5])})" if public else ""
        raise LivecamError(f"{where} has no function '{name}'{hint}; pass {option('model')} {where}:FUNCTION "
                           "with the function that builds the model")
    if not callable(function):
        raise LivecamError(f"{where}:{name} is a {type(function).__name__}, not a function that builds the model")
    return function  # type: ignore[no-any-return]


def _attribute(module: nn.Module, function: object, name: str) -> Any:
    value = getattr(module, name, None)
    return value if value is not None else getattr(function, name, None)


def _preprocess(spec: str, size: Any, mean: Any, std: Any) -> Preprocess:
    default = Preprocess()
    if size is None:
        pair = default.size
    else:
        values = list(size) if isinstance(size, (list, tuple)) else [size, size]
        if len(values) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in values):
            raise LivecamError(f"{spec}: input_size {size!r} is not (height, width) or one side in pixels")
        pair = (values[0], values[1])
    return Preprocess(pair, default.mean if mean is None else tvm.three_floats(mean),
                      default.std if std is None else tvm.three_floats(std, "std"))


def load(spec: str, weights: str | None) -> tuple[nn.Module, str, Preprocess, list[str] | None]:
    """The factory's module, where its weights came from, its preprocessing and class names (None: by default)."""
    parsed = factory_spec(spec)
    if parsed is None:
        raise LivecamError(f"'{spec}' is not FILE.py:FUNCTION or package.module:FUNCTION")
    where, name = parsed
    function = _function(where, name)
    try:
        module = function()
    except Exception as exc:  # noqa: BLE001 - any error in the user's function
        raise LivecamError(f"{spec} raised {_reason(exc)}; it must build and return the model") from None
    if not isinstance(module, nn.Module):
        raise LivecamError(f"{spec} returned a {type(module).__name__}, not a torch.nn.Module")
    preprocess = _preprocess(spec, _attribute(module, function, "input_size"), _attribute(module, function, "mean"),
                             _attribute(module, function, "std"))
    names = _attribute(module, function, "class_names")
    if weights is None or weights == "random":
        source = f"as built by {spec}"
    else:
        tvm.load_weights(module, tvm.read_state_dict(weights), spec, f"file {weights}")
        source = str(weights)
    return module, source, preprocess, None if names is None else [str(n) for n in names]
