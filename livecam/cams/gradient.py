"""Methods that weight the activations by the class score's gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from livecam.cams.base import Capture, CamMethod


class GradCAM(CamMethod):
    """Grad-CAM (Selvaraju et al. 2017, eq. 1-2).

    alpha_k^c = (1/Z) sum_ij d y^c / d A_ij^k  (the spatial mean of the gradient)
    L^c = ReLU(sum_k alpha_k^c A^k)
    """

    name = "gradcam"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        grads = cap.gradients().float()
        acts = cap.activation.detach().float()
        alpha = grads.mean(dim=(2, 3), keepdim=True)
        return F.relu((alpha * acts).sum(dim=1))
