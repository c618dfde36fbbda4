"""`inflate evaluate` and `inflate predict`: trained runs on held-out videos, one stream or two fused.

Video-level accuracy averages each video's views (or runs the whole video, the paper's
protocol); clip-level accuracy scores every view on its own. Users confuse the two, so both
are reported. Two-stream late fusion sums the streams' video logits (weights configurable),
as the paper does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
import torch
from torch import nn

from ..core.errors import InvalidInputError
from . import checkpoint as ckpt
from .config import TrainConfig
from .distributed import Context, cudnn_autotuning, setup, teardown

__all__ = ["Run", "open_run", "evaluate", "predict"]


@dataclass
class Run:
    """A trained run folder: its config, label map and best model."""

    path: Path
    config: TrainConfig
    labels: list[str]

    @property
    def best(self) -> Path:
        best = self.path / ckpt.BEST
        if not best.is_file():
            raise InvalidInputError(f"{self.path} has no {ckpt.BEST}: no epoch finished with a validation score")
        return best

    def load_model(self, device: torch.device) -> nn.Module:
        from ..export import load_inflated

        model = load_inflated(self.best, map_location=device).eval()
        classes = getattr(model, "num_classes", None)
        if isinstance(classes, int) and classes != len(self.labels):
            raise InvalidInputError(f"{self.path}: {ckpt.LABELS} names {len(self.labels)} classes but "
                                    f"{ckpt.BEST} has {classes} outputs; the run folder was altered")
        return model

    def normalization(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The input mean and std the run trained with. A run started from a model file names its
        source in its own best model's metadata: the file that config.json names is never opened."""
        from .loop import stream_normalization
        from .model import is_model_file

        model_file = self.best if self.config.stream == "rgb" and is_model_file(self.config.model) else None
        return stream_normalization(self.config, model_file)


def open_run(path: Path) -> Run:
    """A run folder written by `inflate train` (config.json, labels.json, best.safetensors)."""
    path = Path(path)
    if not path.is_dir():
        raise InvalidInputError(f"{path} is not a run folder of `inflate train` (not a folder)")
    config_path = path / ckpt.CONFIG
    if not config_path.is_file():
        raise InvalidInputError(f"{path} is not a run folder of `inflate train` (no {ckpt.CONFIG})")
    try:
        text = config_path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise InvalidInputError(f"cannot read {config_path}: {getattr(error, 'strerror', None) or error}") from None
    config = TrainConfig.from_json(text, str(config_path))
    try:
        config.validate()  # a run folder from elsewhere: its settings bounded as the command line's are
    except InvalidInputError as error:
        raise InvalidInputError(f"{config_path}: {error}") from None
    return Run(path, config, ckpt.read_labels(path))


def _loader(run: Run, data: Path, views: str, num_clips: int, num_crops: int, batch: int, workers: int,
            context: Context, flow_dir: Optional[Path], split_file: Optional[Path]) -> Any:
    from ..data import ClipDataset, build_loader, discover
    from ..data.layouts import split_file_layout
    from .loop import flow_root

    cfg = run.config
    # Paths config.json records are never opened: a run folder may come from elsewhere. UCF-101's and
    # HMDB-51's lists are found in --data again; a run trained from list files needs --split-file.
    trained_from_list = cfg.val_split_file is not None or (
        cfg.split_file is not None and split_file_layout(Path(cfg.split_file)) == "list")
    if split_file is None and trained_from_list:
        raise InvalidInputError(f"{run.path} was trained from list files: give the list of videos to evaluate "
                                "(`path label` lines), --split-file FILE")
    videos = discover(data, "val", layout="auto" if split_file is not None or trained_from_list else cfg.layout,
                      split_file=split_file, split_id=cfg.split_id, classes=run.labels)
    stream_cfg = TrainConfig(**{**cfg.__dict__, "data": str(data), "flow_dir": str(flow_dir) if flow_dir else None})
    mean, std = run.normalization()
    dataset = ClipDataset(videos, frames=cfg.frames, stride=cfg.stride, size=cfg.size, train=False, stream=cfg.stream,
                          flow_root=flow_root(stream_cfg), mean=mean, std=std, eval_views=views, num_clips=num_clips,
                          num_crops=num_crops, seed=cfg.seed)
    return build_loader(dataset, batch=1 if views == "whole" else batch, workers=workers, train=False,
                        seed=cfg.seed, distributed=context.distributed, drop_last=False)


