"""Everything a training run is made of, in one JSON-able dataclass saved beside its checkpoints."""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from ..core.errors import InvalidInputError

__all__ = ["TrainConfig", "REFERENCE_BATCH", "default_lr"]

# The paper's learning rate 0.1 was for 6 GPUs × 64 clips; SGD's rate scales linearly with the batch.
REFERENCE_BATCH = {"sgd": 384, "adamw": 256}
# Beyond these a single clip no longer fits in a machine's memory: refused up front, not killed later.
MAX_FRAMES = 1024
MAX_SIZE = 2048
BASE_LR = {"sgd": 0.1, "adamw": 1e-3}


def default_lr(optimizer: str, effective_batch: int) -> float:
    """SGD: 0.1 × batch / 384 (linear scaling, the paper's rate); AdamW: 1e-3 × sqrt(batch / 256) (timm's rule)."""
    ratio = effective_batch / REFERENCE_BATCH[optimizer]
    return BASE_LR[optimizer] * (ratio if optimizer == "sgd" else math.sqrt(ratio))


_NUMBER = (int, float)
# What every config.json holds (settings added later may be missing from older runs: their defaults).
_REQUIRED = ("model", "data", "out", "frames", "size", "epochs", "batch", "stream", "stride", "seed", "layout",
             "split_id", "policy", "init", "optimizer", "schedule")
# Settings that may be null in config.json, and what they hold otherwise.
_OPTIONAL = {"lr": _NUMBER, "clip_grad": _NUMBER, "tubelet": (int,), "channels_last": (bool,),
             "overrides": (dict,), "scale_jitter": (list,), "flow_dir": (str,), "split_file": (str,), "val_split_file": (str,),
             "weights": (str,), "pad_mode": (str,), "attention": (str,), "device": (str,)}


def _json_type_ok(key: str, value: Any) -> bool:
    """Whether a config.json value has the type TrainConfig's field ``key`` holds (JSON numbers,
    strings, lists): a run folder from elsewhere cannot slip a string where a count goes."""
    if key in _OPTIONAL:
        kinds = _OPTIONAL[key]
        return value is None or (isinstance(value, kinds) and not (bool not in kinds and isinstance(value, bool)))
    default = next((f.default for f in dataclasses.fields(TrainConfig) if f.name == key), None)
    if isinstance(default, bool):
        return isinstance(value, bool)
    if isinstance(default, int):
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(default, float):
        return isinstance(value, _NUMBER) and not isinstance(value, bool)
    if isinstance(default, str) or key in ("model", "data", "out"):
        return isinstance(value, str)
    if isinstance(default, tuple):
        return isinstance(value, list) and all(isinstance(v, _NUMBER) and not isinstance(v, bool) for v in value)
    return isinstance(value, dict) if key == "extra" else True


