"""Training and evaluation on videos: `inflate train`, `inflate evaluate`, `inflate predict` in Python.

``fit(TrainConfig(...))`` fine-tunes a 3D model (a timm name inflated on the fly, an I3D
preset or a 3D file) on a folder of videos; ``evaluate(run_dir, data)`` scores it, fusing an
RGB and a flow run when asked; ``predict(run_dir, video)`` ranks the labels of one video.
"""

from .config import TrainConfig, default_lr
from .evaluate import evaluate, open_run, predict
from .loop import RunResult, fit

__all__ = ["TrainConfig", "default_lr", "fit", "RunResult", "evaluate", "predict", "open_run"]
