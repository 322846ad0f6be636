#!/usr/bin/env bash
# THE command for the device tool (after `bash bench/prepare_gpu.sh` here):
#   run(command="bash bench/run_gpu.sh", carry=[".whl", ".bench"], timeout_s=540)
# Installs the carried wheels, then runs bench/gpu.py (all sections); results land in $OUT:
# gpu_<date>.json, gpu_log.txt, ceiling/anchor.json, ceiling/ceiling_log.txt.
# Extra arguments go to gpu.py, e.g. `bash bench/run_gpu.sh --sections headline --budget headline=480 --deadline-s 500`.
# gpu.py starts the NVIDIA MPS control daemon for its `on` arms and quits it itself; the trap below quits it
# as well should gpu.py die first (only when no daemon ran before this script: one found running is not ours).
set -uo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
mps_pipe=/tmp/nvidia-mps   # gpu.py's MPS_DIRS: CUDA's default pipe folder
mps_before=no
[ -e "$mps_pipe/control" ] && mps_before=yes
quit_mps() {
  if [ "$mps_before" = no ] && [ -e "$mps_pipe/control" ] && command -v nvidia-cuda-mps-control >/dev/null; then
    echo quit | CUDA_MPS_PIPE_DIRECTORY=$mps_pipe timeout 30 nvidia-cuda-mps-control >/dev/null 2>&1 || true
    echo "run_gpu.sh: asked the MPS control daemon to quit"
  fi
}
trap quit_mps EXIT
trap 'exit 143' TERM INT
python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl .bench/wheels/*.whl || exit 1
chmod -R +x /tmp/site/ray/core/src/ray
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 LABELTUNE_BENCH_DATA=/tmp/labeltune-bench
export OUT=${OUT:-$PWD/.bench/out}
mkdir -p "$OUT"
echo "wheels installed in $(( $(date +%s) - t0 )) s; MPS daemon running before this script: $mps_before;" \
     "nvidia-cuda-mps-control: $(command -v nvidia-cuda-mps-control || echo missing)"
nvidia-smi --query-gpu=name,memory.used,memory.total,utilization.gpu,compute_mode --format=csv,noheader || true
python3 bench/gpu.py --out "$OUT" --ceiling-script .bench/gpu_ceiling.py "$@" 2>&1 | tee "$OUT/gpu_log.txt"
rc=${PIPESTATUS[0]}
echo "run_gpu.sh: exit $rc after $(( $(date +%s) - t0 )) s"
exit "$rc"
