"""Steps several commands share: building the 2D model and inflating it with a progress bar."""

from __future__ import annotations

import fnmatch
import json
import re
import warnings
from pathlib import Path
from typing import Any, Optional, Sequence

import typer
from torch import nn

from ..core.errors import InvalidInputError
from ..core.geometry import check_clip_length
from ..core.metadata import MAX_NUM_CLASSES, MAX_TIME_KERNEL


def build_2d(model: str, pretrained: bool, weights: Optional[Path], num_classes: Optional[int]) -> nn.Module:
    from ..models import create_2d_model

    if pretrained and weights is not None:
        raise InvalidInputError("give either --pretrained or --weights FILE, not both")
    return create_2d_model(model, pretrained=pretrained, weights=weights, num_classes=num_classes)


def parse_overrides(items: Optional[list[str]]) -> Optional[dict[str, dict[str, int]]]:
    """--override 'PATTERN=K[:S]' values → the policy's override table."""
    if not items:
        return None
    table: dict[str, dict[str, int]] = {}
    for item in items:
        pattern, sep, value = item.rpartition("=")
        # ASCII digits only: str.isdigit accepts "²", which int() then refuses.
        match = re.fullmatch(r"([0-9]+)(?::([0-9]+))?", value)
        if not sep or not pattern or match is None or int(match[1]) < 1 or (match[2] is not None and int(match[2]) < 1):
            raise InvalidInputError(f"--override {item!r}: expected PATTERN=K or PATTERN=K:S with integers K, S >= 1")
        if int(match[1]) > MAX_TIME_KERNEL or int(match[2] or 1) > MAX_TIME_KERNEL:
            raise InvalidInputError(f"--override {item!r}: a time kernel or stride spans at most {MAX_TIME_KERNEL} "
                                    "frames (each frame of kernel is another copy of the 2D weights)")
        table[pattern] = {"kernel": int(match[1]), "stride": int(match[2] or 1)}
    return table


def validate_time(t: int) -> None:
    check_clip_length(t, "--time")


DEFAULT_POLICY = "i3d"


def validate_policy(policy: Optional[str], init: Optional[str], pad_mode: Optional[str], attention: Optional[str],
                    tubelet: Optional[int]) -> Any:
    """Resolve the policy options once, before any slow step, so that a typo fails at once.

    ``policy`` None is :data:`DEFAULT_POLICY`; ``init`` None is the policy's own. Returns
    the resolved :class:`~inflate.core.policy.Policy` (its ``name`` and ``init`` are what
    the command reports).
    """
    from ..core import get_policy

    if tubelet is not None and tubelet < 1:
        raise InvalidInputError(f"--tubelet must be >= 1 frame, got {tubelet}")
    return get_policy(policy or DEFAULT_POLICY, init=init, pad_mode=pad_mode, attention=attention, tubelet=tubelet)


def refuse_options(given: list[tuple[str, object]], what: str, fix: str) -> None:
    """Refuse the first option of ``given`` (name, value) that was set (a value other than
    None or False): it does not apply to ``what``. One line: the option, why, ``fix``."""
    names = [f"{name} {value}" if isinstance(value, (int, str)) and not isinstance(value, bool) else name
             for name, value in given if value is not None and value is not False]
    if names:
        raise InvalidInputError(f"{names[0]} does not apply to {what}; {fix}")


def validate_num_classes(num_classes: Optional[int]) -> None:
    if num_classes is not None and num_classes < 0:
        raise InvalidInputError(f"--num-classes must be >= 0 (0: no classifier, features out), got {num_classes}")
    if num_classes is not None and num_classes > MAX_NUM_CLASSES:
        raise InvalidInputError(f"--num-classes {num_classes}: at most {MAX_NUM_CLASSES:,} (the classifier alone "
                                "would not fit in memory)")


def patch_embeddings(model2d: nn.Module) -> list[tuple[str, nn.Module]]:
    """The patch embeddings the torch adapter turns into tubelet embeddings (timm's PatchEmbed
    that flattens to tokens or keeps NHWC without dynamic padding, PiT's conv embedding)."""
    from timm.layers import PatchEmbed
    from timm.models import pit

    found = []
    for name, module in model2d.named_modules():
        if type(module) is PatchEmbed and not getattr(module, "dynamic_img_pad", False):
            found.append((name, module))
        elif type(module) is pit.ConvEmbedding:
            found.append((name, module))
    return found


