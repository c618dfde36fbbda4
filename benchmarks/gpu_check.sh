#!/usr/bin/env bash
# Every GPU check the open issues ask for, in one script (about 5 minutes on one H100): training (issue 10),
# optical flow (issue 11) and the speed of time-1 layers (issue 15). Run from the repository root with
# PYTHONPATH=. ; PyAV must be installed (the data pipeline decodes with it).
set -uo pipefail
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
echo "######## issue 10: training"
SKIP_BENCH=${SKIP_TRAIN_BENCH:-} bash benchmarks/gpu_train_check.sh
echo "######## issue 15: speed"
timeout 170 python3 benchmarks/speed.py --device cuda --repeats "${SPEED_REPEATS:-10}"
echo "######## issue 11: flow"
bash benchmarks/gpu_flow_check.sh
