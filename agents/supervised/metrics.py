"""Image-quality metrics of predicted frames, per frame: MSE, PSNR and SSIM (the world-model papers' metrics).

Frames are ``(..., C, H, W)`` floats in [0, 1]; every function returns one value per frame, shape ``(...)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

SSIM_WINDOW, SSIM_SIGMA = 11, 1.5
C1, C2 = 0.01 ** 2, 0.03 ** 2


def mse(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean squared error per frame."""
    return (predicted.float() - target.float()).pow(2).mean((-3, -2, -1))


def psnr(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio per frame in dB (peak 1; a perfect frame is capped at 100 dB)."""
    return 10 * torch.log10(1.0 / mse(predicted.clamp(0, 1), target).clamp_min(1e-10))


def ssim(predicted: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Structural similarity per frame (Wang et al. 2004: an 11-px Gaussian window of sigma 1.5, averaged over
    channels and pixels; frames smaller than the window use a window of their size)."""
    shape = predicted.shape
    x = predicted.float().clamp(0, 1).reshape(-1, 1, *shape[-2:])
    y = target.float().reshape(-1, 1, *shape[-2:])
    size = min(SSIM_WINDOW, shape[-2], shape[-1])
    grid = torch.arange(size, dtype=torch.float32, device=x.device) - (size - 1) / 2
    gauss = torch.exp(-grid ** 2 / (2 * SSIM_SIGMA ** 2))
    gauss = gauss / gauss.sum()
    window = (gauss[:, None] * gauss[None, :])[None, None]

    def blur(z: torch.Tensor) -> torch.Tensor:
        return F.conv2d(z, window)

    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x ** 2
    var_y = blur(y * y) - mu_y ** 2
    cov = blur(x * y) - mu_x * mu_y
    value = ((2 * mu_x * mu_y + C1) * (2 * cov + C2)) / ((mu_x ** 2 + mu_y ** 2 + C1) * (var_x + var_y + C2))
    return value.mean((-2, -1)).view(*shape[:-3], shape[-3]).mean(-1)
