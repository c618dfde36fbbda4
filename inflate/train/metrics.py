"""Accuracy at video and clip level, per class, the confusion matrix, and the pictures of them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["topk_correct", "Scores", "score", "plot_confusion", "plot_curves"]


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per row: is the label among the ``k`` largest logits (ties broken by order)."""
    k = min(k, logits.shape[1])
    top = np.argsort(-logits, axis=1, kind="stable")[:, :k]
    return (top == labels[:, None]).any(axis=1)


@dataclass
class Scores:
    """Video-level scores (views averaged per video) and clip-level ones (every view on its own)."""

    top1: float
    top5: float
    clip_top1: float
    clip_top5: float
    n: int
    n_clips: int
    per_class: dict[str, float]
    mean_class_accuracy: float
    confusion: list[list[int]] = field(repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {"top1": self.top1, "top5": self.top5, "clip_top1": self.clip_top1, "clip_top5": self.clip_top5,
                "n": self.n, "n_clips": self.n_clips, "mean_class_accuracy": self.mean_class_accuracy,
                "per_class": self.per_class, "confusion": self.confusion}


def score(video_logits: np.ndarray, labels: np.ndarray, clip_logits: np.ndarray, clip_labels: np.ndarray,
          classes: Sequence[str]) -> Scores:
    """``video_logits`` (N, K) with ``labels`` (N,); ``clip_logits`` (M, K) with ``clip_labels`` (M,)."""
    n, k = video_logits.shape if video_logits.size else (0, len(classes))
    predicted = video_logits.argmax(axis=1) if n else np.zeros(0, dtype=int)
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(confusion, (labels, predicted), 1)
    per_class = {}
    for index, name in enumerate(classes):
        total = confusion[index].sum()
        per_class[name] = float(confusion[index, index] / total) if total else math.nan
    present = [v for v in per_class.values() if not math.isnan(v)]

    def mean(x: np.ndarray) -> float:
        return float(x.mean()) if x.size else math.nan

    return Scores(
        top1=mean(topk_correct(video_logits, labels, 1)) if n else math.nan,
        top5=mean(topk_correct(video_logits, labels, 5)) if n else math.nan,
        clip_top1=mean(topk_correct(clip_logits, clip_labels, 1)) if len(clip_labels) else math.nan,
        clip_top5=mean(topk_correct(clip_logits, clip_labels, 5)) if len(clip_labels) else math.nan,
        n=int(n), n_clips=int(len(clip_labels)), per_class=per_class,
        mean_class_accuracy=float(np.mean(present)) if present else math.nan, confusion=confusion.tolist(),
    )


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(confusion: Sequence[Sequence[int]], classes: Sequence[str], path: Path, title: str) -> None:
    """A row-normalised confusion matrix as a PNG (rows: true class, columns: predicted)."""
    from ..core.files import atomic_output

    plt = _pyplot()
    matrix = np.asarray(confusion, dtype=np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = min(2 + 0.35 * len(classes), 30)
    figure, axis = plt.subplots(figsize=(size + 1.5, size))
    image = axis.imshow(normalised, vmin=0, vmax=1, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    ticks = np.arange(len(classes))
    axis.set_xticks(ticks, classes, rotation=90, fontsize=max(4, 10 - len(classes) // 12))
    axis.set_yticks(ticks, classes, fontsize=max(4, 10 - len(classes) // 12))
    if len(classes) <= 20:
        for i in range(len(classes)):
            for j in range(len(classes)):
                if matrix[i, j]:
                    axis.text(j, i, int(matrix[i, j]), ha="center", va="center",
                              color="white" if normalised[i, j] > 0.5 else "black", fontsize=8)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    figure.tight_layout()
    with atomic_output(path, force=True) as temporary:
        figure.savefig(str(temporary), format="png", dpi=110)
    plt.close(figure)


def plot_curves(rows: Sequence[dict[str, Any]], path: Path, title: str) -> None:
    """Loss and accuracy per epoch (train and validation) as a PNG."""
    from ..core.files import atomic_output

    plt = _pyplot()
    epochs = [r["epoch"] for r in rows]

    def series(key: str) -> list[float]:
        return [float(r[key]) if r.get(key) not in (None, "") else math.nan for r in rows]

    figure, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, series("train_loss"), marker="o", label="train")
    left.plot(epochs, series("val_loss"), marker="o", label="validation")
    left.set_xlabel("epoch")
    left.set_ylabel("loss")
    left.legend()
    right.plot(epochs, series("train_top1"), marker="o", label="train top-1")
    right.plot(epochs, series("val_top1"), marker="o", label="validation top-1")
    right.set_ylim(0, 1)
    right.set_xlabel("epoch")
    right.set_ylabel("accuracy")
    right.legend()
    figure.suptitle(title)
    figure.tight_layout()
    with atomic_output(path, force=True) as temporary:
        figure.savefig(str(temporary), format="png", dpi=110)
    plt.close(figure)
