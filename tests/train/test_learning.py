"""Training learns motion: an inflated model beats chance on held-out clips whose classes no single frame can
tell apart, and beats the same 2D model trained on single frames with its logits averaged over time.

The 2D baseline is trained by a plain loop written here, independent of inflate.train.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from inflate.train import TrainConfig, evaluate, fit

EPOCHS, LR, FRAMES, SIZE = 10, 3e-3, 8, 48


@pytest.fixture(scope="module")
def motion_videos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A textured square moving left, right, up or down (2 px per frame) over a static textured background."""
    from inflate.data import make_motion_dataset

    return make_motion_dataset(tmp_path_factory.mktemp("motion") / "videos", per_class=40, per_class_val=10,
                               frames=12, size=SIZE, seed=1, step=2)


def _frames_2d(videos: Path, split: str) -> tuple[list[np.ndarray], list[int]]:
    """Every frame of every video of ``split``: short side SIZE·256/224, centre crop SIZE, float in [0, 1]."""
    from inflate.data import discover, read_all_frames

    found = discover(videos, split)
    short = round(SIZE * 256 / 224)
    clips, labels = [], []
    for record in found.records:
        frames = read_all_frames(record.path, short_side=short)
        top, left = (frames.shape[1] - SIZE) // 2, (frames.shape[2] - SIZE) // 2
        clips.append(frames[:, top:top + SIZE, left:left + SIZE].astype(np.float32) / 255.0)
        labels.append(record.label)
    return clips, labels


def _single_frame_baseline(videos: Path) -> float:
    """test_resnet in 2D trained on single random frames; a video's logits are averaged over its frames."""
    import timm

    torch.manual_seed(0)
    rng = np.random.default_rng(0)
    model = timm.create_model("test_resnet", num_classes=4)
    mean = torch.tensor(model.pretrained_cfg["mean"]).view(1, 3, 1, 1)
    std = torch.tensor(model.pretrained_cfg["std"]).view(1, 3, 1, 1)
    train, train_labels = _frames_2d(videos, "train")
    steps = EPOCHS * len(train) // 8
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5 * (1 + math.cos(math.pi * s / steps)))
    model.train()
    for _ in range(steps):
        pick = rng.integers(0, len(train), 8)
        frames = np.stack([train[i][rng.integers(0, len(train[i]))] for i in pick])
        x = (torch.from_numpy(frames).permute(0, 3, 1, 2) - mean) / std
        loss = torch.nn.functional.cross_entropy(model(x), torch.tensor([train_labels[i] for i in pick]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    model.eval()
    val, val_labels = _frames_2d(videos, "val")
    correct = 0
    with torch.no_grad():
        for frames, label in zip(val, val_labels):
            x = (torch.from_numpy(frames).permute(0, 3, 1, 2) - mean) / std
            correct += int(model(x).mean(dim=0).argmax() == label)
    return correct / len(val)


def test_inflated_model_learns_motion_that_single_frames_cannot_show(motion_videos: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(model="test_resnet", data=str(motion_videos), out=str(tmp_path / "run"), frames=FRAMES,
                      size=SIZE, epochs=EPOCHS, batch=8, optimizer="adamw", lr=LR, schedule="cosine", flip=0.0,
                      workers=1, tensorboard=False, seed=0)
    result = fit(cfg, progress=False)
    scores = evaluate(tmp_path / "run", motion_videos, views="center", workers=0)
    baseline = _single_frame_baseline(motion_videos)
    print(f"inflated: video top-1 {scores['top1']:.3f} (best during training {result.best_top1:.3f}); "
          f"2D single-frame baseline: {baseline:.3f}; chance 0.25")
    assert scores["n"] == 40
    assert scores["top1"] >= 0.6, scores["top1"]          # chance is 0.25
    assert scores["top1"] >= baseline + 0.25, (scores["top1"], baseline)
    assert baseline <= 0.5                                 # a single frame shows no direction
