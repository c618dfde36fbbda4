"""Helpers for testing inflation on weights that make the checks meaningful."""

from __future__ import annotations

import copy
import dataclasses
import gc
import json
import math
import os
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import torch
from torch import nn

from .checks import ORDER_TOLERANCE

__all__ = ["randomize_weights", "randomize_zero_parameters", "timm_families", "FamilyCheck", "check_family",
           "SMALL_SIZES"]

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


# ----- one representative per timm model module (the family sweep) -----

def _count_parameters(name: str) -> Optional[int]:
    """Parameters of timm model ``name`` built on the meta device (no memory, no weights);
    None when it cannot be built there."""
    import timm

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = timm.create_model(name, pretrained=False)
    except Exception:  # noqa: BLE001  (a model that needs real tensors at build time is simply not counted)
        return None
    return sum(p.numel() for p in model.parameters())


def timm_families(cache: Optional[str | os.PathLike[str]] = None, refresh: bool = False) -> dict[str, str]:
    """One representative per timm model module ("family"): module name → model name.

    The representative is the module's smallest model by parameter count (built on the meta
    device), ties broken by name, so the choice is reproducible for a timm version. Counting
    builds every registered model (minutes on 2 cores); ``cache`` is a JSON file that keeps
    the table with its timm version. An existing cache is read, for another timm version too
    (its models that this timm lacks are dropped), unless ``refresh``: then, or when it is
    missing, the table is computed and written there. Modules none of whose models can be
    built are left out.
    """
    import timm
    from timm.models import _registry

    path = Path(cache) if cache is not None else None
    if path is not None and path.is_file() and not refresh:
        stored = json.loads(path.read_text())
        return {family: entry["model"] for family, entry in stored["families"].items()
                if stored.get("timm") == timm.__version__ or timm.is_model(entry["model"])}
    current = set(timm.list_models())  # registered models, without deprecated aliases
    by_module: dict[str, list[str]] = {}
    for name, module in _registry._model_to_module.items():
        if name in current:
            by_module.setdefault(module, []).append(name)
    families: dict[str, dict[str, Any]] = {}
    for module in sorted(by_module):
        counted = [(count, name) for name in sorted(by_module[module])
                   if (count := _count_parameters(name)) is not None]
        if counted:
            count, name = min(counted)
            families[module] = {"model": name, "params": count}
    if path is not None:
        temporary = path.with_name(path.name + ".tmp")
        temporary.write_text(json.dumps({"timm": timm.__version__, "families": families}, indent=1) + "\n")
        os.replace(temporary, path)
    return {family: entry["model"] for family, entry in families.items()}


SMALL_SIZES = (128, 112)
"""Frame sizes tried for the small-size check, first the one the 2D model accepts."""


@dataclass(frozen=True)
class FamilyCheck:
    """The sweep's verdict on one timm family at one frame size.

    ``boring_error`` is max |out_3d − out_2d| / max |out_2d| on a boring clip; ``threshold``
    is max(1e-4, 10 × ``float64_error``), the 2D model's own float32-vs-float64 error on the
    same image, so a family whose float32 output is itself noisy is not failed for noise;
    ``order_effect`` is :func:`inflate.checks.check_order_sensitivity`'s largest effect of
    reordering the frames relative to a different clip's. ``frame_wise`` names the ops that
    run frame by frame (no rule), ``error`` the exception that stopped a step (one line),
    ``skipped`` why no check ran at this size (the 2D model refuses it). ``seconds`` is the
    conversion time.
    """

    family: str
    model: str
    size: tuple[int, int]
    boring_error: float = math.nan
    threshold: float = math.nan
    float64_error: float = math.nan
    order_effect: float = math.nan
    reversal_effect: float = math.nan
    frame_wise: tuple[str, ...] = ()
    error: str = ""
    skipped: str = ""
    seconds: float = math.nan

    @property
    def passed(self) -> bool:
        return not (self.error or self.skipped or self.frame_wise) and self.boring_error <= self.threshold \
            and self.order_effect >= ORDER_TOLERANCE

    @property
    def status(self) -> str:
        """"pass"; "frame-wise" (exact and order-sensitive, but some ops run frame by frame);
        "skip" (the 2D model refuses the size); or "fail"."""
        if self.passed:
            return "pass"
        if self.skipped:
            return "skip"
        if self.frame_wise and not self.error and self.boring_error <= self.threshold \
                and self.order_effect >= ORDER_TOLERANCE:
            return "frame-wise"
        return "fail"

    @property
    def reason(self) -> str:
        """Why the family does not pass at this size, in one line ("" when it passes)."""
        if self.skipped:
            return f"skipped: {self.skipped}"
        if self.error:
            return self.error
        reasons = []
        if self.frame_wise:
            shown = ", ".join(self.frame_wise[:3]) + (f" (+{len(self.frame_wise) - 3} more)"
                                                      if len(self.frame_wise) > 3 else "")
            reasons.append(f"frame-wise: {shown}")
        if not self.boring_error <= self.threshold:
            reasons.append(f"boring-video error {self.boring_error:.3g} > {self.threshold:.3g}")
        if not self.order_effect >= ORDER_TOLERANCE:
            reasons.append(f"order effect {self.order_effect:.3g} < {ORDER_TOLERANCE:g}")
        return "; ".join(reasons)


def one_line(error: BaseException) -> str:
    """An exception as ``Type: first line of its message`` (at most 200 characters)."""
    lines = str(error).strip().splitlines()
    text = f"{type(error).__name__}: {lines[0] if lines else ''}"
    return text if len(text) <= 200 else text[:197] + "..."


