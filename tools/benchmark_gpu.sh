#!/usr/bin/env bash
# Every GPU figure of issue #17 in one go, on a fresh 1-GPU machine:
# set up the stack (mmcv built with its CUDA ops), then the overhead benchmark
# at the model-zoo crop sizes with fp16 AMP (and (b) again with the teacher's
# forward in fp32, bf16 and fp16: --teacher-precision), then the loss
# benchmark, all on CUDA. Every result, log and timing goes to one folder.
#
# Usage:
#   tools/benchmark_gpu.sh [--dry-run] [--skip-install] [--wheels DIR] [OUT]
#
#   OUT             results folder (default benchmarks/results/gpu)
#   --dry-run       print every command, run nothing
#   --skip-install  use the environment of an earlier run ($VENV) as it is
#   --wheels DIR    install offline from the wheels in DIR (pip --no-index
#                   --find-links DIR); a prebuilt mmcv wheel there skips the
#                   build
#
# Environment: VENV (default .venv-gpu), PYTHON (the interpreter that makes
# the venv; default python3), MAX_JOBS (mmcv build jobs; default: all cores),
# TORCH_CUDA_ARCH_LIST (default 9.0, H100), STEPS and WARMUP (overhead steps;
# default 10 and 2).
#
# The machine's own CUDA torch is used (the venv sees the system packages);
# only if it has none is torch installed from requirements/torch.txt (a CUDA
# wheel from PyPI). Everything else is held to requirements/lock.txt, as in
# `make setup`, less its CPU torch pin.
#
# Time: about 4 to 5 minutes to build mmcv's CUDA ops on 16 cores (pip caches
# the wheel: a second run skips it), then the benchmarks, each under its own
# time limit so that one slow step cannot take the whole budget and the
# others' files are kept. Wall times of every step go to OUT/timings.txt.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO_ROOT"

DRY_RUN=0
INSTALL=1
WHEELS=""
OUT="benchmarks/results/gpu"
while [ $# -gt 0 ]; do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        --skip-install) INSTALL=0 ;;
        --wheels) WHEELS="$2"; shift ;;
        -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
        -*) echo "benchmark_gpu.sh: unknown option $1" >&2; exit 2 ;;
        *) OUT="$1" ;;
    esac
    shift
done

VENV="${VENV:-.venv-gpu}"
PYTHON="${PYTHON:-python3}"
PY="$VENV/bin/python"
MAX_JOBS="${MAX_JOBS:-$(nproc 2>/dev/null || echo 8)}"
CUDA_ARCH="${TORCH_CUDA_ARCH_LIST:-9.0}"
STEPS="${STEPS:-10}"
WARMUP="${WARMUP:-2}"

# Model-zoo configs of the overhead benchmark
# (mmstructkd.benchmarks.config_lists.OVERHEAD_MODEL_ZOO_CONFIGS), by task:
# Cityscapes crops 512x1024, COCO 800x1333, batch 2.
SEG_CONFIGS=(
    configs/cwd/cwd_logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py
    configs/dist/dist_logits_deeplabv3-r101-d8_pspnet-r18-d8_8xb2-40k_cityscapes-512x1024.py
    configs/skd/skd_pi_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x512.py
    configs/skd/skd_pi-pa-fullres_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x512.py
    configs/skd/skd_pi-pa-ho_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x512.py
    configs/bcd/bcd_deeplabv3-r101-d8_deeplabv3-r18-d8_4xb2-80k_cityscapes-512x1024.py
)
DET_CONFIGS=(
    configs/ssim/ssim_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py
    configs/pkd/pkd_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-2x_coco.py
    configs/fbkd/fbkd_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py
    configs/bcd/bcd_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py
    configs/crosskd/crosskd_gfl-r101_gfl-r50_8xb2-1x_coco.py
)
SEG_SIZE=(512 1024)
DET_SIZE=(800 1333)
BATCH=2
# Seconds each benchmark may run before it is stopped.
LIMIT_LOSSES=150
LIMIT_SEG=200
LIMIT_DET=160

# Every step in fp16 AMP, and (b) again with the teacher's forward in each
# precision.
PRECISION_ARGS=(--amp --teacher-precision fp32 bf16 fp16)
AMP_NOTE="fp16 AMP (--amp)"

run() {
    # Print a command; run it unless this is a dry run.
    echo "+ $*"
    if [ "$DRY_RUN" = 0 ]; then
        "$@"
    fi
}

