#!/usr/bin/env bash
# Model-zoo reproduction: dataset preparation, training, evaluation and
# student export for the published settings (issue #7).
#
# Usage: tools/reproduce.sh [--dry-run] SUBCOMMAND [ARG] [-- TRAIN_OPTIONS...]
#
#   list                 the targets, their configs, GPU counts and the
#                        published numbers to compare against
#   prepare-cityscapes   labelTrainIds with mmseg's own converter
#   prepare-coco         COCO 2017 train/val images and annotations
#   skd-cityscapes [V]   SKD PSPNet-R101 -> R18, V in pi, pi-pa, pi-pa-ho
#                        (default), pi-pa-fullres, all
#   cwd-cityscapes       CWD logits PSPNet-R101 -> R18
#   cwd-gfl-coco         CWD on the FPN, GFL-R101 -> R50
#   ssim-coco            SSIM on the FPN, Faster R-CNN-R101 -> R50
#
# --dry-run prints the commands of a fresh set-up instead of running them (a
# real run skips a preparation step whose result is already there). Options
# after `--` go to tools/train.py (e.g. `-- --amp`).
#
# Environment: GPUS (default: 4 for Cityscapes, 8 for COCO, as the config
# names say: 4xb2 / 8xb2), NPROC (converter processes, default 8), PYTHON
# (default: the repository's .venv/bin/python if present, else python),
# WORK_ROOT (default work_dirs/reproduce); PORT etc. as in dist_train.sh.
#
# Teacher checkpoints are the OpenMMLab model-zoo URLs in the configs
# (`teacher_ckpt`); mmengine downloads them on first use (into torch's hub
# cache), as it does the students' ImageNet backbone weights.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"  # every path below is relative to the repository root

if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python; fi
fi
export PYTHON  # dist_train.sh / dist_test.sh use the same interpreter
NPROC=${NPROC:-8}
WORK_ROOT=${WORK_ROOT:-work_dirs/reproduce}
DRY_RUN=0

SKD_VARIANTS=(pi pi-pa pi-pa-ho pi-pa-fullres)
skd_config() {
    echo "configs/skd/skd_$1_pspnet-r101-d8_pspnet-r18-d8_4xb2-40k_cityscapes-512x512.py"
}
CWD_SEG_CONFIG=configs/cwd/cwd_logits_pspnet-r101-d8_pspnet-r18-d8_4xb2-80k_cityscapes-512x1024.py
CWD_GFL_CONFIG=configs/cwd/cwd_fpn_gfl-r101_gfl-r50_8xb2-1x_coco.py
SSIM_CONFIG=configs/ssim/ssim_fpn_faster-rcnn-r101_faster-rcnn-r50_8xb2-1x_coco.py

usage() {
    # The header comment above, from "Usage:" to the blank comment line
    # before the teacher note.
    sed -n '/^# Usage:/,/^# WORK_ROOT/p' "$ROOT/tools/reproduce.sh" | sed 's/^# \{0,1\}//'
}

die() {
    echo "reproduce.sh: $*" >&2
    exit 1
}

note() {
    # Comments go to stdout in a dry run, so the printed plan reads as a
    # script; to stderr otherwise, so they do not mix with the tools' output.
    if ((DRY_RUN)); then echo "# $*"; else echo "# $*" >&2; fi
}

run() {
    # Print the command, shell-quoted so it can be pasted; run it unless dry.
    local quoted
    quoted=$(printf '%q ' "$@")
    if ((DRY_RUN)); then
        echo "${quoted% }"
    else
        echo "+ ${quoted% }" >&2
        "$@"
    fi
}

require_python_module() {
    # find_spec locates the package without importing it (and torch with it).
    "$PYTHON" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" 2>/dev/null ||
        die "$PYTHON cannot import $1 ($2); set PYTHON to the environment's interpreter"
}

gpu_count() {
    # GPUS from the environment, else the config's own count.
    local gpus=${GPUS:-$1}
    [[ "$gpus" =~ ^[1-9][0-9]*$ ]] || die "GPUS must be a positive integer, got '$gpus'"
    if [[ "$gpus" != "$1" ]]; then
        echo "reproduce.sh: warning: the published setting uses $1 GPUs x 2 images;" \
            "with $gpus the total batch is $((2 * gpus)): scale the learning rate linearly" \
            "(-- --cfg-options optim_wrapper.optimizer.lr=...; for COCO:" \
            "-- --cfg-options auto_scale_lr.enable=True) or expect other numbers" >&2
    fi
    echo "$gpus"
}