@torch.no_grad()
def float64_error(model2d: nn.Module, image: torch.Tensor) -> float:
    """max |out_float32 − out_float64| / max |out_float64| of a float32 model on ``image``:
    the rounding its own arithmetic carries, the floor for any comparison with it."""
    from .checks import _first_tensor

    out32 = _first_tensor(model2d(image)).double()
    model64 = copy.deepcopy(model2d).double()
    try:
        out64 = _first_tensor(model64(image.double()))
    finally:
        del model64
    return float((out32 - out64).abs().max() / out64.abs().max().clamp_min(1e-30))


def _check_at_size(family: str, name: str, model2d: nn.Module, model3d: nn.Module,
                      frame_wise: tuple[str, ...], size: tuple[int, int], t: int = 8, seed: int = 0,
                      seconds: float = math.nan) -> FamilyCheck:
    """Boring-video error (against max(1e-4, 10 × the float64 error)) and order effect of an
    inflated family at one (H, W); exceptions become ``error`` (never raised)."""
    from .checks import check_boring_video, check_order_sensitivity

    channels = _native_input_size(model2d)[0]
    generator = torch.Generator().manual_seed(seed)
    device = next(model2d.parameters()).device
    image = torch.randn(1, channels, *size, generator=generator).to(device)
    clip = torch.randn(1, channels, t, *size, generator=generator).to(device)
    result = FamilyCheck(family, name, size, frame_wise=frame_wise, seconds=seconds)
    try:
        rounding = float64_error(model2d, image)
    except Exception:  # noqa: BLE001  (a model without float64 kernels: the plain floor)
        rounding = math.nan
    threshold = max(1e-4, 10 * rounding) if math.isfinite(rounding) else 1e-4
    result = dataclasses.replace(result, float64_error=rounding, threshold=threshold)
    try:
        boring = check_boring_video(model2d, model3d, t=t, image=image, tolerance=threshold)
        result = dataclasses.replace(result, boring_error=boring.max_rel_error)
        order = check_order_sensitivity(model3d, clip)
        return dataclasses.replace(result, order_effect=order.relative_change, reversal_effect=order.reversal_change)
    except Exception as error:  # noqa: BLE001  (the sweep reports every failure and goes on)
        return dataclasses.replace(result, error=one_line(error))


def _native_input_size(model: nn.Module) -> tuple[int, int, int]:
    from .adapters.torch import default_input_size

    return default_input_size(model)


@torch.no_grad()
def small_size(model2d: nn.Module, sizes: tuple[int, ...] = SMALL_SIZES) -> tuple[Optional[int], str]:
    """The first of ``sizes`` (square) that the 2D model runs on, else None and why."""
    channels = _native_input_size(model2d)[0]
    errors = []
    for side in sizes:
        try:
            model2d(torch.zeros(1, channels, side, side, device=next(model2d.parameters()).device))
            return side, ""
        except Exception as error:  # noqa: BLE001
            errors.append(one_line(error))
    return None, f"the 2D model refuses {' and '.join(f'{s}²' for s in sizes)} ({errors[-1]})"


def check_family(family: str, name: str, t: int = 8, *, native: bool = True, small: bool = True,
                 seed: int = 0, device: str | torch.device = "cpu") -> list[FamilyCheck]:
    """Build timm model ``name`` (random weights, :func:`randomize_weights`), inflate it
    (non-strict) and check it at its native size and at a small one (:data:`SMALL_SIZES`).

    Everything runs on ``device`` (the model is built on the CPU, then moved).
    Returns one :class:`FamilyCheck` per size asked for; never raises for a model's failure.
    """
    import timm

    from .adapters.torch import inflate_model

    results: list[FamilyCheck] = []
    try:
        with torch.random.fork_rng():  # timm initialises from the global generator: seed it, then restore it
            torch.manual_seed(seed)
            model2d = timm.create_model(name, pretrained=False).eval().to(device)
        model2d = randomize_weights(model2d, seed=seed + 1)
    except Exception as error:  # noqa: BLE001
        failed = FamilyCheck(family, name, (0, 0), error=f"2D model: {one_line(error)}")
        return [failed] * (int(native) + int(small))
    native_size = tuple(_native_input_size(model2d)[1:])
    side, why = small_size(model2d) if small else (None, "")
    try:
        start = time.perf_counter()
        model3d, report = inflate_model(model2d, t=t, strict=False, return_report=True)
        seconds = time.perf_counter() - start
    except Exception as error:  # noqa: BLE001
        message = f"conversion: {one_line(error)}"
        if native:
            results.append(FamilyCheck(family, name, native_size, error=message))
        if small:
            results.append(FamilyCheck(family, name, (side, side), error=message) if side else
                           FamilyCheck(family, name, (0, 0), skipped=why))
        return results
    frame_wise = tuple(f"{r.path} ({r.op2d})" for r in report.frame_wise)
    if native:
        results.append(_check_at_size(family, name, model2d, model3d, frame_wise, native_size, t, seed, seconds))
    if small:
        if side is None:
            results.append(FamilyCheck(family, name, (0, 0), frame_wise=frame_wise, skipped=why, seconds=seconds))
        else:
            results.append(_check_at_size(family, name, model2d, model3d, frame_wise, (side, side), t, seed,
                                          seconds))
    del model3d, model2d
    gc.collect()
    return results
