#!/usr/bin/env bash
# The training issue's GPU check, as one script (under 5 minutes on one H100): throughput of the data
# pipeline and of training on synthetic tensors vs real decoding (benchmarks/train.py), then `inflate train
# i3d_rgb` for two short epochs on generated clips with bf16 and channels_last_3d.
# Run from the repository root with PYTHONPATH=. (PyAV installed; real clips in ${CLIPS:-.carry/clips}).
set -uo pipefail
export PYTHONUNBUFFERED=1
WORKERS=${WORKERS:-$(( $(nproc) - 2 ))}
CLIPS=${CLIPS:-.carry/clips}
SCRATCH=$(mktemp -d)
python3 -c "import torch, timm, av; print('torch', torch.__version__, 'timm', timm.__version__, 'av', av.__version__, torch.cuda.get_device_name(0))"
if [ -z "${SKIP_BENCH:-}" ]; then
echo "== benchmarks/train.py"
timeout 200 python3 benchmarks/train.py --device cuda --workers "$WORKERS" --batch 16 --steps 20 --warmup 4 \
    --loader-batches 12 --max-seconds 8 --real-dir "$CLIPS"
fi
echo "== inflate train i3d_rgb, 2 epochs on generated clips"
timeout 60 python3 -c "
from inflate.data import make_motion_dataset
make_motion_dataset('$SCRATCH/videos', per_class=48, per_class_val=8, frames=32, size=256, seed=0, step=4)"
timeout 150 python3 -m inflate.cli train i3d_rgb --data "$SCRATCH/videos" --frames 16 --size 224 --epochs 2 \
    --batch 16 --workers "$WORKERS" --out "$SCRATCH/run" --flip 0 --no-tensorboard
cat "$SCRATCH/run/metrics.csv"
timeout 60 python3 -m inflate.cli evaluate "$SCRATCH/run" --data "$SCRATCH/videos" --clips 2 --crops 3 --workers "$WORKERS" --json
