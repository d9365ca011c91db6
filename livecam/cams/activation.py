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
