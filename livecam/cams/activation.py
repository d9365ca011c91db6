"""Methods computed from the activations alone, with no backward pass."""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from livecam.cams.base import Capture, CamMethod, normalize_maps, safe_divide, spatial_size, upsample_maps
from livecam.errors import LivecamError, option
from livecam.zoo.analysis import GAP_LINEAR, Head


class CAM(CamMethod):
    """CAM (Zhou et al. 2016): M_c = sum_k w_k^c A^k, from the Linear head's weights.

    Only for heads that are global average pooling -> (dropout) -> one Linear
    layer, where w^c is row c of that layer's weight. Like Grad-CAM the map is
    passed through a ReLU, so that for such heads CAM and Grad-CAM agree after
    normalization (Grad-CAM's alpha_k^c is then w_k^c / Z at every pixel).

    Paper: https://arxiv.org/abs/1512.04150
    """

    name = "cam"
    needs_grad = False

    def __init__(self, head: Head) -> None:
        if head.kind != GAP_LINEAR or head.linear is None:
            raise LivecamError(
                f"CAM needs a head of global average pooling and one Linear layer, and this model's is not: "
                f"{head.reason}; use {option('method')} gradcam"
            )
        self.linear = head.linear

    def compute(self, cap: Capture) -> torch.Tensor:
        weights = self.linear.weight.detach()[cap.classes].float()  # (N, K)
        return F.relu(torch.einsum("nk,nkhw->nhw", weights, cap.activation.float()))


class EigenCAM(CamMethod):
    """Eigen-CAM (Muhammad & Yeasin 2020): the first principal component of the activations.

    X = the (h w) x K activations of a sample, centred per channel; the map is the
    projection X v_1 on the first right singular vector (a thin SVD, float32),
    signed so that it correlates positively with the mean activation over channels.
    Gradient-free and class-agnostic.

    Paper: https://arxiv.org/abs/2008.00299
    """

    name = "eigencam"
    needs_grad = False

    def compute(self, cap: Capture) -> torch.Tensor:
        acts = cap.activation.detach().float()
        n, k, h, w = acts.shape
        x = _centred_rows(acts)  # (N, hw, K)
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        projection = (x @ vh[:, 0, :, None])[..., 0]  # (N, hw)
        return eigen_sign(projection, acts).reshape(n, h, w)


def _centred_rows(acts: torch.Tensor) -> torch.Tensor:
    """(N, K, h, w) -> X: (N, hw, K), each channel centred over the pixels."""
    n, k, h, w = acts.shape
    x = acts.reshape(n, k, h * w).transpose(1, 2)
    return x - x.mean(dim=1, keepdim=True)