timed() {
    # timed NAME LIMIT COMMAND...: run under a time limit, log its output to
    # OUT/NAME.log and its wall time to OUT/timings.txt; a failure is noted
    # and the script goes on to the next benchmark.
    local name="$1" limit="$2"
    shift 2
    echo "+ timeout $limit $* > $OUT/$name.log"
    if [ "$DRY_RUN" = 1 ]; then
        return 0
    fi
    local start status=0
    start=$(date +%s)
    timeout "$limit" "$@" > "$OUT/$name.log" 2>&1 || status=$?
    echo "$name: $(( $(date +%s) - start )) s, exit $status" \
        | tee -a "$OUT/timings.txt"
}

echo "# results folder: $OUT"
echo "# overhead precision: $AMP_NOTE"
run mkdir -p "$OUT"

if [ "$INSTALL" = 1 ]; then
    PIP_SOURCE=()
    if [ -n "$WHEELS" ]; then
        PIP_SOURCE=(--no-index --find-links "$WHEELS")
    fi
    # requirements/lock.txt less its CPU torch pin (the machine's CUDA torch
    # stays), and the constraints less theirs.
    PINS="$OUT/pins"
    run mkdir -p "$PINS"
    echo "+ grep -v '^torch==' requirements/lock.txt > $PINS/lock.txt"
    echo "+ grep -v '^torch==' requirements/constraints.txt > $PINS/constraints.txt"
    if [ "$DRY_RUN" = 0 ]; then
        grep -v '^torch==' requirements/lock.txt > "$PINS/lock.txt"
        grep -v '^torch==' requirements/constraints.txt > "$PINS/constraints.txt"
    fi
    PIN=(-c "$PINS/constraints.txt" -c "$PINS/lock.txt")
    PIP=("$PY" -m pip install ${PIP_SOURCE[@]+"${PIP_SOURCE[@]}"})
    start=$(date +%s)
    run "$PYTHON" -m venv --system-site-packages "$VENV"
    echo "+ $PY -c 'import torch; assert torch.cuda.is_available()' || install requirements/torch.txt"
    if [ "$DRY_RUN" = 0 ] && ! "$PY" -c \
            'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
        "${PIP[@]}" -r requirements/torch.txt
    fi
    # The steps of `make setup`, with mmcv's CUDA ops built for this GPU.
    run "${PIP[@]}" "${PIN[@]}" -r requirements/build.txt
    run "${PIP[@]}" "${PIN[@]}" mmengine==0.10.7
    run env MMCV_WITH_OPS=1 FORCE_CUDA=1 TORCH_CUDA_ARCH_LIST="$CUDA_ARCH" \
        MAX_JOBS="$MAX_JOBS" "${PIP[@]}" "${PIN[@]}" --no-build-isolation \
        mmcv==2.1.0
    run "${PIP[@]}" "${PIN[@]}" -r requirements/mminstall.txt \
        -r requirements/runtime.txt -r requirements/tests.txt
    run "${PIP[@]}" setuptools==69.5.1
    run "${PIP[@]}" "${PIN[@]}" --no-build-isolation --no-deps -e .
    if [ "$DRY_RUN" = 0 ]; then
        echo "install: $(( $(date +%s) - start )) s" | tee -a "$OUT/timings.txt"
    fi
fi

# What the figures were measured with.
echo "+ $PY -m pip freeze > $OUT/environment.txt; nvidia-smi > $OUT/nvidia-smi.txt"
if [ "$DRY_RUN" = 0 ]; then
    "$PY" -m pip freeze > "$OUT/environment.txt" 2>&1 || true
    nvidia-smi > "$OUT/nvidia-smi.txt" 2>&1 || true
    "$PY" -c 'import mmcv.ops, torch; print(torch.__version__,
torch.version.cuda, torch.cuda.get_device_name(0))' \
        > "$OUT/device.txt" 2>&1 || true
fi

timed losses "$LIMIT_LOSSES" "$PY" tools/benchmark_losses.py --device cuda \
    --out "$OUT/losses_cuda.json"
timed overhead_seg "$LIMIT_SEG" "$PY" tools/benchmark_overhead.py \
    --device cuda --configs "${SEG_CONFIGS[@]}" --size "${SEG_SIZE[@]}" \
    --batch "$BATCH" --steps "$STEPS" --warmup "$WARMUP" \
    ${PRECISION_ARGS[@]+"${PRECISION_ARGS[@]}"} --out "$OUT/overhead_seg_cuda.json"
timed overhead_det "$LIMIT_DET" "$PY" tools/benchmark_overhead.py \
    --device cuda --configs "${DET_CONFIGS[@]}" --size "${DET_SIZE[@]}" \
    --batch "$BATCH" --steps "$STEPS" --warmup "$WARMUP" \
    ${PRECISION_ARGS[@]+"${PRECISION_ARGS[@]}"} --out "$OUT/overhead_det_cuda.json"
echo "# done: results in $OUT"
