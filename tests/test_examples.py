"""The example scripts' code paths: the training loop learns, on the CPU (CUDA runs the same code)."""

import importlib.util
from pathlib import Path

import torch

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name: str):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_training_loop_fits_a_fixed_batch() -> None:
    train = load("train_i3d")
    device = torch.device("cpu")
    model = train.build("regnetx_002", num_classes=3, frames=4, device=device)
    batch = next(train.clips(4, 3, 4, 64, 3, device))
    losses = train.train(model, steps=12, lr=0.05, data=iter([batch] * 12), device=device)
    assert losses[-1] < 0.5 * losses[0], losses


def test_i3d_head_replacement_keeps_the_3d_conv() -> None:
    train = load("train_i3d")
    model = train.build("i3d_rgb", num_classes=5, frames=16, device=torch.device("cpu"))
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 16, 224, 224)).shape == (1, 5)
