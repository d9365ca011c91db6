"""Methods that weight the activations by the class score's gradient."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from livecam.cams.base import Capture, CamMethod, safe_divide
from livecam.choices import FINER_REFERENCES


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
        return F.relu(channel_sum(cap.gradient_means(), cap.activation))


def channel_sum(alpha: torch.Tensor, activation: torch.Tensor) -> torch.Tensor:
    """sum_k alpha_k A^k, (N, h, w) float32, for channel weights (N, K, 1, 1): one (1 x K) @ (K x hw) product per
    sample."""
    acts = activation.detach().float()
    return torch.matmul(alpha.flatten(1)[:, None], acts.flatten(2)).reshape(acts.shape[0], *acts.shape[2:])


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


class CounterfactualGradCAM(CamMethod):
    """Counterfactual Grad-CAM (Selvaraju et al. 2017, section 3.3): the regions that speak against the class.

    Grad-CAM with the gradient negated, the evidence that would raise the class score if it were removed:
    alpha_k^c = (1/Z) sum_ij -d y^c / d A_ij^k
    L^c = ReLU(sum_k alpha_k^c A^k)

    It is the ReLU of minus Grad-CAM's map before its ReLU, so where one is positive the other is zero.

    Paper: https://arxiv.org/abs/1610.02391
    """

    name = "counterfactual"
    needs_grad = True

    def compute(self, cap: Capture) -> torch.Tensor:
        return F.relu(channel_sum(-cap.gradient_means(), cap.activation))


def finer_contrast(logits: torch.Tensor, classes: torch.Tensor, references: int = FINER_REFERENCES) -> torch.Tensor:
    """Finer-CAM's target as coefficients on the logits, (N, classes) float32: 1 on the class c, -q_j on each of
    its reference classes j, 0 elsewhere.

    The references are the ``references`` classes whose logits lie nearest y^c (for the top-1 class, the 2nd
    to the 4th by logit), fewer where the model has fewer other classes. q_j = p_j / sum_i p_i, p the softmax
    probabilities, which is the softmax over the references' own logits (so no probability underflows to 0/0).
    Taken as constants: the explained score is sum_j q_j (y^c - y^j) = y^c - sum_j q_j y^j. Written without
    data-dependent branches, so that it exports.
    """
    y = logits.detach().float()
    onehot = torch.zeros_like(y).scatter(1, classes[:, None], 1.0)
    count = min(references, y.shape[1] - 1)
    if count <= 0:
        return onehot
    distance = torch.where(onehot > 0, torch.full_like(y, float("inf")), (y - y.gather(1, classes[:, None])).abs())
    nearest = distance.topk(count, dim=1, largest=False).indices  # (N, count)
    q = torch.softmax(y.gather(1, nearest), dim=1)
    return onehot.scatter(1, nearest, -q)


class FinerCAM(GradCAM):
    """Finer-CAM (Zhang et al. 2025): Grad-CAM of the class against its most similar classes.

    With R the 3 classes whose logits lie nearest y^c and q_j = p_j / sum_{i in R} p_i (p: the softmax
    probabilities), the explained score is
    s = sum_{j in R} q_j (y^c - y^j) = y^c - sum_{j in R} q_j y^j   (comparison strength alpha = 1)
    alpha_k = (1/Z) sum_ij d s / d A_ij^k,   L = ReLU(sum_k alpha_k A^k)
    so what the class shares with its look-alikes cancels and what sets it apart remains. This is the
    authors' default target (their ``FinerWeightedTarget``, references ranked 1 to 3 by |y^j - y^c|); their
    code also differentiates through the weights q, livecam holds them constant, so that the gradient is
    that of a fixed comparison: for a GAP -> Linear head, (W_c - sum_j q_j W_j) / (h w).

    Paper: https://arxiv.org/abs/2501.11309
    """

    name = "finercam"
    needs_grad = True

    def contrast(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor | None:
        return finer_contrast(logits, classes)