@dataclass
class TrainConfig:
    """A training run. ``model`` is a timm name, a preset (``i3d_rgb``, ``i3d_flow``) or a 3D file.

    Frames are resized so that their short side is ``size`` · 256 / 224, then cropped to ``size``.
    ``lr`` None scales the optimiser's reference rate with the effective batch
    (``batch`` × ``accum`` × world size), see :func:`default_lr`.
    """

    model: str
    data: str
    out: str
    frames: int = 16
    size: int = 224
    epochs: int = 10
    batch: int = 8
    stream: str = "rgb"
    stride: int = 1
    flow_dir: Optional[str] = None
    layout: str = "auto"
    split_file: Optional[str] = None
    val_split_file: Optional[str] = None
    split_id: int = 1
    # start weights and inflation (as `inflate convert`)
    weights: Optional[str] = None
    pretrained: bool = False
    policy: str = "i3d"
    init: str = "tile"
    pad_mode: Optional[str] = None
    overrides: Optional[dict[str, Any]] = None
    attention: Optional[str] = None
    tubelet: Optional[int] = None
    # optimisation
    optimizer: str = "sgd"
    lr: Optional[float] = None
    momentum: float = 0.9
    weight_decay: float = 1e-4
    schedule: str = "step"
    milestones: tuple[float, ...] = (0.4, 0.8)
    warmup_epochs: float = 0.0
    clip_grad: Optional[float] = None
    accum: int = 1
    label_smoothing: float = 0.0
    # augmentation and loading
    scale_jitter: Optional[tuple[int, int]] = None
    flip: float = 0.5
    workers: int = 4
    seed: int = 0
    # machine
    device: Optional[str] = None
    precision: str = "auto"
    channels_last: Optional[bool] = None
    compile: bool = False
    cudnn_benchmark: bool = True
    sync_bn: bool = False
    # bookkeeping
    val_every: int = 1
    tensorboard: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> "TrainConfig":
        """Refuse values that cannot train, naming the option and the fix."""
        positive = {"--frames": self.frames, "--size": self.size, "--epochs": self.epochs, "--batch": self.batch,
                    "--stride": self.stride, "--accum": self.accum, "--val-every": self.val_every}
        for option, value in positive.items():
            if value < 1:
                raise InvalidInputError(f"{option} must be >= 1, got {value}")
        if self.workers < 0:
            raise InvalidInputError(f"--workers must be >= 0, got {self.workers}")
        choices = {"--stream": (self.stream, ("rgb", "flow")), "--optimizer": (self.optimizer, ("sgd", "adamw")),
                   "--schedule": (self.schedule, ("step", "cosine", "constant")),
                   "--precision": (self.precision, ("auto", "bf16", "fp16", "fp32"))}
        for option, (value, allowed) in choices.items():
            if value not in allowed:
                raise InvalidInputError(f"{option} {value!r}: use one of {', '.join(allowed)}")
        if self.lr is not None and not (self.lr > 0 and math.isfinite(self.lr)):
            raise InvalidInputError(f"--lr must be a positive number, got {self.lr}")
        non_negative = {"--weight-decay": self.weight_decay, "--warmup-epochs": self.warmup_epochs}
        for option, value in non_negative.items():
            if not (math.isfinite(value) and value >= 0):
                raise InvalidInputError(f"{option} must be a finite number >= 0, got {value}")
        if not 0.0 <= self.momentum < 1.0:
            raise InvalidInputError(f"momentum must be in [0, 1), got {self.momentum}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise InvalidInputError(f"--label-smoothing is a fraction in [0, 1), got {self.label_smoothing}")
        if any(not 0 < m < 1 for m in self.milestones):
            raise InvalidInputError(f"--milestones are fractions of the run in (0, 1), got {list(self.milestones)}")
        if self.clip_grad is not None and not (self.clip_grad > 0 and math.isfinite(self.clip_grad)):
            raise InvalidInputError(f"--clip-grad must be a positive number, got {self.clip_grad}")
        if self.frames > MAX_FRAMES:
            raise InvalidInputError(f"--frames {self.frames}: at most {MAX_FRAMES} frames per clip (a clip of "
                                    f"{self.frames} frames would not fit in memory); use --stride to cover more time")
        if self.size > MAX_SIZE:
            raise InvalidInputError(f"--size {self.size}: at most {MAX_SIZE} pixels per side")
        if not 0.0 <= self.flip <= 1.0:
            raise InvalidInputError(f"--flip is a probability in [0, 1], got {self.flip}")
        if self.pretrained and self.weights not in (None, "none"):
            raise InvalidInputError("give either --pretrained or --weights FILE, not both")
        if self.flow_dir is not None and self.stream != "flow":
            raise InvalidInputError("--flow-dir is read by the flow stream only: add --stream flow, or leave it out")
        if self.scale_jitter is not None and not 0 < self.scale_jitter[0] <= self.scale_jitter[1]:
            raise InvalidInputError(f"--scale-jitter MIN MAX needs 0 < MIN <= MAX, got {list(self.scale_jitter)}")
        return self

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str, source: str = "config") -> "TrainConfig":
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise InvalidInputError(f"{source} is not valid JSON ({error})") from None
        if not isinstance(raw, dict):
            raise InvalidInputError(f"{source} must hold a JSON object")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(raw) - names)
        if unknown:
            raise InvalidInputError(f"{source}: unknown settings {', '.join(unknown)}")
        missing = sorted(n for n in _REQUIRED if n not in raw)
        if missing:
            raise InvalidInputError(f"{source}: lacks {', '.join(missing)}; it was not written by `inflate train`")
        for key, value in raw.items():
            if not _json_type_ok(key, value):
                raise InvalidInputError(f"{source}: setting {key!r} is {value!r}, which is not a value "
                                        f"`inflate train` writes there")
        for key in ("milestones", "scale_jitter"):
            if isinstance(raw.get(key), list):
                raw[key] = tuple(raw[key])
        return cls(**raw)

    def effective_batch(self, world_size: int) -> int:
        return self.batch * self.accum * world_size

    def resolved_lr(self, world_size: int) -> float:
        return self.lr if self.lr is not None else default_lr(self.optimizer, self.effective_batch(world_size))

    @property
    def in_chans(self) -> int:
        return 2 if self.stream == "flow" else 3

    @property
    def run_dir(self) -> Path:
        return Path(self.out)
