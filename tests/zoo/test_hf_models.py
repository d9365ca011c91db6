"""Hugging Face folders (save_pretrained): the wrapper's names and logits, preprocessing, labels, weights, refusals."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

import livecam
from livecam.types import Preprocess
from livecam.zoo import hf_models
from tests.conftest import assert_one_line_error, invoke

transformers = pytest.importorskip("transformers")
LABELS = {0: "cat", 1: "dog", 2: "fox"}
PROCESSOR = {"image_processor_type": "ViTImageProcessor", "size": {"height": 32, "width": 32},
             "image_mean": [0.4, 0.5, 0.6], "image_std": [0.2, 0.3, 0.4]}


def tiny_vit(seed: int = 0, **config):
    """A seeded ViT classifier small enough for tests: 2 layers of width 64 on 32 x 32 images, patches of 8."""
    settings = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
                "image_size": 32, "patch_size": 8, "id2label": LABELS, "label2id": {v: k for k, v in LABELS.items()}}
    cfg = transformers.ViTConfig(**{**settings, **config})
    torch.manual_seed(seed)
    return transformers.ViTForImageClassification(cfg).eval()


def save(model, folder: Path, processor: dict | None = PROCESSOR) -> Path:
    model.save_pretrained(folder)
    if processor is not None:
        (folder / "preprocessor_config.json").write_text(json.dumps(processor))
    return folder


@pytest.fixture(scope="module")
def vit_folder(tmp_path_factory: pytest.TempPathFactory) -> tuple[torch.nn.Module, Path]:
    source = tiny_vit(seed=1)
    return source, save(source, tmp_path_factory.mktemp("hf") / "tiny-vit")


def logits(module: torch.nn.Module, seed: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    x = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        return module(x), x


def test_a_saved_vit_loads_with_its_own_names_labels_and_preprocessing(vit_folder) -> None:
    source, folder = vit_folder
    model = livecam.load_model(str(folder) + "/")
    assert (model.name, model.family) == (str(folder), "huggingface")
    assert model.class_names == ["cat", "dog", "fox"]
    assert model.preprocess == Preprocess((32, 32), (0.4, 0.5, 0.6), (0.2, 0.3, 0.4))
    names = [n for n, _ in model.module.named_modules()]
    assert "vit.layers.1.layernorm_before" in names and "classifier" in names
    assert not any(n.startswith(("hf.", "model.")) for n in names)
    assert set(model.module.state_dict()) == set(source.state_dict())
    out, x = logits(model.module)
    assert torch.allclose(out, source(pixel_values=x).logits, atol=1e-6)  # a plain tensor of logits


def test_the_wrapper_passes_its_mode_and_dtype_to_the_model(vit_folder) -> None:
    model = livecam.load_model(str(vit_folder[1]))
    module = model.module
    assert not module.training and not module.hf.training
    module.train()
    assert module.hf.training and module.hf.vit.training
    module.eval().double()
    assert module.hf.classifier.weight.dtype == torch.float64
    assert module.classifier.weight is module.hf.classifier.weight


def test_weights_files_and_random_apply_to_the_folders_architecture(vit_folder, tmp_path: Path) -> None:
    from safetensors.torch import save_file

    other = tiny_vit(seed=7)
    path = tmp_path / "other.safetensors"
    save_file(other.state_dict(), str(path))
    model = livecam.load_model(str(vit_folder[1]), weights=str(path))
    assert model.weights == str(path)
    out, x = logits(model.module)
    assert torch.allclose(out, other(pixel_values=x).logits, atol=1e-6)
    first = livecam.load_model(str(vit_folder[1]), weights="random")
    second = livecam.load_model(str(vit_folder[1]), weights="random")
    assert first.weights == "untrained (random)"
    assert torch.equal(first.module.classifier.weight, second.module.classifier.weight)  # seeded


def test_a_plain_pytorch_model_bin_loads(tmp_path: Path) -> None:
    source = tiny_vit(seed=4)
    folder = tmp_path / "bin"
    source.config.save_pretrained(folder)  # config.json alone
    torch.save(source.state_dict(), folder / "pytorch_model.bin")
    model = livecam.load_model(str(folder))
    out, x = logits(model.module)
    assert torch.allclose(out, source(pixel_values=x).logits, atol=1e-6)
    assert model.preprocess == Preprocess((32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # config.image_size, 0.5


class MakesAFile:
    """Unpickled, this would create ``path``: code run by loading a weights file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_cli_refuses_a_pytorch_model_bin_that_runs_code(tmp_path: Path) -> None:
    folder = tmp_path / "evil"
    tiny_vit().config.save_pretrained(folder)
    marker = tmp_path / "pwned"
    torch.save({"vit.embeddings.cls_token": MakesAFile(marker)}, folder / "pytorch_model.bin")
    result = invoke(["export", "--model", str(folder), "--output", str(tmp_path / "x.onnx")])
    assert_one_line_error(result, f"could not read weights file {folder / 'pytorch_model.bin'} as a state dict")
    assert not marker.exists()


