#!/usr/bin/env bash
# Train DCI-CNN on a lent GPU machine in one command, then measure inference there. Run from the repo root there:
#
#     bash benchmarks/device/prepare.sh                 # here, once: wheels + data into .device/ (git-ignored)
#     bash benchmarks/device/train.sh                   # there: carry [".device"]; results land in $OUT
#     DRY_RUN=1 OUT=/tmp/dry bash benchmarks/device/train.sh   # here, on the CPU: the same script, a few seconds
#
# It installs the carried wheels (the machine reaches no package index) and this package, trains with
# configs/default.yaml + the RECIPE's configs + gpu.yaml for TRAIN_TIME, then runs benchmarks/inference.py on the GPU.
# Into $OUT: hub/ (the best weights in Hub layout: config.json, model.safetensors, README.md card), metrics.csv,
# config.yaml (the merged run config), throughput.json (patches/s, megapixels/s, data-wait share, GPU utilisation)
# and train.log (everything printed, the inference table included).
#
# Environment: OUT (required), DRY_RUN=1, RECIPE (v3, the default: configs/v3.yaml, the conditioned network of
# issue 12; v3-wide: the same recipe on the pixel-unshuffled network of configs/v3-wide.yaml, warm-started from its
# 8-minute H200 run in docs/results/gpu-h200-wide (a 2-minute continuation gained 0.02 dB: it levels off); v3-deep:
# the same recipe on DnCNN's 17 layers (configs/v3-deep.yaml), from scratch at gpu.yaml's 1e-3; v4: the same recipe on
# the multi-scale U-Net of configs/v4.yaml (issue 22), warm-started from the bundled default (v4: 193 one-core CPU
# minutes, then 7 minutes on an H200) at v4's 5e-4, the one that still learns; blind:
# configs/blind.yaml + blind-gpu.yaml, the H100 run's), TRAIN_TIME (DD:HH:MM:SS, default 00:00:04:00), INIT_FROM
# (weights to warm-start from, default the bundled v3 (v4: the bundled default), which a conditioned network widens
# with zero weights for its condition inputs; "none" trains from scratch), DATA (default .device/data, else ../shared/data), PYTHON
# (default python3), INFERENCE_TIMEOUT (seconds, default 150), LR (the peak learning rate: 0.0002 with a 100-step
# warm-up when warm-starting, gpu.yaml's 0.001 from scratch), extra `dcicnn fit` arguments after the script name.
# Why a warm start gets a lower rate (H200, docs/results/gpu-h200): v3 warm-started at 0.001 lost 0.3-0.6 dB on
# McMaster JPEG within 4,800 steps and had not won it back 10,000 steps later; at 0.0002 it kept its quality and
# gained a little.
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${OUT:?set OUT to the folder that receives the results}"
DRY_RUN=${DRY_RUN:-0}
PYTHON=${PYTHON:-python3}
RECIPE=${RECIPE:-v3}
case "$RECIPE" in
    v3) recipe_configs=(--config configs/v3.yaml); INIT_FROM=${INIT_FROM:-dcicnn/pretrained/v3} ;;
    v3-wide) recipe_configs=(--config configs/v3.yaml --config configs/v3-wide.yaml)
        INIT_FROM=${INIT_FROM:-docs/results/gpu-h200-wide} ;;
    v3-deep) recipe_configs=(--config configs/v3.yaml --config configs/v3-deep.yaml); INIT_FROM=${INIT_FROM:-none} ;;
    v4) recipe_configs=(--config configs/v3.yaml --config configs/v4.yaml)
        INIT_FROM=${INIT_FROM:-dcicnn/pretrained/default}; LR=${LR:-0.0005} ;;
    blind) recipe_configs=(--config configs/blind.yaml --config configs/blind-gpu.yaml) ;;
    *) echo "RECIPE must be v3, v3-deep, v3-wide, v4 or blind, got $RECIPE" >&2; exit 2 ;;
esac
INIT_FROM=${INIT_FROM:-dcicnn/pretrained/v3}
INFERENCE_TIMEOUT=${INFERENCE_TIMEOUT:-150}
if [ -z "${DATA:-}" ]; then
    if [ -d .device/data/bsds500 ]; then DATA=.device/data; else DATA=../shared/data; fi