# ---------------------------------------------------------------- datasets

prepare_cityscapes() {
    local root=data/cityscapes
    note "Cityscapes: register at https://www.cityscapes-dataset.com, download"
    note "leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip and unzip both"
    note "into $root/ (or link it there), giving $root/leftImg8bit/{train,val,test}"
    note "and $root/gtFine/{train,val,test}, the layout mmseg's configs expect."
    note "mmseg's converter writes *_gtFine_labelTrainIds.png next to the polygons;"
    note "it needs cityscapesscripts (pip install cityscapesscripts)."
    if ((!DRY_RUN)); then
        for sub in leftImg8bit gtFine; do
            [[ -d "$root/$sub" ]] || die "$root/$sub is missing (see the notes above)"
        done
        if [[ -f "$root/train.txt" ]]; then
            note "skip: $root/train.txt exists (the converter has run)"
            return
        fi
        require_python_module cityscapesscripts 'pip install cityscapesscripts'
    fi
    require_python_module mmseg 'the converter ships with mmsegmentation'
    local converter
    # The converter ships inside the installed mmseg package (its .mim copy
    # of the repository's tools/), wherever pip put it.
    converter=$("$PYTHON" -c 'import importlib.util, os; mmseg = importlib.util.find_spec("mmseg"); print(os.path.join(os.path.dirname(mmseg.origin), ".mim", "tools", "dataset_converters", "cityscapes.py"))')
    [[ -f "$converter" ]] || die "mmseg's converter not found at $converter"
    run "$PYTHON" "$converter" "$root" --nproc "$NPROC"
}

