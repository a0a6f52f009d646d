"""Colour preservation (Gatys et al. 2016, "Preserving color in neural artistic style transfer"):
keep the content's chroma, take the luminance from the stylized image. YIQ, as neural-style's
``-original_colors`` and scikit-image's ``rgb2yiq``."""

from __future__ import annotations

import torch

__all__ = ["match_colors", "rgb_to_yiq", "transfer_luminance", "yiq_to_rgb"]

# the matrix of skimage.color.rgb2yiq
_YIQ = torch.tensor(
    [[0.299, 0.587, 0.114], [0.59590059, -0.27455667, -0.32134392], [0.21153661, -0.52273617, 0.31119955]],
    dtype=torch.float64,
)


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    """``(3, H, W)`` or ``(B, 3, H, W)`` RGB to YIQ (channel 0 is luminance, 1 and 2 are chroma)."""
    m = _YIQ.to(image.device, image.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    """The inverse of :func:`rgb_to_yiq`: ``(..., 3, H, W)`` YIQ back to RGB."""
    m = torch.linalg.inv(_YIQ).to(image.device, image.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, image)


def transfer_luminance(styled: torch.Tensor, content: torch.Tensor) -> torch.Tensor:
    """The luminance (Y) of ``styled`` with the chroma (I, Q) of ``content``, clamped to [0, 1]."""
    if content.shape[-2:] != styled.shape[-2:]:
        import torch.nn.functional as F

        batch = content if content.dim() == 4 else content.unsqueeze(0)
        content = F.interpolate(batch, size=styled.shape[-2:], mode="bilinear", align_corners=False)
        content = content if styled.dim() == 4 else content[0]
    y = rgb_to_yiq(styled)
    c = rgb_to_yiq(content)
    mixed = torch.cat([y[..., :1, :, :], c[..., 1:, :, :]], dim=-3)
    return yiq_to_rgb(mixed).clamp(0, 1)


def match_colors(image: torch.Tensor, references: list[torch.Tensor], weights: list[float] | None = None) -> torch.Tensor:
    """``image`` ``(1, 3, H, W)`` with its colours' mean and covariance matched to those of
    ``references`` (blended with ``weights``): ``x -> L_r L_i^-1 (x - mu_i) + mu_r`` with the Cholesky
    factors ``L`` of the covariances, the linear colour transfer of Gatys et al. (2017, "Controlling
    perceptual factors in neural style transfer", section 5.1); clamped to [0, 1]. A grey image is
    returned as it is."""
    if image.shape[-3] != 3:
        return image.clone()
    weights = [1.0 / len(references)] * len(references) if weights is None else weights
    pixels = image.reshape(3, -1).double()
    mean, moment = torch.zeros(3, 1, dtype=torch.float64), torch.zeros(3, 3, dtype=torch.float64)
    for w, ref in zip(weights, references):
        r = ref.reshape(3, -1).double()
        mean = mean + w * r.mean(1, keepdim=True)
        moment = moment + w * (r @ r.T) / r.shape[1]
    eye = 1e-5 * torch.eye(3, dtype=torch.float64)
    target = torch.linalg.cholesky(moment - mean @ mean.T + eye)
    own = torch.linalg.cholesky(torch.cov(pixels) + eye)
    centred = pixels - pixels.mean(1, keepdim=True)
    out = target @ torch.linalg.solve_triangular(own, centred, upper=False) + mean
    return out.reshape(image.shape).to(image.dtype).clamp(0, 1)