def check_tubelet(model_name: str, model2d: nn.Module, t: int, policy: str, tubelet: Optional[int]) -> None:
    """Before any slow step: a transformer's clip length must be a whole number of tubelets,
    and --tubelet must have a patch embedding to apply to."""
    from ..core import get_policy

    embeddings = patch_embeddings(model2d)  # --tubelet's range was checked by validate_policy
    if not embeddings:
        if tubelet is not None:
            raise InvalidInputError(f"--tubelet {tubelet} does not apply: {model_name} has no patch embedding "
                                    "(it is for transformers); leave it out")
        return
    size = get_policy(policy, tubelet=tubelet).tubelet
    if t % size:
        below, above = (t // size) * size, (t // size + 1) * size
        nearest = above if below < 1 or above - t <= t - below else below
        raise InvalidInputError(
            f"-t {t} is not a multiple of the tubelet size {size} of {model_name}'s patch embedding "
            f"('{embeddings[0][0]}'): the model could not run its own clip length. Use -t {nearest} (the nearest "
            f"valid t), or a --tubelet that divides {t}")


def check_options_apply(model_name: str, report: Any, t: int, attention: Optional[str],
                        overrides: Optional[dict[str, dict[str, int]]]) -> None:
    """After inflation, before anything is written or checked: refuse options that changed
    nothing (an --attention on a model with no attention, an --override matching no layer),
    and warn about an override whose temporal kernel is longer than the clip."""
    layers = report.layers
    if attention is not None and not any("SpaceTimeAttention" in r.op3d or "attention" in r.op2d.lower()
                                         for r in layers):
        raise InvalidInputError(f"--attention {attention} does not apply: {model_name} has no attention layers "
                                "(it is for transformers); leave it out")
    for pattern, value in (overrides or {}).items():
        if not any(fnmatch.fnmatchcase(r.path, pattern) for r in layers):
            close = [r.path for r in layers if r.how == "inflated"][:3]
            raise InvalidInputError(f"--override {pattern}={value['kernel']}: the pattern matches no layer of "
                                    f"{model_name} (layer paths look like {', '.join(close)}; "
                                    "`inflate check MODEL` prints them all)")
        if value["kernel"] > t:
            warnings.warn(f"--override {pattern}={value['kernel']}: a temporal kernel of {value['kernel']} is longer "
                          f"than the clip (t={t}); its outer taps see only padding", stacklevel=2)


def _available_memory() -> tuple[int, str]:
    """Bytes this process may still allocate: MemAvailable, or the cgroup's limit if lower."""
    available, where = 1 << 62, "unknown"
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    available, where = int(line.split()[1]) * 1024, "available memory"
    except (OSError, ValueError, IndexError):
        pass
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = int(Path("/sys/fs/cgroup/memory.current").read_text().strip())
        if limit != "max" and int(limit) - used < available:
            available, where = int(limit) - used, "memory left under the cgroup limit"
    except (OSError, ValueError):
        pass
    return available, where


def frame_bytes(model2d: nn.Module, input_size: tuple[int, int, int]) -> tuple[int, int]:
    """(input bytes, largest single activation in bytes) of one frame through the 2D model
    (float32): a 3D model holds at least both for every frame of a clip."""
    import torch

    largest = 0

    def record(module: nn.Module, inputs: Any, output: Any) -> None:
        nonlocal largest
        for value in (output if isinstance(output, (tuple, list)) else (output,)):
            if isinstance(value, torch.Tensor):
                largest = max(largest, value.numel() * value.element_size())

    handles = [m.register_forward_hook(record) for m in model2d.modules() if not list(m.children())]
    try:
        was_training = model2d.training
        model2d.eval()
        with torch.no_grad():
            model2d(torch.zeros(1, *input_size))
        model2d.train(was_training)
    finally:
        for handle in handles:
            handle.remove()
    return 4 * input_size[0] * input_size[1] * input_size[2], largest


def check_memory(model_name: str, model2d: Optional[nn.Module], t: int, input_size: tuple[int, int, int],
                 what: str) -> None:
    """Refuse a clip length whose activations cannot fit in memory, before allocating them.

    The figure is a lower bound: t × (one frame's input + the 2D model's largest activation
    on one frame). Only measured when the clip alone is within 1/64 of the memory left.
    """
    available, where = _available_memory()
    image = 4 * input_size[0] * input_size[1] * input_size[2]
    if t * image * 64 < available:
        return
    image, largest = frame_bytes(model2d, input_size) if model2d is not None else (image, 0)
    need = t * (image + largest)
    if need > available:
        frames = max(1, available // max(1, image + largest))
        raise InvalidInputError(
            f"-t {t} needs at least {human_bytes(need)} of memory to {what} {model_name} at "
            f"{'x'.join(map(str, input_size))} ({human_bytes(image + largest)} per frame), more than the "
            f"{human_bytes(available)} of {where}; use a smaller -t (at most about {frames} frames here)")


def is_3d_preset(name: str) -> bool:
    from ..models import MODELS_3D, list_presets

    list_presets()  # loads the presets
    return name in MODELS_3D


def build_3d_preset(name: str, t: int, weights: Optional[Path], num_classes: Optional[int], pad_mode: Optional[str]) -> nn.Module:
    """A ready 3D model (i3d_rgb, ...) with its weights; the preset's own policy applies."""
    from ..models import create_model

    kwargs: dict[str, Any] = {"t": t}
    if weights is not None:
        kwargs["weights"] = weights
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    if pad_mode is not None:
        kwargs["pad_mode"] = pad_mode
    return create_model(name, **kwargs)


def inflate_with_progress(model2d: nn.Module, t: int, show: bool, **kwargs: Any) -> tuple[nn.Module, Any]:
    from ..adapters.torch import inflate_model

    if not show or not _stderr().is_terminal:  # no bar (nor the blank line it leaves) in pipes and logs
        return inflate_model(model2d, t=t, return_report=True, **kwargs)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total} nodes"),
                  TimeElapsedColumn(), transient=True, console=_stderr()) as bar:
        task = bar.add_task("inflating", total=None)

        def update(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        return inflate_model(model2d, t=t, return_report=True, progress=update, **kwargs)


def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True)


