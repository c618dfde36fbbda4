"""Helpers for testing inflation on weights that make the checks meaningful."""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

__all__ = ["randomize_weights", "randomize_zero_parameters"]

_NORM_PREFIXES = ("LayerNorm", "GroupNorm", "BatchNorm", "RmsNorm")


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm)) or \
        type(module).__name__.startswith(_NORM_PREFIXES)


@torch.no_grad()
def _calibrate_batch_norm(model: nn.Module, input_size: tuple[int, int, int], generator: torch.Generator) -> None:
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    if not norms:
        return
    momenta = [bn.momentum for bn in norms]
    was_training = model.training
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # cumulative average: the stats of exactly this batch
    model.train()
    try:
        p = next(model.parameters())
        model(torch.randn(4, *input_size, generator=generator).to(p.device, p.dtype))
    finally:
        model.train(was_training)
        for bn, momentum in zip(norms, momenta):
            bn.momentum = momentum


@torch.no_grad()
def randomize_weights(model: nn.Module, seed: int = 0, input_size: Optional[tuple[int, int, int]] = None) -> nn.Module:
    """Give norms and zero- or near-zero-initialised parameters random values, in place.

    timm zero-initialises the last BN gamma of residual blocks and sets layer-scale to
    1e-6, and fresh BN layers hold mean 0 / var 1: a fresh model passes a boring-video
    check without testing much. Random running statistics alone do not help either: in a
    deep network whose BN statistics do not match its activations the signal dies, and the
    output stops depending on the input (random inception_v4: 2e-7 relative between two
    images). So the running statistics are first measured on a random batch (``input_size``,
    default timm's), then perturbed: mean + N(0, 0.05)·std, var × U(0.8, 1.25); norm gammas
    are U(0.75, 1.25) and shifts 0.5 + N(0, 0.1). A randomly initialised BN-ReLU network is
    chaotic (relative perturbations grow ~1.4× per block, the gradient explosion of BN at
    init): with zero-mean shifts, float32 rounding alone moves the logits of inception_v4
    by up to 1e-3 relative. Positive shifts keep most ReLUs active, as in trained networks,
    and the rounding floor near 1e-6.
    """
    generator = torch.Generator().manual_seed(seed)

    def uniform(shape: torch.Size, low: float, high: float) -> torch.Tensor:
        return torch.rand(shape, generator=generator) * (high - low) + low

    for name, param in model.named_parameters():
        if param.numel() and float(param.abs().max()) < 1e-4:
            if param.dim() <= 1 and ("gamma" in name or "scale" in name):
                param.copy_(uniform(param.shape, 0.5, 1.5))
            else:
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    for module in model.modules():
        if _is_norm(module):
            if getattr(module, "weight", None) is not None:
                module.weight.copy_(uniform(module.weight.shape, 0.75, 1.25))
            if getattr(module, "bias", None) is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1 + 0.5)
    if input_size is None:
        from .adapters.torch import default_input_size

        input_size = default_input_size(model)
    _calibrate_batch_norm(model, input_size, generator)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.track_running_stats:
            std = module.running_var.sqrt()
            module.running_mean.add_(torch.randn(std.shape, generator=generator) * 0.05 * std)
            module.running_var.mul_(uniform(module.running_var.shape, 0.8, 1.25))
    return model


@torch.no_grad()
def randomize_zero_parameters(model: nn.Module, seed: int = 0, scale: float = 0.5) -> list[str]:
    """Give every all-zero parameter N(0, scale²) values, in place; returns their names.

    An inflated model's new temporal parameters (a transformer's temporal embedding, the
    output projection of divided attention) start at zero so that the model starts as the
    image model; this stands in for training them before a frame-order check.
    """
    generator = torch.Generator().manual_seed(seed)
    names = []
    for name, param in model.named_parameters():
        if param.numel() and not param.any():
            param.copy_(torch.randn(param.shape, generator=generator).to(param.dtype) * scale)
            names.append(name)
    return names
