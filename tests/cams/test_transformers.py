"""Vision transformers, Swin and ConvNeXt: livecam's maps against pytorch-grad-cam's with its own reshape_transform.

Each model is seeded random weights, loaded through livecam's loaders (a .safetensors file for timm, a
save_pretrained folder for Hugging Face), and explains a real photograph. pytorch-grad-cam gets its own copy of
the module, made before livecam hooks anything, and the tutorial's reshape_transform (``tensor[:, prefix:]``
reshaped to the grid, then channels first; a permute for channels-last maps).

The maps are compared at the input's resolution, as pytorch-grad-cam gives them: it min-max normalizes the
layer-resolution map and resizes it with cv2.resize (bilinear, half-pixel centres), livecam upsamples its map
bilinearly (``align_corners=False``: the same half-pixel centres) and then normalizes. Both are affine in the
layer-resolution map, so Pearson's r compares the methods, not the resampling.
"""

from __future__ import annotations

import copy
import functools
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch

import livecam
from livecam.errors import LivecamError
from livecam.export import export_explainer
from livecam.zoo import Preprocess
from tests.conftest import pearson, photo_bgr, relative_error
from tests.export.test_explainer_graph import run

timm = pytest.importorskip("timm")
pytest.importorskip("pytorch_grad_cam")
from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, LayerCAM  # noqa: E402
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_torch_thread")
REFERENCES = {"gradcam": GradCAM, "gradcampp": GradCAMPlusPlus, "layercam": LayerCAM}
HF_PROCESSOR = {"image_processor_type": "ViTImageProcessor", "size": {"height": 64, "width": 64},
                "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]}


def token_transform(prefix: int, h: int, w: int):
    """The pytorch-grad-cam tutorial's reshape_transform for ViT (prefix 1) and DeiT (prefix 2)."""
    def reshape_transform(tensor: torch.Tensor) -> torch.Tensor:
        result = tensor[:, prefix:, :].reshape(tensor.size(0), h, w, tensor.size(2))
        return result.transpose(2, 3).transpose(1, 2)

    return reshape_transform


def nhwc_transform(tensor: torch.Tensor) -> torch.Tensor:
    """The reshape_transform for a channels-last map (timm's Swin, torchvision's Swin before its permute)."""
    return tensor.permute(0, 3, 1, 2)


# pytorch-grad-cam's Grad-CAM++ adds 1e-6 to the denominator of alpha = g^2 / (2 g^2 + sum(A) g^3); livecam
# divides exactly (0 where the denominator is 0). A random model's gradients are tiny (about 2e-5 at a random
# ViT-S's blocks.11.norm1), far below that 1e-6 in g^2, and inside a block the denominator nearly cancels at some
# cells (2e-14 with the head scaled 1000-fold), so the 1e-6 decides the map: on a random ViT-S, r against
# pytorch-grad-cam was -0.01 and 0.42 unscaled, 0.45 and 0.21 scaled 1000-fold, while the formula written out in
# float64 gave r = 1.0000 with livecam without the 1e-6 and r = 1.0000 with pytorch-grad-cam with it. The heads are
# therefore scaled up 1e5-fold (gradients of about 2), the same model for both libraries, where the 1e-6 no longer
# matters; Grad-CAM and LayerCAM do not depend on the scale of the score.
HEAD_SCALE = 1e6


def scale_heads(module: torch.nn.Module, classes: int) -> torch.nn.Module:
    """Every Linear layer onto the logits (DeiT has two) times HEAD_SCALE."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.Linear) and m.out_features == classes:
                m.weight.mul_(HEAD_SCALE)
                m.bias.mul_(HEAD_SCALE)
    return module


def timm_model(folder: Path, name: str, seed: int = 0) -> livecam.LoadedModel:
    """Seeded timm weights saved as .safetensors and loaded back through load_model('timm:NAME')."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    path = folder / f"{name}.safetensors"
    save_file(scale_heads(timm.create_model(name, pretrained=False), 1000).state_dict(), str(path))
    return livecam.load_model(f"timm:{name}", weights=str(path))


def hf_vit(folder: Path) -> livecam.LoadedModel:
    """A small seeded Hugging Face ViT (2 layers, 64 x 64 images, an 8x8 grid) in a save_pretrained folder."""
    from tests.zoo.test_hf_models import LABELS, save, tiny_vit

    model = scale_heads(tiny_vit(seed=3, image_size=64), len(LABELS))
    return livecam.load_model(str(save(model, folder / "hf-vit", HF_PROCESSOR)))


def torchvision_swin(_folder: Path) -> livecam.LoadedModel:
    loaded = livecam.load_model("swin_t", weights="random")
    scale_heads(loaded.module, 1000)
    return loaded


BUILDERS = {
    "vit": lambda folder: timm_model(folder, "vit_small_patch16_224"),
    "deit": lambda folder: timm_model(folder, "deit_small_distilled_patch16_224"),
    "swin": lambda folder: timm_model(folder, "swin_tiny_patch4_window7_224"),
    # seed 1: with seed 0 every cell of ConvNeXt's Grad-CAM++ and LayerCAM maps is negative on both photographs
    # (all zero after the ReLU), and r would mean nothing
    "convnext": lambda folder: timm_model(folder, "convnext_tiny", seed=1),
    "tv_swin": torchvision_swin,
    "hf_vit": hf_vit,
}

# case: (model, layer to explain (None: the default), the layer it must be, its layout, pytorch-grad-cam's transform)
CASES = {
    "vit": ("vit", None, "blocks.11.norm1", "tokens 14x14 + 1 prefix", token_transform(1, 14, 14)),
    "deit": ("deit", None, "blocks.11.norm1", "tokens 14x14 + 2 prefix", token_transform(2, 14, 14)),
    "swin": ("swin", None, "norm", "NHWC 7x7", nhwc_transform),
    # the layer pytorch-grad-cam's Swin tutorial takes: the first norm of the last block
    "swin-block": ("swin", "layers.3.blocks.1.norm1", "layers.3.blocks.1.norm1", "NHWC 7x7", nhwc_transform),
    "convnext": ("convnext", None, "norm_pre", "NCHW 7x7", None),
    "tv_swin-norm": ("tv_swin", "norm", "norm", "NHWC 7x7", nhwc_transform),
    "hf_vit": ("hf_vit", None, "vit.layers.1.layernorm_before", "tokens 8x8 + 1 prefix", token_transform(1, 8, 8)),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory):
    """Each model built once: (the loaded model, pytorch-grad-cam's copy of its module, made before any hook)."""
    folder = tmp_path_factory.mktemp("models")

    @functools.cache
    def get(key: str) -> tuple[livecam.LoadedModel, torch.nn.Module]:
        loaded = BUILDERS[key](folder)
        reference = copy.deepcopy(loaded.module).requires_grad_(True)  # its backward needs a graph to the layer
        return loaded, reference

    return get


@functools.cache
def photos(size: tuple[int, int], mean: tuple[float, ...], std: tuple[float, ...], count: int) -> torch.Tensor:
    return livecam.to_input([photo_bgr(n) for n in ("chelsea", "coffee")[:count]], Preprocess(size, mean, std))


def photos_for(loaded: livecam.LoadedModel, count: int = 2) -> torch.Tensor:
    """chelsea and coffee (or chelsea alone), resized to the model's input and normalized with its mean and std."""
    p = loaded.preprocess
    return photos(tuple(p.size), tuple(p.mean), tuple(p.std), count)


@pytest.mark.parametrize("method", list(REFERENCES))
@pytest.mark.parametrize("case", list(CASES))
def test_maps_match_pytorch_grad_cam_with_its_reshape_transform(case: str, method: str, models) -> None:
    key, layer, expected_layer, layout, transform = CASES[case]
    loaded, reference = models(key)
    x = photos_for(loaded, 1)  # one photograph: full-size transformers are slow on this CPU
    with livecam.Explainer(loaded, method, layer=layer) as explainer:
        assert (explainer.layer, explainer.info.layout.describe()) == (expected_layer, layout)
        ours = explainer(x)  # upsampled to the input's size and normalized
    flat = ours.raw.flatten(1)
    assert bool((flat.amax(1) - flat.amin(1) > 1e-3 * flat.abs().amax(1)).all()), "a flat map: r means nothing"
    target = reference.get_submodule(expected_layer)
    with REFERENCES[method](model=reference, target_layers=[target], reshape_transform=transform) as cam:
        theirs = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in ours.classes])
    assert theirs.shape == tuple(ours.cams.shape) and bool((theirs.std(axis=(1, 2)) > 1e-3).all())
    r = pearson(ours.cams, theirs)
    print(f"{case} {method}: r = {', '.join(f'{v:.6f}' for v in r)}")
    assert r.min() >= 0.99, r


