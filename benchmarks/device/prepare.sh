#!/usr/bin/env bash
# Prepare what benchmarks/device/train.sh needs on a lent GPU machine, which reaches no package index and receives
# only the repository plus at most 64 MiB of named ignored paths. Run here, from anywhere:
#
#     bash benchmarks/device/prepare.sh         # -> .device/wheels, .device/data; then check the size budget
#
# .device/ is git-ignored; carry it with the run: carry=[".device"], command `bash benchmarks/device/train.sh`.
set -euo pipefail
cd "$(dirname "$0")/../.."
SHARED=${SHARED:-../shared/data}
if [ -x .venv/bin/python ]; then PYTHON=${PYTHON:-.venv/bin/python}; else PYTHON=${PYTHON:-python3}; fi
LIMIT_MIB=64

mkdir -p .device/wheels .device/data
# Wheels for the machine's interpreter (CPython 3.12, manylinux x86_64), whatever this machine runs.
platforms=()
for tag in manylinux1 manylinux2014 manylinux_2_17 manylinux_2_24 manylinux_2_27 manylinux_2_28 manylinux_2_31 \
    manylinux_2_34 manylinux_2_35; do
    platforms+=(--platform "${tag}_x86_64")
done
grep -v '^\s*#' benchmarks/device/requirements.txt | grep -v '^\s*$' >.device/requirements.txt
rm -f .device/wheels/*.whl
"$PYTHON" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .device/wheels -r .device/requirements.txt
expected=$(wc -l <.device/requirements.txt)
found=$(find .device/wheels -name '*.whl' | wc -l)
if [ "$found" -ne "$expected" ]; then
    echo "prepare.sh: expected $expected wheels, found $found" >&2
    exit 1
fi

# Training images (BSDS500 train+test, byte for byte) and the validation set (McMaster: its TIFFs re-saved with
# deflate compression, the same pixels and names in three quarters of the bytes).
for set in bsds500 mcmaster; do
    if [ ! -d "$SHARED/$set" ]; then
        echo "prepare.sh: $SHARED/$set not found (set SHARED=<path to shared/data>)" >&2
        exit 1
    fi
    rm -rf ".device/data/$set"
    cp -r "$SHARED/$set" ".device/data/$set"
done
"$PYTHON" - .device/data/mcmaster <<'PY'
import sys
from pathlib import Path

import numpy as np
from PIL import Image

for path in sorted(Path(sys.argv[1]).glob("*.tif")):
    with Image.open(path) as image:
        image.load()
    image.save(path, compression="tiff_adobe_deflate")
    with Image.open(path) as saved:
        assert np.array_equal(np.asarray(saved), np.asarray(image)), path
PY

# The size budget: what travels is the working tree (tracked and untracked-not-ignored files) plus .device/.
tree_bytes=$( (git ls-files -z --cached --others --exclude-standard | xargs -0 -r du -cb --apparent-size 2>/dev/null \
    | tail -1 | cut -f1) || echo 0)
device_bytes=$(du -sb --apparent-size .device | cut -f1)
total=$((tree_bytes + device_bytes))
printf 'working tree %.1f MiB + .device %.1f MiB (wheels %.1f, data %.1f) = %.1f MiB of %d MiB\n' \
    "$(echo "$tree_bytes / 1048576" | bc -l)" "$(echo "$device_bytes / 1048576" | bc -l)" \
    "$(echo "$(du -sb --apparent-size .device/wheels | cut -f1) / 1048576" | bc -l)" \
    "$(echo "$(du -sb --apparent-size .device/data | cut -f1) / 1048576" | bc -l)" \
    "$(echo "$total / 1048576" | bc -l)" "$LIMIT_MIB"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
    echo "prepare.sh: over the ${LIMIT_MIB} MiB the device machine accepts" >&2
    exit 1
fi
