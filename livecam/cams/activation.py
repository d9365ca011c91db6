"""Methods computed from the activations alone, with no backward pass."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from livecam.cams.base import Capture, CamMethod
from livecam.errors import LivecamError
from livecam.zoo.analysis import GAP_LINEAR, Head


class CAM(CamMethod):
    """CAM (Zhou et al. 2016): M_c = sum_k w_k^c A^k, from the Linear head's weights.

    Only for heads that are global average pooling -> (dropout) -> one Linear
    layer, where w^c is row c of that layer's weight. Like Grad-CAM the map is
    passed through a ReLU, so that for such heads CAM and Grad-CAM agree after
    normalization (Grad-CAM's alpha_k^c is then w_k^c / Z at every pixel).
    """

    name = "cam"
    needs_grad = False

    def __init__(self, head: Head) -> None:
        if head.kind != GAP_LINEAR or head.linear is None:
            raise LivecamError(
                f"CAM needs a head of global average pooling and one Linear layer, and this model's is not: "
                f"{head.reason}; use --method gradcam"
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
    """

    name = "eigencam"
    needs_grad = False

    def compute(self, cap: Capture) -> torch.Tensor:
        acts = cap.activation.detach().float()
        n, k, h, w = acts.shape
        x = acts.reshape(n, k, h * w).transpose(1, 2)  # (N, hw, K)
        x = x - x.mean(dim=1, keepdim=True)
        _, _, vh = torch.linalg.svd(x, full_matrices=False)
        projection = (x @ vh[:, 0, :, None])[..., 0]  # (N, hw)
        mean_act = acts.mean(dim=1).reshape(n, h * w)
        centred = mean_act - mean_act.mean(dim=1, keepdim=True)
        sign = torch.where((projection * centred).sum(dim=1, keepdim=True) < 0, -1.0, 1.0)
        return (projection * sign).reshape(n, h, w)
