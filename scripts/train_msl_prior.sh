#!/usr/bin/env bash
# Train msl-prior-128 (the face prior as a second network input) from scratch. Not the shipped model: on the CPU
# budget it lost about 1 dB to msl-face on the NVIDIA masks (model_cards/msl-face.md, "Approaches that did not
# ship"); scripts/device_train.sh continues it on a GPU. A curriculum in phases that each resume from the previous phase's last checkpoint:
# structure first at 64², then texture at 128², the adversarial term last. Needs ../shared/data/faces128 and the
# HED VGG16 stand-in (paths in the config).
#
#   bash scripts/train_msl_prior.sh [OUTPUT_DIR] [PHASE1_END] [PHASE2_END] [FINAL_STEP]
set -euo pipefail

out=${1:-runs/msl-prior-128}
phase1=${2:-8000}
phase2=${3:-11000}
final_step=${4:-12500}
python=${PYTHON:-.venv/bin/python}
config=configs/msl-prior-128-faces128.yaml

# The face prior: PCA of the training faces at 64² (mirrored), about a minute.
[ -f runs/face-prior.safetensors ] || "$python" scripts/fit_face_prior.py "../shared/data/faces128/train-*.parquet" \
    runs/face-prior.safetensors
resume=()
[ -d "$out/checkpoints" ] && resume=(--resume latest)
# Phase 1 (structure): 64² frames, batch 16, L1 only (no VGG, no discriminator): about 32 img/s on 2 cores.
"$python" train.py --config "$config" --resolution 64 --batch-size 16 --lr-g 0.0003 --w-perc 0 --w-style 0 \
    --output-dir "$out" --max-steps "$phase1" "${resume[@]}"
# Phase 2 (texture): 128² frames, batch 8, L1 + perceptual + style.
"$python" train.py --config "$config" --batch-size 8 --lr-g 0.0002 --output-dir "$out" --max-steps "$phase2" \
    --resume latest
# Phase 3 (sharpness): the adversarial term joins at a tenth of the paper's weight.
"$python" train.py --config "$config" --batch-size 8 --lr-g 0.0001 --w-adv 0.01 --output-dir "$out" \
    --max-steps "$final_step" --resume latest
# the training curves
"$python" scripts/plot_training.py "$out" --out "$out/training.png" --mark "$phase1" --mark "$phase2"