def test_the_heads_behind_the_default_layers_are_named(models) -> None:
    vit, deit, swin = (models(key)[0] for key in ("vit", "deit", "swin"))
    assert vit.head.kind == deit.head.kind == "other"
    assert vit.head.reason.startswith("a class-token head (one Linear layer on prefix token 0)")
    assert deit.head.reason.startswith("a class- and distillation-token head")
    assert swin.head.kind == "gap_linear"  # timm's Swin-T at its final norm: GAP -> Linear, so CAM is exact
    tv_swin = models("tv_swin")[0]  # torchvision's Swin permutes its final norm's NHWC map to NCHW itself
    assert (tv_swin.target_layer, tv_swin.info.layout.describe(), tv_swin.head.kind) == ("permute", "NCHW 7x7",
                                                                                         "gap_linear")
    convnext = models("convnext")[0]  # the LayerNorm after the pooling: not GAP -> Linear
    assert convnext.head.kind == "other" and "LayerNorm" in convnext.head.chain


def test_a_class_token_vit_at_its_final_norm_refuses_gradients_and_draws_eigencam(models) -> None:
    loaded, _ = models("vit")
    with pytest.raises(LivecamError) as refused:
        livecam.Explainer(loaded, "gradcam", layer="norm")
    message = str(refused.value)
    assert "\n" not in message and "gradcam at 'norm' would draw nothing" in message
    assert "a class-token head (one Linear layer on prefix token 0)" in message and "gradient on its grid is zero" \
        in message
    with livecam.Explainer(loaded, "eigencam", layer="norm") as explainer:
        raw = explainer(photos_for(loaded), upsample=False).raw
    assert raw.shape == (2, 14, 14) and bool((raw.flatten(1).std(1) > 0).all())