def emit(payload: dict[str, Any], as_json: bool, lines: list[str], quiet: bool = False) -> None:
    if as_json:
        typer.echo(json.dumps(payload, indent=None, default=str))
        return
    for line in (lines[-1:] if quiet else lines):
        typer.echo(line)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def human_bytes(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} GiB"


def frame_size(size: Optional[tuple[int, int]],
               input_size: Optional[tuple[int, int, int]]) -> tuple[Optional[int], Optional[tuple[int, int]]]:
    """--size H W or timm's --input-size C H W → (C or None, (H, W)), or (None, None) when
    neither is given. Refuses both at once and values below 1, before any slow step; the
    channels and whether the model runs at that size are checked by :func:`check_frame_size`."""
    if size is not None and input_size is not None:
        raise InvalidInputError("give --size H W or --input-size C H W, not both")
    if input_size is not None:
        if not all(v >= 1 for v in input_size):
            raise InvalidInputError(f"--input-size {' '.join(map(str, input_size))}: channels, height and width must "
                                    "be positive integers (e.g. --input-size 3 112 112)")
        return input_size[0], (input_size[1], input_size[2])
    if size is not None and not all(v >= 1 for v in size):
        raise InvalidInputError(f"--size {' '.join(map(str, size))}: height and width must be positive integers "
                                "(e.g. --size 112 112)")
    return None, size


def sample_size(model_name: str, model: nn.Module, default: Sequence[int], size: Optional[tuple[int, int]],
                given_channels: Optional[int], t: Optional[int] = None) -> tuple[int, int, int]:
    """(C, H, W) of the sample image: ``default``'s channels with ``size`` (checked by
    :func:`check_frame_size`) where given, else ``default``."""
    channels, *frame = default
    if size is not None:
        check_frame_size(model_name, model, channels, size, tuple(frame), t=t, given_channels=given_channels)
    return (channels, *(size or frame))


def check_frame_size(model_name: str, model: nn.Module, channels: int, size: tuple[int, int],
                     default: tuple[int, int], t: Optional[int] = None, given_channels: Optional[int] = None) -> None:
    """Refuse a frame size the model does not run at (too small for its kernels and pools, or
    not the one size a transformer's patch grid takes), by running it once on zeros: a 2D
    model on one image, or a ready 3D model (``t`` given) on a t-frame clip. ``given_channels``
    (--input-size's C) must be the model's ``channels``."""
    import torch

    if given_channels is not None and given_channels != channels:
        raise InvalidInputError(f"--input-size {given_channels} {size[0]} {size[1]}: {model_name} takes {channels}-"
                                f"channel input; use --input-size {channels} {size[0]} {size[1]} (or --size {size[0]} "
                                f"{size[1]})")

    shape = (1, channels, t, *size) if t is not None else (1, channels, *size)
    what = "clips" if t is not None else "images"
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model(torch.zeros(shape))
    except Exception as error:  # the model's own refusal, shortened to its first line
        text = str(error).strip()
        cause = " ".join(text.splitlines()[0].split())[:200] if text else type(error).__name__
        raise InvalidInputError(f"--size {size[0]} {size[1]}: {model_name} does not run on {size[0]}×{size[1]} "
                                f"{what} ({cause}); use a size it takes (its own: --size {default[0]} {default[1]})"
                                ) from None
    finally:
        model.train(was_training)
