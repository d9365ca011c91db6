"""Methods that weight the activations by the class score's gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from livecam.cams.base import Capture, CamMethod, safe_divide


def _grads_and_acts(cap: Capture) -> tuple[torch.Tensor, torch.Tensor]:
    """g = d y^c / d A and A, both float32 whatever the model runs in."""
    return cap.gradients().float(), cap.activation.detach().float()


class GradCAM(CamMethod):
    """Grad-CAM (Selvaraju et al. 2017, eq. 1-2).

    alpha_k^c = (1/Z) sum_ij d y^c / d A_ij^k  (the spatial mean of the gradient)
    L^c = ReLU(sum_k alpha_k^c A^k)

    Paper: https://arxiv.org/abs/1610.02391
    """

    name = "gradcam"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        alpha = cap.gradient_means()  # (N, K, 1, 1)
        acts = cap.activation.detach().float()
        # sum_k alpha_k A^k as one (1 x K) @ (K x hw) product per sample
        return F.relu(torch.matmul(alpha.flatten(1)[:, None], acts.flatten(2)).reshape(acts.shape[0], *acts.shape[2:]))


class GradCAMPlusPlus(CamMethod):
    """Grad-CAM++ (Chattopadhay et al. 2018, eq. 19), with the exponential of the score.

    With Y^c = exp(S^c) and a piecewise-linear network, the second and third
    derivatives of Y^c are powers of g = d S^c / d A (times exp(S^c), which cancels):
    alpha_ij^k = g_ij^2 / (2 g_ij^2 + sum_ab A_ab^k g_ij^3)   (0 where the denominator is 0)
    w_k = sum_ij alpha_ij^k ReLU(g_ij^k)
    L^c = ReLU(sum_k w_k A^k)

    Paper: https://arxiv.org/abs/1710.11063
    """

    name = "gradcampp"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        g, acts = _grads_and_acts(cap)
        g2 = g * g
        alpha = safe_divide(g2, 2.0 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g2 * g)
        weights = (alpha * F.relu(g)).sum(dim=(2, 3), keepdim=True)
        return F.relu((weights * acts).sum(dim=1))


class XGradCAM(CamMethod):
    """XGrad-CAM (Fu et al. 2020): gradients weighted by the normalized activations.

    alpha_k = sum_ij (A_ij^k / sum_ab A_ab^k) g_ij^k   (0 where sum_ab A_ab^k is 0)
    L^c = ReLU(sum_k alpha_k A^k)

    Paper: https://arxiv.org/abs/2008.02312
    """

    name = "xgradcam"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        g, acts = _grads_and_acts(cap)
        alpha = (safe_divide(acts, acts.sum(dim=(2, 3), keepdim=True)) * g).sum(dim=(2, 3), keepdim=True)
        return F.relu((alpha * acts).sum(dim=1))


class LayerCAM(CamMethod):
    """LayerCAM (Jiang et al. 2021): a weight per pixel, so it works on earlier layers too.

    L^c_ij = ReLU(sum_k ReLU(g_ij^k) A_ij^k)

    Paper: http://mftp.mmcheng.net/Papers/21TIP_LayerCAM.pdf
    """

    name = "layercam"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        g, acts = _grads_and_acts(cap)
        return F.relu((F.relu(g) * acts).sum(dim=1))


class HiResCAM(CamMethod):
    """HiResCAM (Draelos & Carin 2020): the gradient times the activation, no spatial averaging.

    L^c_ij = ReLU(sum_k g_ij^k A_ij^k)   (the ReLU keeps positive evidence, as in Grad-CAM)

    Paper: https://arxiv.org/abs/2011.08891
    """

    name = "hirescam"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        g, acts = _grads_and_acts(cap)
        return F.relu((g * acts).sum(dim=1))
