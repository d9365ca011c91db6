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


class GradCAMPlusPlus(CamMethod):
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19), with the exponential of the score.

    With Y^c = exp(S^c) and a piecewise-linear network, the second and third
    derivatives of Y^c are powers of g = d S^c / d A (times exp(S^c), which cancels):
    alpha_ij^k = g_ij^2 / (2 g_ij^2 + sum_ab A_ab^k g_ij^3)   (0 where the denominator is 0)
    w_k = sum_ij alpha_ij^k ReLU(g_ij^k)
    L^c = ReLU(sum_k w_k A^k)
    """

    name = "gradcampp"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        g = cap.gradients().float()
        acts = cap.activation.detach().float()
        g2 = g * g
        denominator = 2.0 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g2 * g
        safe = torch.where(denominator != 0, denominator, torch.ones_like(denominator))
        alpha = torch.where(denominator != 0, g2 / safe, torch.zeros_like(g2))
        weights = (alpha * F.relu(g)).sum(dim=(2, 3), keepdim=True)
        return F.relu((weights * acts).sum(dim=1))


class XGradCAM(CamMethod):
    """XGrad-CAM (Fu et al. 2020): gradients weighted by the normalized activations.

    alpha_k = sum_ij (A_ij^k / sum_ab A_ab^k) g_ij^k   (0 where sum_ab A_ab^k is 0)
    L^c = ReLU(sum_k alpha_k A^k)
    """

    name = "xgradcam"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        g = cap.gradients().float()
        acts = cap.activation.detach().float()
        total = acts.sum(dim=(2, 3), keepdim=True)
        safe = torch.where(total != 0, total, torch.ones_like(total))
        alpha = torch.where(total != 0, (acts / safe * g).sum(dim=(2, 3), keepdim=True), torch.zeros_like(total))
        return F.relu((alpha * acts).sum(dim=1))


class LayerCAM(CamMethod):
    """LayerCAM (Jiang et al. 2021): a weight per pixel, so it works on earlier layers too.

    L^c_ij = ReLU(sum_k ReLU(g_ij^k) A_ij^k)
    """

    name = "layercam"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        g = cap.gradients().float()
        return F.relu((F.relu(g) * cap.activation.detach().float()).sum(dim=1))


class HiResCAM(CamMethod):
    """HiResCAM (Draelos & Carin 2020): the gradient times the activation, no spatial averaging.

    L^c_ij = ReLU(sum_k g_ij^k A_ij^k)   (the ReLU keeps positive evidence, as in Grad-CAM)
    """

    name = "hirescam"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        g = cap.gradients().float()
        return F.relu((g * cap.activation.detach().float()).sum(dim=1))
