#!/usr/bin/env bash
# Usage: tools/dist_train.sh CONFIG GPUS [train.py options]
# Multi-process training through torchrun (one process per GPU, or per CPU
# worker with the gloo backend when no GPU is present).
set -euo pipefail
CONFIG=$1
GPUS=$2
source "$(dirname "${BASH_SOURCE[0]}")/launch_env.sh"
torchrun_tool "$GPUS" train.py "$CONFIG" --launcher pytorch "${@:3}"