def _stream_logits(run: Run, data: Path, views: str, num_clips: int, num_crops: int, batch: int, workers: int,
                   context: Context, flow_dir: Optional[Path], split_file: Optional[Path],
                   failed: dict[str, None]) -> tuple[dict[int, np.ndarray], np.ndarray]:
    from .loop import precision_settings, predict_views

    loader = _loader(run, data, views, num_clips, num_crops, batch, workers, context, flow_dir, split_file)
    model = run.load_model(context.device)
    channels_last = context.device.type == "cuda"
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    amp_dtype, _ = precision_settings("auto", context.device)

    def on_failed(messages: list[str]) -> None:
        for message in messages:
            failed.setdefault(message, None)

    logits = predict_views(model, loader, context, amp_dtype, channels_last, on_failed)
    labels = np.array([r.label for r in loader.dataset.videos.records])
    return logits, labels


def evaluate(run_dir: Path, data: Path, *, flow_run: Optional[Path] = None, flow_dir: Optional[Path] = None,
             weights: Sequence[float] = (1.0, 1.0), views: str = "multi", num_clips: int = 10, num_crops: int = 3,
             batch: int = 4, workers: int = 2, device: Optional[str] = None, split_file: Optional[Path] = None,
             plot: Optional[Path] = None, return_logits: bool = False, cudnn_benchmark: bool = True) -> dict[str, Any]:
    """Scores of a run (or an RGB and a flow run fused) on the ``val`` split of ``data``.

    ``views``: "multi" (``num_clips`` × ``num_crops`` per video, mmaction2/SlowFast's 10×3),
    "center" (one centre clip) or "whole" (every frame, the paper's protocol; clip-level
    scores then come from the same single view). Returns a dict with ``top1``, ``top5``
    (video level, in [0, 1]), ``clip_top1``, ``clip_top5``, ``n``, per-class accuracy and
    the confusion matrix; ``plot`` writes the confusion matrix as a PNG. ``return_logits`` adds
    ``video_logits`` (N, K), ``video_labels`` (N,) and ``video_indices`` (the videos' positions in the split).
    ``cudnn_benchmark``: cuDNN autotuning on CUDA while evaluating, as in training (off for
    bit-reproducible scores); the previous setting is restored after.
    """
    from .metrics import plot_confusion, score

    if views not in ("multi", "center", "whole"):
        raise InvalidInputError(f"--views {views!r}: use multi, center or whole")
    if num_clips < 1 or num_crops not in (1, 3):
        raise InvalidInputError(f"--clips must be >= 1 and --crops 1 or 3, got {num_clips} and {num_crops}")
    if len(weights) != 2 or any(not math.isfinite(w) or not 0 <= w <= 1e6 for w in weights) or sum(weights) <= 0:
        raise InvalidInputError(f"--fusion-weights takes two numbers in [0, 1e6], not both 0, got {list(weights)}")
    data = Path(data)
    if not data.is_dir():
        raise InvalidInputError(f"--data {data} is not a folder")
    runs = [open_run(Path(run_dir))] + ([open_run(Path(flow_run))] if flow_run is not None else [])
    if flow_run is not None:
        streams = [r.config.stream for r in runs]
        if streams != ["rgb", "flow"]:
            raise InvalidInputError(f"--flow fuses an RGB run with a flow run; got streams {streams[0]} and {streams[1]}")
        if runs[0].labels != runs[1].labels:
            raise InvalidInputError(f"{runs[0].path} and {runs[1].path} were trained on different classes")
    context = setup(device)
    failed: dict[str, None] = {}
    try:
        with cudnn_autotuning(cudnn_benchmark, context.device):
            per_stream = [_stream_logits(r, data, views, num_clips, num_crops, batch, workers, context, flow_dir,
                                         split_file, failed) for r in runs]
    finally:
        teardown(context)
    labels = per_stream[0][1]
    common = sorted(set.intersection(*(set(logits) for logits, _ in per_stream)))
    if not common:
        raise InvalidInputError(f"no video of {data}'s val split could be read ({len(failed)} failed)")
    fused_views = []
    for index in common:  # fuse per view where the streams have the same views, else per video
        parts = [w * logits[index] for w, (logits, _) in zip(weights, per_stream)]
        same = all(p.shape == parts[0].shape for p in parts)
        fused_views.append(sum(parts) if same else sum(p.mean(axis=0, keepdims=True) for p in parts))
    video_logits = np.stack([v.mean(axis=0) for v in fused_views])
    clip_logits = np.concatenate(fused_views)
    clip_labels = np.concatenate([[labels[i]] * len(v) for i, v in zip(common, fused_views)])
    scores = score(video_logits, labels[common], clip_logits, clip_labels, runs[0].labels)
    result = scores.as_dict()
    result.update(views=views, clips=num_clips if views == "multi" else 1,
                  crops=num_crops if views == "multi" else 1, streams=[r.config.stream for r in runs],
                  fusion_weights=list(weights) if flow_run is not None else None, failed_videos=list(failed),
                  classes=runs[0].labels)
    if return_logits:
        result.update(video_logits=video_logits, video_indices=common, video_labels=labels[common])
    if plot is not None:
        title = " + ".join(f"{r.config.stream} ({r.path.name})" for r in runs)
        plot_confusion(scores.confusion, runs[0].labels, Path(plot), f"{title}: video top-1 {scores.top1:.3f}")
        result["confusion_png"] = str(plot)
    return result


