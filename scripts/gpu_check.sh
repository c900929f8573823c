#!/usr/bin/env bash
# The GPU checks, in one go: the backend parity tests (cuda_graph, tensorrt, pytorch on
# CUDA; each skips saying why where it cannot run) and the backend benchmark.
# Needs the environment of scripts/setup.sh (source env.sh) or any Python with torch,
# onnx, onnxruntime and pytest, run from the repository root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader || true
python3 -m pytest -q -rs -p no:cacheprovider test/test_backends.py test/test_matmul_conv.py
python3 -m dp_ros.cli bench backends --chunks 200 "$@"
