#!/usr/bin/env bash
# Network bake-off at equal CPU time (issue 22): each arm trains with `dcicnn fit` on v3's recipe (configs/v3.yaml +
# configs/v4.yaml's patches) for the same wall time, one after the other, pinned to one core, and validates on
# McMaster's crops at fixed times. Each arm's metrics.csv lands in runs/bakeoff/<arm>/; `python
# benchmarks/val_curves.py` turns them into the README's table.
#
#     bash benchmarks/bakeoff.sh                       # every arm, 20 minutes each
#     ARMS="unet-32x3x2 plain-64x8" TIME=00:00:05:00 CORE=0 bash benchmarks/bakeoff.sh
#
# Environment: ARMS (names below), TIME (per arm, DD:HH:MM:SS), VAL_EVERY (validation interval, DD:HH:MM:SS),
# CORE (the core to pin to; empty: no pinning), ROOT (default runs/bakeoff), DATA (default ../shared/data), V4_CONFIG
# (default configs/v4.yaml; the published bake-off ran on v3's mix alone, before v4.yaml added photos saved twice:
# `git show 1b0d204:configs/v4.yaml > /tmp/v4-bakeoff.yaml; V4_CONFIG=/tmp/v4-bakeoff.yaml bash benchmarks/bakeoff.sh`).
set -euo pipefail
cd "$(dirname "$0")/.."
ARMS=${ARMS:-"plain-64x8 unet-32x3x2 unet-32x4x2 unet-48x3x1 plain-64x8-warm"}
TIME=${TIME:-00:00:20:30}
VAL_EVERY=${VAL_EVERY:-00:00:05:00}
CORE=${CORE-1}
ROOT=${ROOT:-runs/bakeoff}
DATA=${DATA:-../shared/data}
DCICNN=${DCICNN:-dcicnn}
V4_CONFIG=${V4_CONFIG:-configs/v4.yaml}

arm_args() {
    local unet=(--model.network.init_args.arch unet --model.network.init_args.depth 8)
    case "$1" in
        # v3's shape (8 x 64, no BatchNorm), from scratch
        plain-64x8) echo --model.network.init_args.arch plain --model.network.init_args.width 64 ;;
        # v3 itself, trained on (the warm-started reference a new network has to catch)
        plain-64x8-warm) echo --model.network.init_args.arch plain --model.network.init_args.width 64 \
            --model.init_from dcicnn/pretrained/v3 --model.lr 0.0002 ;;
        # U-Nets: width x scales x blocks per scale and side
        unet-*) IFS=x read -r width scales blocks <<< "${1#unet-}"
            echo "${unet[@]}" --model.network.init_args.width "$width" --model.network.init_args.scales "$scales" \
                --model.network.init_args.blocks "$blocks" ;;
        *) echo "unknown arm $1" >&2; return 2 ;;
    esac
}

pin=()
if [ -n "$CORE" ]; then pin=(taskset -c "$CORE"); fi
for arm in $ARMS; do
    args=$(arm_args "$arm")
    echo "== $(date -u +%FT%TZ) $arm: $args"
    # shellcheck disable=SC2086  # the arm's arguments are words
    OMP_NUM_THREADS=1 "${pin[@]}" "$DCICNN" fit --config configs/default.yaml --config configs/v3.yaml \
        --config "$V4_CONFIG" $args \
        --trainer.max_time "$TIME" --trainer.val_check_interval "$VAL_EVERY" --trainer.enable_progress_bar false \
        --trainer.default_root_dir "$ROOT/$arm" --data.num_workers 1 --data.val_crop 192 \
        --data.train_dirs "[$DATA/bsds500/train, $DATA/bsds500/test]" --data.val_dirs "[$DATA/mcmaster]" \
        --checkpoint.export_dir "$ROOT/$arm/hub"
done
echo "== $(date -u +%FT%TZ) done"