def test_cli_refuses_a_hub_id_and_says_how_to_save_it_locally(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # where no folder google/ exists
    result = invoke(["export", "--model", "google/vit-base-patch16-224", "--output", str(tmp_path / "x.onnx")])
    assert_one_line_error(result, "'google/vit-base-patch16-224' is not a folder here, and livecam does not download "
                                  "models from the Hugging Face hub; on a machine with internet, save it with "
                                  "AutoModelForImageClassification.from_pretrained('google/vit-base-patch16-224')"
                                  ".save_pretrained(FOLDER)")
    assert "then pass that FOLDER as --model" in result.stderr


def test_folders_that_are_not_saved_models_are_refused(tmp_path: Path) -> None:
    with pytest.raises(livecam.LivecamError, match="has no config.json, so it is not a Hugging Face model"):
        livecam.load_model(str(tmp_path))
    tiny_vit().config.save_pretrained(tmp_path)
    with pytest.raises(livecam.LivecamError, match="has config.json but no model.safetensors or pytorch_model.bin"):
        livecam.load_model(str(tmp_path))
    bert = tmp_path / "bert"
    transformers.BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2).save_pretrained(bert)
    with pytest.raises(livecam.LivecamError, match="holds a 'bert' model, not an image classifier"):
        livecam.load_model(str(bert), weights="random")


def test_weights_of_another_architecture_are_refused(vit_folder, tmp_path: Path) -> None:
    path = tmp_path / "wide.pth"
    torch.save(tiny_vit(hidden_size=32).state_dict(), path)
    with pytest.raises(livecam.LivecamError, match=r"do not fit model '.*tiny-vit': .* of another shape"):
        livecam.load_model(str(vit_folder[1]), weights=str(path))


@pytest.mark.parametrize(("processor", "expected"), [
    ({"size": {"shortest_edge": 48}, "image_mean": 0.5, "image_std": [0.25, 0.25, 0.25]},
     Preprocess((48, 48), (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))),
    ({"size": 40, "do_normalize": False}, Preprocess((40, 40), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0))),
    ({"size": {"height": 24, "width": 36}}, Preprocess((24, 36), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))),
    (None, Preprocess((64, 64), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))),
])
def test_preprocessing_from_each_spelling_of_the_processors_size(tmp_path: Path, processor, expected) -> None:
    if processor is not None:
        (tmp_path / "preprocessor_config.json").write_text(json.dumps(processor))
    assert hf_models.preprocess_of(tmp_path, SimpleNamespace(image_size=64)) == expected


def test_class_names_by_id_and_the_default_labels_as_none() -> None:
    assert hf_models.class_names(SimpleNamespace(id2label={"1": "b", "0": "a"}, num_labels=2)) == ["a", "b"]
    assert hf_models.class_names(SimpleNamespace(id2label={0: "LABEL_0", 1: "LABEL_1"}, num_labels=2)) is None


def test_says_how_to_install_transformers_when_it_is_missing(vit_folder, monkeypatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "transformers", None)  # import transformers raises ImportError
    with pytest.raises(livecam.LivecamError, match=r"^transformers is not installed; pip install 'livecam\[hf\]'$"):
        livecam.load_model(str(vit_folder[1]))
