"""Losses of the upscaler as pure functions of the output and the photo ([B,3,H,W] in [-1,1])."""
from __future__ import annotations

import torch


def l1_loss(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference."""
    return (output - target).abs().mean()


def lpips_loss(lpips, output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean LPIPS distance (spadekit.eval.diversity.LPIPS, frozen; gradients reach `output`)."""
    return lpips(output, target).mean()


def upscaler_loss(output: torch.Tensor, target: torch.Tensor, lpips=None, l1_weight: float = 1.0,
                  lpips_weight: float = 0.0) -> tuple[torch.Tensor, dict[str, float]]:
    """l1_weight * L1 + lpips_weight * LPIPS; returns the total and each term's value for the log."""
    terms = {"l1": l1_loss(output, target)}
    total = l1_weight * terms["l1"]
    if lpips_weight:
        terms["lpips"] = lpips_loss(lpips, output, target)
        total = total + lpips_weight * terms["lpips"]
    return total, {k: float(v.detach()) for k, v in terms.items()}