def eigen_sign(projection: torch.Tensor, acts: torch.Tensor, flat: float = 1e-3) -> torch.Tensor:
    """Eigen-CAM's sign convention: flip each (N, hw) projection that correlates negatively with the
    centred mean activation over channels (a singular vector's sign is arbitrary).

    Where that mean hardly varies over the grid (its RMS under ``flat`` times the
    activations' RMS: a LayerNorm's output, whose every token has the same channel
    mean), its correlation is rounding noise and would flip the map from frame to
    frame; the projection's largest-magnitude cell is made positive instead.
    Written without data-dependent branches, so that it exports.
    """
    n = acts.shape[0]
    mean_act = acts.mean(dim=1).reshape(n, -1)
    centred = mean_act - mean_act.mean(dim=1, keepdim=True)
    by_mean = torch.where((projection * centred).sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
    peak = projection.gather(1, projection.abs().argmax(dim=1, keepdim=True))
    by_peak = torch.where(peak < 0, -1.0, 1.0)
    spread = centred.square().mean(dim=1, keepdim=True).sqrt()
    scale = acts.reshape(n, -1).square().mean(dim=1, keepdim=True).sqrt()
    return projection * torch.where(spread <= flat * scale, by_peak, by_mean)


def _unit(t: torch.Tensor) -> torch.Tensor:
    """Each sample of ``t`` (N, ...) divided by its Frobenius norm; an all-zero sample stays zero."""
    norm = t.flatten(1).square().sum(dim=1).sqrt().reshape(-1, *([1] * (t.dim() - 1)))
    return safe_divide(t, norm)


def eigen_maps_power(acts: torch.Tensor, squarings: int = 12) -> torch.Tensor:
    """Eigen-CAM's maps (N, h, w) without an SVD: what :class:`EigenCAM` computes, in ops that export to ONNX.

    ``torch.linalg.svd`` has no ONNX export, so the first principal component
    comes from the power method by repeated squaring (Golub & Van Loan,
    "Matrix Computations", section 7.3): with X the (hw x K) centred
    activations, the smaller of the Gram matrices G = X X^T (hw x hw) or
    X^T X (K x K) is scaled and squared ``squarings`` times, G <- (G / max G)^2, which
    leaves G^(2^s) up to a positive scale: nearly e e^T for the top eigenvector e,
    as (lambda_2 / lambda_1)^(2^s) vanishes (12 squarings: the 4096th power).
    Its column with the largest diagonal entry is e times a scalar. (The
    all-ones start of the textbook power method would not do: X is centred,
    so ones lie in the null space of X X^T.) From e = u_1 the right singular
    vector is v_1 = X^T u_1 / ||X^T u_1||, and the map is the projection X v_1,
    as in the SVD method, with the same sign convention.

    No ReLU, as in :class:`EigenCAM`: the exported maps must equal the PyTorch
    path's (the principal component is signed, not rectified). Flat
    activations (X = 0) give an all-zero map, never NaN.
    """
    acts = acts.float()
    n, k, h, w = acts.shape
    x = _centred_rows(acts)  # (N, hw, K)
    pixels_side = h * w <= k  # static: the smaller Gram matrix
    gram = x @ x.transpose(1, 2) if pixels_side else x.transpose(1, 2) @ x
    tiny = torch.finfo(torch.float32).tiny
    for _ in range(squarings):
        # scaled by its largest entry (a diagonal one, G being positive semi-definite) to stay in range
        gram = gram / gram.flatten(1).amax(dim=1)[:, None, None].clamp_min(tiny)
        gram = gram @ gram
    size = gram.shape[-1]
    eye = torch.eye(size, dtype=gram.dtype, device=gram.device)
    best = (gram * eye).sum(dim=2).argmax(dim=1)  # (N,): the largest diagonal entry
    column = gram.gather(2, best[:, None, None].expand(n, size, 1))[..., 0]  # (N, size)
    v = (x.transpose(1, 2) @ column[..., None])[..., 0] if pixels_side else column  # (N, K)
    projection = (x @ _unit(v)[..., None])[..., 0]  # (N, hw)
    return eigen_sign(projection, acts).reshape(n, h, w)


class ScoreCAM(CamMethod):
    """Score-CAM (Wang et al. 2020, Algorithm 1): each channel weighted by the score its mask earns.

    H^k = s(Up(A^k)), the channel upsampled to the input and min-max normalized to [0, 1]
    S_k^c = f^c(X o H^k) - f^c(X_b), f^c the softmax probability of class c
    alpha_k^c = exp(S_k^c) / sum_j exp(S_j^c)   (a softmax over the channels)
    L^c = ReLU(sum_k alpha_k^c A^k)

    The baseline term f^c(X_b) is the same for every channel, so the softmax over
    channels cancels it and it is not computed. A flat channel normalizes to the
    zero mask, so all flat channels (often half of them, after a ReLU) share one
    score, computed once. The other masked inputs run through the model in
    batches (``batch_size``: 64 on a GPU, 8 on the CPU, where larger batches
    fall out of the caches and cost 2 to 4 times more per image): one forward
    pass per channel (up to 1280 for EfficientNet-Lite0), so this is the one
    method that is far from real time.

    Paper: https://arxiv.org/abs/1910.01279
    """

    name = "scorecam"
    needs_grad = False
    needs_input = True

    @staticmethod
    def batch_size(device: torch.device) -> int:
        return 64 if device.type == "cuda" else 8

    def compute(self, cap: Capture) -> torch.Tensor:
        acts = cap.activation.detach().float()
        n, k, h, w = acts.shape
        module, x = cap.rerun()
        weights = torch.empty(n, k, device=acts.device)
        step = self.batch_size(x.device)
        with torch.no_grad():
            for i in range(n):
                masks = normalize_maps(upsample_maps(acts[i], spatial_size(x)))  # (K, H, W)
                live = masks.flatten(1).amax(dim=1) > 0
                index = live.nonzero()[:, 0]
                flat_score = self._scores(module, x[i:i + 1] * 0, int(cap.classes[i]))
                weights[i] = flat_score
                for start in range(0, len(index), step):
                    chunk = index[start:start + step]
                    weights[i, chunk] = self._scores(module, x[i:i + 1] * masks[chunk, None].to(x.dtype),
                                                     int(cap.classes[i]))
        alpha = torch.softmax(weights, dim=1)
        return F.relu(torch.einsum("nk,nkhw->nhw", alpha, acts))

    @staticmethod
    def _scores(module: torch.nn.Module, inputs: torch.Tensor, c: int) -> torch.Tensor:
        """f^c: the softmax probability of class c for each input."""
        return torch.softmax(module(inputs).float(), dim=1)[:, c]

    @classmethod
    def seconds_per_frame(cls, module: torch.nn.Module, x: torch.Tensor, channels: int) -> float:
        """The time one frame takes at most (every channel live), from timing one batch of masked forwards."""
        probe = cls.batch_size(x.device)
        batch = x[:1].expand(probe, *x.shape[1:]).contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            module(batch)  # warm-up
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
            start = time.perf_counter()
            module(batch)
            if x.device.type == "cuda":
                torch.cuda.synchronize(x.device)
        return (time.perf_counter() - start) / probe * (channels + 1)
