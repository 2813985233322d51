#!/usr/bin/env bash
# GPU check (issue 12): LoRA SFT tokens/s, MFU and memory, and evaluation items/s against lm-eval's
# HF backend, on Gemma-2-2B's published architecture, randomly initialised: no weights download.
# Under 8 minutes on one GPU (the run is capped at 7.5), plus up to 7 for the vLLM greedy-parity step
# where vllm is installed (evaluate.backend: vllm; skipped with a note where it is not). Needs the CUDA build of torch (README, GPU
# install) and the dev extra (lm-eval). Details and the formulas: bench/gpu_check.py.
#
#   bench/gpu_check.sh [OUT_DIR]      (default bench/results)
#
# With a CUDA device: the 2B shape at the paper's settings -> OUT_DIR/gpu_check.json.
# Without one: the GPU parts are skipped and the same code runs on a tiny shape on the CPU
# -> OUT_DIR/gpu_check_cpu.json (tests/test_gpu_check.py runs this), so the script is known to work
# before a GPU is lent.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-bench/results}
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false

if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || true
  # -k: a wedged CUDA call can ignore SIGTERM
  timeout -k 15 450 "$PY" bench/gpu_check.py --shape gemma2-2b --device cuda --out "$OUT/gpu_check.json"
  # evaluate.backend: vllm: greedy parity with the HF engine, only where vllm is installed (optional)
  if "$PY" -c 'import vllm' 2>/dev/null; then
    timeout -k 15 420 "$PY" bench/gpu_check.py --shape gemma2-2b --device cuda --only vllm-parity \
      --out "$OUT/gpu_check_vllm.json"
  else
    echo "gpu_check: vllm not installed: the vLLM greedy-parity step is skipped (optional backend)"
  fi
else
  echo "gpu_check: no CUDA device: GPU parts skipped; the tiny shape runs on the CPU (code paths only)"
  timeout -k 15 300 "$PY" bench/gpu_check.py --shape tiny --device cpu --train-steps 3 \
    --out "$OUT/gpu_check_cpu.json"
  echo "gpu_check: the vLLM greedy-parity step needs a GPU and vllm: skipped"
fi