fi
mkdir -p "$OUT"
exec > >(tee "$OUT/train.log") 2>&1
echo "== $(date -u +%FT%TZ) train.sh: DRY_RUN=$DRY_RUN RECIPE=$RECIPE DATA=$DATA INIT_FROM=$INIT_FROM"

RUN=$(mktemp -d "${TMPDIR:-/tmp}/dcicnn-gpu-run.XXXXXX")
if [ "$DRY_RUN" = 1 ]; then
    TRAIN_TIME=${TRAIN_TIME:-00:00:00:20}
    # The same configs and code path on this CPU: tiny patches, batches and validation, 2 workers, bf16 autocast.
    recipe=(--trainer.accelerator cpu --trainer.val_check_interval 00:00:00:08 --trainer.limit_val_batches 2
        --trainer.log_every_n_steps 2
        --data.patch_size 32 --data.batch_size 8 --data.val_batch_size 4 --data.val_crop 64 --data.num_workers 2
        --data.patches_per_image 4 --throughput.warmup_steps 2)
    inference=(--device cpu --sizes 0.05 --whole-max 0 --dtypes fp32 --compile off)
else
    TRAIN_TIME=${TRAIN_TIME:-00:00:04:00}
    echo "== installing the carried wheels and dcicnn"
    SITE=$RUN/site
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$SITE" \
        .device/wheels/*.whl
    nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || true
    nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv,noheader -l 15 >"$RUN/nvidia-smi.csv" &
    SMI=$!
    trap 'kill $SMI 2>/dev/null || true' EXIT
    recipe=()
    inference=(--device cuda --sizes 1 4 24 --whole-max 4 --dtypes fp32 bf16 --compile off on --compile-sizes 4)
fi
# This package, laid out as pyproject.toml's package-dir installs it (dcicnn, dcicnn.model_cards, dcicnn_cli), by copy
# rather than by a build: the machine's setuptools may predate what pyproject.toml needs. `python -P` keeps the
# working tree's own dcicnn/ (which lacks model_cards) off sys.path; relative paths still resolve from here.
SITE=${SITE:-$RUN/site}
mkdir -p "$SITE"
rm -rf "$SITE/dcicnn" "$SITE/dcicnn_cli"
cp -r dcicnn "$SITE/dcicnn"
cp -r model_cards "$SITE/dcicnn/model_cards"
cp -r cli "$SITE/dcicnn_cli"
export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
"$PYTHON" -P -c "import albumentations, jsonargparse, lightning, dcicnn, dcicnn_cli.train; print('dcicnn from', dcicnn.__file__)"

init=()
if [ "$INIT_FROM" != none ]; then
    init=(--model.init_from "$INIT_FROM" --model.lr "${LR:-0.0002}" --model.warmup_steps 100)
elif [ -n "${LR:-}" ]; then
    init=(--model.lr "$LR")
fi

echo "== training for $TRAIN_TIME"
"$PYTHON" -P -m dcicnn_cli.main fit \
    --config configs/default.yaml "${recipe_configs[@]}" --config configs/gpu.yaml \
    --data.train_dirs "[$DATA/bsds500/train, $DATA/bsds500/test]" --data.val_dirs "[$DATA/mcmaster]" \
    --trainer.max_time "$TRAIN_TIME" --trainer.default_root_dir "$RUN" \
    --trainer.logger lightning.pytorch.loggers.CSVLogger --trainer.logger.save_dir "$RUN" \
    --trainer.logger.name gpu --trainer.logger.version 0 \
    --checkpoint.export_dir "$OUT/hub" --throughput.summary_path "$OUT/throughput.json" \
    "${init[@]}" "${recipe[@]}" "$@"
cp "$RUN/gpu/version_0/metrics.csv" "$RUN/gpu/version_0/config.yaml" "$OUT/"
[ -f "$RUN/nvidia-smi.csv" ] && { echo "== nvidia-smi samples (timestamp, utilisation, memory)"; cat "$RUN/nvidia-smi.csv"; }
echo "== throughput"
cat "$OUT/throughput.json"

echo "== inference benchmark (at most ${INFERENCE_TIMEOUT}s)"
timeout "$INFERENCE_TIMEOUT" "$PYTHON" -P benchmarks/inference.py "${inference[@]}" ||
    echo "inference benchmark stopped (exit $?): the rows above are complete"
echo "== $(date -u +%FT%TZ) done"
