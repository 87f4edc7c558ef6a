#!/usr/bin/env bash
# On the lent GPU machine (device tool): train a recipe's three runs; see benchmarks/device_train.py.
#   run(command="bash benchmarks/device_train.sh configs/real/RECIPE.yaml 8", carry=["build/device"], timeout_s=600)
set -euo pipefail
recipe=${1:?recipe YAML}
minutes=${2:-8}  # all three runs together
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site build/device/wheels/*.whl
export PYTHONPATH="$PWD/src:/tmp/site" PYTHONUNBUFFERED=1 MSLESION_SHARED_DATA="$PWD/build/device/data"
python3 benchmarks/device_train.py remote "$recipe" --out "${OUT:?the device tool sets OUT}" --minutes "$minutes" 2>&1 | tee "$OUT/device_train.log"
