#!/usr/bin/env bash
# The GPU checks of issues 10 and 9 as one prepared run on a GPU machine (the session's
# `device` tool runs it over a copy of the working tree; its python has torch, numpy, pandas,
# pyarrow, scipy, pytest but not snakemake, so the workflow GPU test skips there):
#
#   run(command="bash ci/gpu_session.sh", carry=[".gpu_data"], timeout_s=560)
#
# .gpu_data/ (git-ignored) holds the MovieLens training/test split
# made here by the workflow; without it the MovieLens runs are left out:
#   mkdir -p .gpu_data && cp results/data/movielens100k_file_order/seed0/completion_n10000.npz .gpu_data/
#
# Writes under $OUT: session.log (device, versions), gpu_tests.log, gpu_benchmark.log and,
# with the data, movielens_runs.tar (Figure 3's MovieLens runs at their workflow paths under
# results/runs/, device cuda: untar them in the repository root here).
set -uo pipefail
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
OUT=${OUT:-/tmp/gpu_session}
mkdir -p "$OUT"
{
    nvidia-smi
    python -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
} 2>&1 | tee "$OUT/session.log"
timeout 180 python -m pytest -m gpu -p no:cacheprovider tests/test_device.py tests/test_batched.py \
    tests/test_gradients.py 2>&1 | tee "$OUT/gpu_tests.log"
timeout 240 python benchmarks/gpu.py 2>&1 | tee "$OUT/gpu_benchmark.log"
if [ -f .gpu_data/completion_n10000.npz ] && [ "${SKIP_MOVIELENS:-0}" != 1 ]; then
    timeout "${MOVIELENS_SECONDS:-300}" python ci/gpu_movielens.py .gpu_data/completion_n10000.npz "$OUT/runs" \
        2>&1 | tee -a "$OUT/session.log"
    tar -cf "$OUT/movielens_runs.tar" -C "$OUT/runs" . && rm -rf "$OUT/runs"
fi
