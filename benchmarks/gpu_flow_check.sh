#!/usr/bin/env bash
# The flow issue's GPU check (one H100, well under 2 minutes): TV-L1 fields/s of the torch backend on CUDA and its
# agreement with OpenCV's flow (saved with the frames by `benchmarks/flow.py --save-frames` on a machine with
# cv2.optflow), then `inflate flow` on generated videos and one short epoch of the flow stream on CUDA.
set -uo pipefail
export PYTHONUNBUFFERED=1
SCRATCH=$(mktemp -d)
echo "== benchmarks/flow.py"
timeout 150 python3 benchmarks/flow.py --frames-file "${FRAMES_FILE:-.carry/flow_frames.npz}" --no-cpu
echo "== inflate flow (torch, CUDA) on generated videos, then inflate train i3d_flow --stream flow"
timeout 60 python3 -c "
from inflate.data import make_motion_dataset
make_motion_dataset('$SCRATCH/videos', per_class=4, per_class_val=1, frames=24, size=256, seed=0, step=4)"
timeout 120 python3 -m inflate.cli flow "$SCRATCH/videos" "$SCRATCH/videos_flow" --backend torch --device cuda
timeout 120 python3 -m inflate.cli train i3d_flow --stream flow --data "$SCRATCH/videos" --frames 16 --size 224 \
    --epochs 1 --batch 8 --workers 8 --out "$SCRATCH/flow_run" --flip 0 --no-tensorboard