def predict(run_dir: Path, video: Path, *, top: int = 5, views: str = "multi", num_clips: int = 10,
            num_crops: int = 3, device: Optional[str] = None) -> list[tuple[str, float]]:
    """The ``top`` labels of one video with their probabilities (views' logits averaged, then softmax)."""
    from ..data import ClipDataset, VideoRecord, VideoSet

    run = open_run(Path(run_dir))
    cfg = run.config
    if cfg.stream != "rgb":
        raise InvalidInputError("predict reads RGB videos: give an RGB run (flow runs need `inflate flow` first)")
    from ..core.files import require_input_file

    video = require_input_file(video, "video", "one video file (for a folder of videos: `inflate evaluate RUN "
                                               "--data FOLDER`)")
    records = [VideoRecord(path=video, label=0, relative=video.name)]
    mean, std = run.normalization()
    dataset = ClipDataset(VideoSet(records=records, classes=run.labels, root=video.parent, layout="list"),
                          frames=cfg.frames, stride=cfg.stride, size=cfg.size, train=False, stream="rgb",
                          mean=mean, std=std,
                          eval_views=views, num_clips=num_clips, num_crops=num_crops, seed=cfg.seed)
    sample = dataset[(0, 0)]
    if "error" in sample:
        raise InvalidInputError(f"cannot read {sample['error']}")
    context = setup(device)
    try:
        model = run.load_model(context.device)
        clip = sample["clip"]
        clip = clip if clip.dim() == 5 else clip.unsqueeze(0)
        with torch.no_grad():
            logits = model(clip.to(context.device)).float().mean(dim=0)
    finally:
        teardown(context)
    probabilities = torch.softmax(logits, dim=0)
    values, order = probabilities.topk(min(top, len(run.labels)))
    return [(run.labels[i], float(v)) for v, i in zip(values.tolist(), order.tolist())]
