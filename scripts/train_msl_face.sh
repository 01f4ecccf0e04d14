#!/usr/bin/env bash
# Train the shipped default model msl-face from scratch: the recipe of model_cards/msl-face.md, in three phases that
# each resume from the previous phase's last checkpoint. Needs ../shared/data/faces128 and the HED VGG16 stand-in
# (paths in the config). About 1.2 s per step on 2 CPU cores with bf16: 7,750 steps take about 2.6 hours.
#
#   bash scripts/train_msl_face.sh [OUTPUT_DIR] [FINAL_STEP]
set -euo pipefail

out=${1:-runs/msl-face}
final_step=${2:-7750}  # the shipped run's last step
python=${PYTHON:-.venv/bin/python}
config=configs/msl-tiny-128-faces128.yaml

# Phase 1 (steps 0-3,500): the paper's loss balance (eq. 12, weights rescaled for the stand-in VGG16).
"$python" train.py --config "$config" --output-dir "$out" --max-steps 3500
# Phase 2 (3,500-5,000): style and adversarial weights / 10, so reconstruction dominates (less speckle, higher SSIM).
"$python" train.py --config "$config" --w-style 0.0036 --w-adv 0.01 --output-dir "$out" --max-steps 5000 --resume latest
# Phase 3 (5,000-end): as phase 2, plus clusters of small specks in 30 % of the mask shapes (tiny isolated holes).
"$python" train.py --config "$config" --w-style 0.0036 --w-adv 0.01 --mask-specks 0.3 --output-dir "$out" \
    --max-steps "$final_step" --resume latest
# float16 copy of the EMA generator into the package, and the training curves for the model card.
"$python" scripts/export_shipped_model.py "$out/final"
"$python" scripts/plot_training.py "$out" --out model_cards/msl-face-training.png --mark 3500 --mark 5000
