#!/usr/bin/env bash
# Build the shipped default model msl-face (v12) from scratch: the recipe of model_cards/msl-face.md.
#   1. The network (msl-tiny-128, v1's weights): three phases that each resume from the previous phase's last
#      checkpoint. About 1.2 s per step on 2 CPU cores with AVX512-BF16 and bf16 autocast (7,750 steps: 2.6 hours);
#      on a CPU without bf16 units pass MIXED_PRECISION=no (bf16 autocast is about 30x slower there).
#   1b. v11: that network's EMA weights trained 4,647 more steps in a fresh run (fresh Adam and discriminator), the
#      generator's learning rate at a quarter, half the faces zoomed in by 1-2x (--scale-aug 0.5): about 80 minutes.
#   2. The face draft's PCA: 200 components of the training faces at 64² (scripts/fit_face_prior.py, about a minute).
#   3. Its refiner (v3): a small U-Net on the PCA's 64² grid that turns the PCA's blurry fit into a sharper face,
#      trained with L1 and a patch discriminator (`train.py --model pca-refiner-64`; 7,000 steps of 16 faces, about
#      62 minutes on 2 CPU cores at 30 img/s).
#   3b. Its fine level (v4): the refiner gets a level at twice the grid's side (128²) that reads the known pixels
#      there, warm-started from step 3's refiner (`--model pca-refiner-128 --init-from` step 3): 1,500 steps as in
#      step 3, then to step 4,250 with the adversarial weight at 0.15 (about 75 minutes at 14 img/s).
#   3c. v5: the whole refiner fine-tuned from 3b with the MSL paper's perceptual loss (and, for the first 800 steps,
#      its style loss) on the VGG16 stand-in, the hole's L1 weighted 4x instead of 6x, adversarial weight 0.2: 1,600
#      steps (about 70 minutes at 6.2 img/s).
#   3d. v6: 3c's run continued to step 3,800 (hole L1 3x, perceptual weight 0.25, adversarial 0.3), then to 6,000
#      with the L1 losses on 4x4-pixel means, adversarial weight 1 and the discriminator's rate doubled (about 130
#      minutes with bf16 autocast): the `DraftWeights` defaults.
#   3e. v8-v10: a bank of 256 real eye pairs (scripts/fit_exemplar_bank.py, seconds).
#   4. The export: the network's float16 EMA weights, the draft and the eye bank in one pipeline
#      (scripts/export_shipped_model.py; its stages' settings are the config dataclasses' defaults).
# The shipped refiner was trained by the former scripts/train_prior_refiner.py (CHANGELOG.md, 0.2.0), whose losses
# and schedule `train.py`'s DraftTask reproduces; its augmentation differed (random crops of 88-100 % of the face).
# Needs ../shared/data/faces128 and the HED VGG16 stand-in (paths in the config).
#
#   bash scripts/train_msl_face.sh [OUTPUT_DIR] [FINAL_STEP]    (every step resumes with --resume latest)
set -euo pipefail

out=${1:-runs/msl-face}
final_step=${2:-7750}  # the shipped run's last step
python=${PYTHON:-.venv/bin/python}
config=configs/msl-tiny-128-faces128.yaml
precision=(--mixed-precision "${MIXED_PRECISION:-bf16}")

# Phase 1 (steps 0-3,500): the paper's loss balance (eq. 12, weights rescaled for the stand-in VGG16).
"$python" train.py --config "$config" "${precision[@]}" --output-dir "$out" --max-steps 3500
# Phase 2 (3,500-5,000): style and adversarial weights / 10, so reconstruction dominates (less speckle, higher SSIM).
"$python" train.py --config "$config" "${precision[@]}" --w-style 0.0036 --w-adv 0.01 --output-dir "$out" \
    --max-steps 5000 --resume latest
# Phase 3 (5,000-end): as phase 2, plus clusters of small specks in 30 % of the mask shapes (tiny isolated holes).
"$python" train.py --config "$config" "${precision[@]}" --w-style 0.0036 --w-adv 0.01 --mask-specks 0.3 \
    --output-dir "$out" --max-steps "$final_step" --resume latest
"$python" scripts/plot_training.py "$out" --out model_cards/msl-face-training.png --mark 3500 --mark 5000
# v11 (phase 4): phase 3's EMA network trained on in a fresh run at a quarter of the generator's learning rate, half
# the faces zoomed in (the scale the default path meets at 256²)
"$python" train.py --config "$config" "${precision[@]}" --w-style 0.0036 --w-adv 0.01 --mask-specks 0.3 \
    --scale-aug 0.5 --lr-g 5e-5 --lr-d 1e-4 --init-from "$out/final" --output-dir "$out-v11" --max-steps 4647 \
    --val-every 1000 --sample-every 1000
# The face draft: its PCA, then its refiner in five phases, each resuming or warm-starting from the last.
faces="../shared/data/faces128/train-*.parquet"
vgg=(--vgg-weights ../shared/weights/vgg16_hed/vgg16_features.safetensors --vgg-normalization caffe)
draft=(--dataset "$faces" --val-dataset ../shared/data/faces128/val-00000.parquet --val-count 100 --mask-kind face
       --batch-size 16 --lr-g 2e-4 --lr-d 2e-4 --checkpoint-every 250 --val-every 500 --sample-every 500)
"$python" scripts/fit_face_prior.py "$faces" "$out/face-prior.safetensors" --components 300
"$python" train.py --model pca-refiner-64 "${draft[@]}" --prior-weights "$out/face-prior.safetensors" \
    --w-draft-hole 6 --lowpass 1 --w-draft-adv 0.05 --w-draft-perc 0 --output-dir "$out/draft-v3" --max-steps 7000
fine=("${draft[@]}" --model pca-refiner-128 --w-draft-hole 6 --lowpass 1 --w-draft-perc 0 --output-dir "$out/draft-v4")
"$python" train.py "${fine[@]}" --init-from "$out/draft-v3/final" --w-draft-adv 0.05 --max-steps 1500
"$python" train.py "${fine[@]}" --init-from "$out/draft-v3/final" --w-draft-adv 0.15 --max-steps 4250 --resume latest
perc=("${draft[@]}" --model pca-refiner-128 "${vgg[@]}" --init-from "$out/draft-v4/final" --output-dir "$out/draft-v6"
      --lowpass 1 "${precision[@]}")
"$python" train.py "${perc[@]}" --w-draft-hole 4 --w-draft-adv 0.2 --w-draft-perc 0.1 --w-draft-style 0.5 --max-steps 800
"$python" train.py "${perc[@]}" --w-draft-hole 4 --w-draft-adv 0.2 --w-draft-perc 0.1 --max-steps 1600 --resume latest
"$python" train.py "${perc[@]}" --w-draft-hole 3 --w-draft-adv 0.3 --w-draft-perc 0.25 --max-steps 3800 --resume latest
"$python" train.py "${draft[@]}" --model pca-refiner-128 "${vgg[@]}" "${precision[@]}" --init-from "$out/draft-v4/final" \
    --output-dir "$out/draft-v6" --lr-d 4e-4 --max-steps 6000 --resume latest  # the DraftWeights defaults
"$python" scripts/fit_exemplar_bank.py "$faces" "$out/exemplars.safetensors" --count 256 --keep 0.5 --max-axis 0.8 \
    --seed 0
"$python" scripts/export_shipped_model.py "$out-v11/final" --draft "$out/draft-v6/final" \
    --exemplars "$out/exemplars.safetensors"