prepare_coco() {
    local root=data/coco base=http://images.cocodataset.org
    note "COCO 2017: mmdet's configs read $root/train2017, $root/val2017 and"
    note "$root/annotations/instances_{train,val}2017.json; no conversion is needed."
    note "(mmdet's own tools/misc/download_dataset.py --dataset-name coco2017 also"
    note "fetches test2017 and unlabeled2017, which these runs do not use.)"
    run mkdir -p "$root"
    local item zip
    for item in train2017:zips/train2017.zip val2017:zips/val2017.zip \
        annotations:annotations/annotations_trainval2017.zip; do
        zip=${item#*:}
        if ((!DRY_RUN)) && [[ -d "$root/${item%%:*}" ]]; then
            note "skip: $root/${item%%:*} exists"
            continue
        fi
        run curl -fL -C - -o "$root/$(basename "$zip")" "$base/$zip"
        run unzip -q -n "$root/$(basename "$zip")" -d "$root"
    done
}

check_data() {
    # Fail before launching N processes when the data set is not in place.
    ((DRY_RUN)) && return
    local dataset=$1 path
    shift
    for path in "$@"; do
        [[ -e "$path" ]] || die "$path is missing: run tools/reproduce.sh prepare-$dataset first"
    done
}

# ---------------------------------------------------------------- training

teacher_url() {
    "$PYTHON" -c 'import sys; from mmengine.config import Config; print(Config.fromfile(sys.argv[1], import_custom_modules=False).model.teacher_ckpt)' "$1"
}

# train_test_export CONFIG GPUS FINAL_CKPT_NAME
train_test_export() {
    local config=$1 gpus=$2 final=$3
    [[ -f "$config" ]] || die "config not found: $config"
    local name work
    name=$(basename "$config" .py)
    work="$WORK_ROOT/$name"
    note "== $name on $gpus GPU(s)"
    note "teacher weights (downloaded on first use): $(teacher_url "$config")"
    run bash tools/dist_train.sh "$config" "$gpus" --work-dir "$work" "${TRAIN_ARGS[@]}"
    # The student is evaluated (the algorithm predicts with the student).
    run bash tools/dist_test.sh "$config" "$work/$final" "$gpus" \
        --work-dir "$work/test" --out "$work/test/metrics.json"
    run "$PYTHON" tools/model_converters/export_student.py "$work/$final" \
        "$work/student" --config "$config"
}

skd_cityscapes() {
    local variant=${1:-pi-pa-ho} variants gpus v
    if [[ "$variant" == all ]]; then
        variants=("${SKD_VARIANTS[@]}")
    else
        [[ " ${SKD_VARIANTS[*]} " == *" $variant "* ]] ||
            die "unknown SKD variant '$variant' (one of: ${SKD_VARIANTS[*]} all)"
        variants=("$variant")
    fi
    gpus=$(gpu_count 4)
    check_data cityscapes data/cityscapes/leftImg8bit data/cityscapes/train.txt
    for v in "${variants[@]}"; do
        train_test_export "$(skd_config "$v")" "$gpus" iter_40000.pth
    done
}

cwd_cityscapes() {
    local gpus
    gpus=$(gpu_count 4)
    check_data cityscapes data/cityscapes/leftImg8bit data/cityscapes/train.txt
    train_test_export "$CWD_SEG_CONFIG" "$gpus" iter_80000.pth
}

coco_target() {
    local config=$1 gpus
    gpus=$(gpu_count 8)
    check_data coco data/coco/train2017 data/coco/val2017 \
        data/coco/annotations/instances_train2017.json
    train_test_export "$config" "$gpus" epoch_12.pth
}

list_targets() {
    local row='%-29s %-4s %s\n    published student -> distilled: %s\n'
    printf '%-29s %-4s %s\n' target GPUs config
    printf "$row" "skd-cityscapes pi" 4 "$(skd_config pi)" \
        '69.10 -> 70.51 mIoU (official SKD README)'
    printf "$row" "skd-cityscapes pi-pa" 4 "$(skd_config pi-pa)" \
        '69.10 -> 71.78 mIoU (official SKD README)'
    printf "$row" "skd-cityscapes pi-pa-ho" 4 "$(skd_config pi-pa-ho)" \
        '69.10 -> 74.08 mIoU (official SKD README)'
    printf "$row" "skd-cityscapes pi-pa-fullres" 4 "$(skd_config pi-pa-fullres)" \
        'none (our exact full-resolution pair-wise variant)'
    printf "$row" cwd-cityscapes 4 "$CWD_SEG_CONFIG" \
        '74.87 -> 75.54 mIoU (mmrazor)'
    printf "$row" cwd-gfl-coco 8 "$CWD_GFL_CONFIG" \
        '40.2 -> 41.9 box AP (mmrazor, CWD on the head; this config: FPN)'
    printf "$row" ssim-coco 8 "$SSIM_CONFIG" \
        '37.4 box AP (mmdet) -> +3.5 AP over the plain student (paper)'
    printf '%-29s %-4s %s\n' prepare-cityscapes - \
        "data/cityscapes/{leftImg8bit,gtFine}, mmseg's converter"
    printf '%-29s %-4s %s\n' prepare-coco - \
        'data/coco/{train2017,val2017,annotations}'
}

# ---------------------------------------------------------------- main

ARGS=()
TRAIN_ARGS=()
while (($#)); do
    case "$1" in
        --dry-run) DRY_RUN=1 ;;
        -h | --help) usage; exit 0 ;;
        --) shift; TRAIN_ARGS=("$@"); break ;;
        *) ARGS+=("$1") ;;
    esac
    shift
done
((${#ARGS[@]})) || { usage >&2; exit 2; }
command=${ARGS[0]}
extra=("${ARGS[@]:1}")
if [[ "$command" != skd-cityscapes && ${#extra[@]} -gt 0 ]]; then
    usage >&2
    die "$command takes no argument (got: ${extra[*]})"
fi

case "$command" in
    list) list_targets ;;
    prepare-cityscapes) prepare_cityscapes ;;
    prepare-coco) prepare_coco ;;
    skd-cityscapes)
        ((${#extra[@]} <= 1)) || die "skd-cityscapes takes one variant"
        skd_cityscapes "${extra[@]}" ;;
    cwd-cityscapes) cwd_cityscapes ;;
    cwd-gfl-coco) coco_target "$CWD_GFL_CONFIG" ;;
    ssim-coco) coco_target "$SSIM_CONFIG" ;;
    *)
        usage >&2
        die "unknown subcommand '$command'"
        ;;
esac