# --- GAP -> Linear heads: the closed-form gradient, and the exported graph --------------------------------------
# Exports of full-size transformers take tens of seconds here, so these models are reduced in depth (one block for
# the ViT, two stages of one block for Swin): what is tested is the head after the final norm, which depth does not
# change. Even so each export takes 5 to 10 s, so a worker process makes them while the parity tests run.

FACTORY = '''\
import timm
import torch


def vit_gap():  # the head averages the grid tokens and applies one Linear layer
    torch.manual_seed(0)
    return timm.create_model("vit_small_patch16_224", global_pool="avg", fc_norm=False, depth=1)


def vit_fc_norm():  # timm's default for global_pool="avg": a LayerNorm after the pooling
    torch.manual_seed(0)
    return timm.create_model("vit_small_patch16_224", global_pool="avg", depth=1)


def swin_gap():
    torch.manual_seed(0)
    return timm.create_model("swin_tiny_patch4_window7_224", depths=(1, 1), num_heads=(3, 6))  # ends at 28x28
'''


EXPORTS = {"vit_gap": "gradcam", "swin_gap": "gradcam", "vit_fc_norm": "eigencam"}


@pytest.fixture(scope="module")
def factory_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("factory") / "net.py"
    path.write_text(FACTORY)
    return path


@pytest.fixture(scope="module")
def factory(factory_file: Path):
    return functools.cache(lambda name: livecam.load_model(f"{factory_file}:{name}"))


def _export_job(spec: str, method: str, path: str) -> str:
    """In the worker: load the factory's model as load_model does and export it."""
    torch.set_num_threads(1)
    return str(export_explainer(livecam.load_model(spec), Path(path), method=method))


