"""timm:NAME offline: seeded .safetensors and .pth weights, heads of other sizes, the caches, the errors."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import livecam
from livecam.types import Preprocess
from livecam.zoo import timm_models
from tests.conftest import assert_one_line_error, invoke

timm = pytest.importorskip("timm")


def seeded(name: str, seed: int = 0, **kwargs) -> torch.nn.Module:
    torch.manual_seed(seed)
    return timm.create_model(name, pretrained=False, **kwargs).eval()


@pytest.fixture(autouse=True)
def _empty_hub_caches(tmp_path: Path, monkeypatch) -> Path:
    """No Hugging Face or torch hub cache holds anything, and nothing downloads."""
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*_args, **_kwargs):
        raise AssertionError("livecam must not download")

    import timm.models._builder as builder

    for name in ("load_state_dict_from_url", "load_state_dict_from_hf", "download_cached_file"):
        monkeypatch.setattr(builder, name, no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_network)
    return tmp_path


def test_random_resnet18_is_seeded_and_set_up_for_explaining() -> None:
    model = livecam.load_model("TIMM:ResNet18", weights="random")
    assert (model.name, model.family, model.weights) == ("timm:resnet18", "timm", "untrained (random)")
    assert model.preprocess == Preprocess((224, 224), (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    assert len(model.class_names) == 1000 and model.class_names[967] == "espresso"
    assert (model.target_layer, model.head.kind) == ("layer4", "gap_linear")
    assert not model.module.training and not any(p.requires_grad for p in model.module.parameters())
    again = livecam.load_model("timm:resnet18", weights="random")
    assert torch.equal(again.module.fc.weight, model.module.fc.weight)  # seeded


def test_a_fine_tuned_vit_from_safetensors_gives_the_same_logits(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    source = seeded("test_vit", seed=3, num_classes=7)  # timm's own small ViT for tests, 160 x 160
    path = tmp_path / "vit.safetensors"
    save_file(source.state_dict(), str(path))
    model = livecam.load_model("timm:test_vit", weights=str(path))
    assert model.weights == str(path)
    assert model.class_names == [str(i) for i in range(7)]  # not ImageNet's head: indices
    cfg = source.pretrained_cfg
    assert model.preprocess == Preprocess((160, 160), tuple(cfg["mean"]), tuple(cfg["std"]))
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.allclose(model.module(x), source(x), atol=1e-6)


def test_a_distilled_deit_checkpoint_sizes_both_heads(tmp_path: Path) -> None:
    source = seeded("deit_tiny_distilled_patch16_224", seed=5, num_classes=4)  # classifier ('head', 'head_dist')
    path = tmp_path / "deit.pth"
    torch.save({"state_dict": source.state_dict()}, path)
    # timm_models.load is load_model without the probe pass (slow for a 224 x 224 ViT on a busy CPU)
    module, weights, _, names = timm_models.load("deit_tiny_distilled_patch16_224", str(path))
    assert weights == str(path) and names == ["0", "1", "2", "3"]
    assert module.head.out_features == module.head_dist.out_features == 4  # loaded strictly: every tensor fits
    assert torch.equal(module.head_dist.weight, source.head_dist.weight)


def test_pretrained_weights_come_from_the_torch_hub_cache(tmp_path: Path) -> None:
    cached = tmp_path / "torch" / "hub" / "checkpoints" / "resnet18_a1_0-d63eafa0.pth"  # its pretrained_cfg url
    cached.parent.mkdir(parents=True)
    state = seeded("resnet18", seed=9).state_dict()
    torch.save(state, cached)
    model = livecam.load_model("timm:resnet18")
    assert torch.equal(model.module.fc.weight, state["fc.weight"])
    assert str(cached) in model.weights


def test_pretrained_weights_come_from_the_hugging_face_cache(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    repo = tmp_path / "hf" / "models--timm--resnet18.a1_in1k"  # resnet18's hf_hub_id
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    (repo / "snapshots" / ("0" * 40)).mkdir(parents=True)
    state = seeded("resnet18", seed=11).state_dict()
    save_file(state, str(repo / "snapshots" / ("0" * 40) / "model.safetensors"))
    model = livecam.load_model("timm:resnet18")
    assert torch.equal(model.module.fc.weight, state["fc.weight"])
    assert "timm/resnet18.a1_in1k" in model.weights


def test_uncached_pretrained_weights_are_not_downloaded() -> None:
    with pytest.raises(livecam.LivecamError, match=r"not in the Hugging Face or torch hub cache, and livecam does "
                                                   r"not download; pass weights FILE .* or weights random"):
        livecam.load_model("timm:resnet18")


def test_cli_refuses_an_unknown_name_with_close_ones(tmp_path: Path) -> None:
    result = invoke(["export", "--model", "timm:resnet19", "--output", str(tmp_path / "x.onnx")])
    assert_one_line_error(result, "timm has no model 'resnet19' (did you mean resnet18")
    with pytest.raises(livecam.LivecamError, match=r"timm cannot make 'resnet18.bogus': Invalid pretrained tag"):
        livecam.load_model("timm:resnet18.bogus", weights="random")


def test_cli_refuses_weights_of_another_architecture(tmp_path: Path) -> None:
    path = tmp_path / "resnet18.pth"
    torch.save(seeded("resnet18").state_dict(), path)
    output = str(tmp_path / "x.onnx")
    result = invoke(["export", "--model", "timm:resnet34", "--weights", str(path), "--output", output])
    assert_one_line_error(result, "do not fit model 'timm:resnet34': ")


def test_cli_says_how_to_install_timm_when_it_is_missing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "timm", None)  # import timm raises ImportError
    result = invoke(["export", "--model", "timm:resnet18", "--weights", "random", "--output", str(tmp_path / "x.onnx")])
    assert_one_line_error(result, "timm is not installed; pip install 'livecam[timm]'")
