#!/usr/bin/env bash
# THE command for the device tool (after `bash bench/prepare_gpu.sh` here):
#   run(command="bash bench/run_gpu.sh", carry=[".whl", ".bench"], timeout_s=540)
# Installs the carried wheels, then runs bench/gpu.py (all sections, ~7.5 minutes in all); results land
# in $OUT: gpu_<date>.json, gpu_log.txt, ceiling/anchor.json, ceiling/ceiling_log.txt.
# Extra arguments go to gpu.py, e.g. `bash bench/run_gpu.sh --sections headline --budget headline=420`.
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl .bench/wheels/*.whl || exit 1
chmod -R +x /tmp/site/ray/core/src/ray
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 LABELTUNE_BENCH_DATA=/tmp/labeltune-bench
export OUT=${OUT:-$PWD/.bench/out}
mkdir -p "$OUT"
echo "wheels installed in $(( $(date +%s) - t0 )) s"
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu --format=csv,noheader || true
python3 bench/gpu.py --out "$OUT" --ceiling-script .bench/gpu_ceiling.py "$@" 2>&1 | tee "$OUT/gpu_log.txt"
rc=${PIPESTATUS[0]}
echo "run_gpu.sh: exit $rc after $(( $(date +%s) - t0 )) s"
exit "$rc"