@pytest.fixture(scope="module", autouse=True)
def exports(factory_file: Path, tmp_path_factory: pytest.TempPathFactory):
    """The three exports, started with the module's first test on one worker; a test waits for the file it reads."""
    folder = tmp_path_factory.mktemp("exports")
    pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"))
    yield {name: pool.submit(_export_job, f"{factory_file}:{name}", method, str(folder / f"{name}.onnx"))
           for name, method in EXPORTS.items()}
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize(("name", "layout"), [("vit_gap", "tokens 14x14 + 1 prefix"), ("swin_gap", "NHWC 28x28")])
def test_gap_heads_take_the_closed_form_gradient_and_export(name: str, layout: str, factory, exports) -> None:
    loaded = factory(name)
    assert (loaded.target_layer, loaded.head.kind, loaded.info.layout.describe()) == ("norm", "gap_linear", layout)
    x = photos_for(loaded)
    raws = {}
    for method in REFERENCES:
        for gradients in ("auto", "autograd"):
            with livecam.Explainer(loaded, method, gradients=gradients) as explainer:
                assert explainer._autograd == (gradients == "autograd")  # closed form: no backward pass
                raws[gradients] = explainer(x, upsample=False)
        error = relative_error(raws["auto"].raw, raws["autograd"].raw)
        print(f"{name} {method}: closed form vs autograd, relative error {error:.2e}")
        assert error < 1e-5, (method, error)
    logits, classes, _, cams = run(exports[name].result(), x)
    with livecam.Explainer(loaded, "gradcam") as explainer:
        ref = explainer(x, upsample=False)
    assert np.array_equal(classes[:, 0], ref.classes.numpy())
    assert relative_error(torch.from_numpy(logits), ref.logits) < 1e-4
    error = float(np.abs(cams[:, 0] - ref.cams.numpy()).max())
    print(f"{name} gradcam: ONNX Runtime vs PyTorch, max abs error {error:.2e}")
    assert error < 1e-4


def test_layernorm_heads_refuse_a_gradcam_export_and_export_eigencam(models, factory, exports, tmp_path: Path) -> None:
    vit = factory("vit_fc_norm")
    assert vit.head.kind == "other" and "LayerNorm" in vit.head.chain  # the fc_norm after the pooling
    for loaded in (vit, models("convnext")[0]):
        with pytest.raises(LivecamError) as refused:
            export_explainer(loaded, tmp_path / "refused.onnx", method="gradcam")
        message = str(refused.value)
        assert "\n" not in message and "can only be exported for a head of global average pooling and one Linear " \
            "layer" in message and "LayerNorm" in message and "eigencam" in message
    x = photos_for(vit)
    cams = run(exports["vit_fc_norm"].result(), x)[3]
    assert not (tmp_path / "refused.onnx").exists()
    with livecam.Explainer(vit, "eigencam") as explainer:
        ref = explainer(x, upsample=False).cams
    r = pearson(cams[:, 0], ref)
    print(f"vit_fc_norm eigencam: ONNX Runtime (power method) vs PyTorch (SVD), r = {r}")
    # the same principal component, with the same sign (test_eigencam_sign_at_a_layernorm_output_is_defined)
    assert cams.shape == (2, 1, 14, 14) and r.min() >= 0.999


def test_eigencam_sign_at_a_layernorm_output_is_defined(factory) -> None:
    """Eigen-CAM signed its component by the centred mean over channels, which is ~3e-8 at a LayerNorm output
    (every token's channel mean is the norm's bias mean): the sign was rounding noise, a relative change of 1e-6
    inverted the map (r = -1 for sample 1 in 2 of 5), and ONNX Runtime's map was the PyTorch one inverted. Where
    that mean is flat, the largest cell is made positive instead."""
    from livecam.cams import Capture
    from livecam.cams.activation import EigenCAM

    loaded = factory("vit_fc_norm")  # default layer blocks.0.norm1, a LayerNorm
    store = {}
    layer = loaded.module.get_submodule(loaded.target_layer)
    handle = layer.register_forward_hook(lambda _m, _i, out: store.__setitem__("A", loaded.info.layout.to_map(out)))
    with torch.no_grad():
        loaded.module(photos_for(loaded))
    handle.remove()
    acts, eigen = store["A"], EigenCAM(loaded.head)
    maps = [eigen.compute(Capture(a, torch.zeros(2, 1000), torch.zeros(2, dtype=torch.long))) for a in
            [acts] + [acts * (1 + 1e-6 * torch.randn(acts.shape, generator=torch.Generator().manual_seed(i)))
                      for i in range(5)]]
    assert min(pearson(m, maps[0]).min() for m in maps[1:]) >= 0.999
