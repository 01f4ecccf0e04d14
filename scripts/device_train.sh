#!/usr/bin/env bash
# The one command of a GPU window (docs/device-training.md). Two targets:
#
# TARGET=refiner (default): fine-tune the shipped msl-face's face-prior refiner (`PriorRefiner`, what draws eyes,
# nose and mouth in large holes) with scripts/train_prior_refiner.py on the packed faces for a wall-clock budget, on
# one GPU in bf16, from the refiner of INIT (a save_pretrained folder with a prior; default the shipped msl-face),
# then leave in $OUT:
#   refiner.safetensors      the EMA refiner alone, float16 (12 MiB): scripts/export_shipped_model.py
#                            src/hf_faceinpaint/weights/msl-face --refiner refiner.safetensors --out DIR makes the model
#   refiner-log.csv          step, hole L1, L1, adversarial, discriminator, perceptual, style, faces/s, feature matching,
#                            local adversarial, the eyes' and mouth's perceptual and style
# With FINE_BLOCKS=N the refiner gets N residual blocks at its fine level, trained alone (the face on the grid stays
# INIT's) with a local discriminator on the eyes and the mouth and half the holes over them: the CPU run of
# 2026-12-06 (the model card's "Approaches that did not ship"), at a GPU's scale.
#
# TARGET=network: train msl-face's network (preset msl-prior-128) with `accelerate launch` on every GPU found, in bf16,
# and leave in $OUT:
#   msl-face-gpu/            the EMA generator, a float16 save_pretrained folder (config.json, model.safetensors, card)
#   discriminator.safetensors  the discriminator, to continue the GAN in the next window (INIT_D)
#   metrics.jsonl            losses, validation PSNR/SSIM/L1 (with Telea's on the same pairs) and perf/ records
#   samples.png              the last sample grid (masked input / output / ground truth)
#   gpu.json                 GPU, batch, preset, img/s, step time, peak memory, TFLOP/s and its share of the bf16 peak
#
#   PACK=.devicepack OUT=/path TRAIN_MINUTES=8 [TARGET=refiner|network] [INIT=DIR] [INIT_D=FILE] [BATCH=256] [FINE_BLOCKS=4]
#       [W_ADV=0.01] bash scripts/device_train.sh
#   PACK=DIR OUT=DIR DRY_RUN=1 bash scripts/device_train.sh     # the same path on the CPU: a few small steps
#
# PACK comes from scripts/pack_device_data.py. For the network, INIT is a save_pretrained folder of msl-prior-128 to
# start the generator from (an earlier window's $OUT/msl-face-gpu); INIT_D defaults to the discriminator.safetensors
# beside INIT when there is one. Wheels the machine lacks (datasets, dill, multiprocess) travel in .whl/ and are
# installed into /tmp/site.
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=${PACK:-.devicepack}
OUT=${OUT:?set OUT to the folder that receives the results}
TRAIN_MINUTES=${TRAIN_MINUTES:-8}
DRY_RUN=${DRY_RUN:-0}
INIT=${INIT:-}
INIT_D=${INIT_D:-}
W_ADV=${W_ADV:-0.01}
TARGET=${TARGET:-refiner}
FINE_BLOCKS=${FINE_BLOCKS:-0}
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
RUN=${RUN:-runs/device}

for file in face-prior.safetensors vgg16-pool3.safetensors val-00000.parquet; do
    [ -f "$PACK/$file" ] || { echo "error: $PACK/$file is missing: run scripts/pack_device_data.py $PACK" >&2; exit 2; }
done
if [ -d .whl ] && ! "$PYTHON" -c "import datasets" 2>/dev/null; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
export PYTHONPATH=src${PYTHONPATH:+:$PYTHONPATH} PYTHONUNBUFFERED=1
gpus=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
if [ "$DRY_RUN" != 1 ] && [ "$gpus" = 0 ]; then
    echo "error: no GPU found (DRY_RUN=1 runs the recipe on the CPU)" >&2; exit 2
fi
mkdir -p "$OUT"
rm -rf "$RUN"

if [ "$TARGET" = refiner ]; then
    # the losses of v6's last CPU phase (2026-12-03, what drew its eyes and lips): L1 on 4×4 means (hole weight 3),
    # adversarial 1 (discriminator learning rate 4e-4), perceptual 0.25 (VGG16 pool1-pool3)
    if [ "$DRY_RUN" = 1 ]; then
        shape=(--device cpu --batch-size "${BATCH:-2}" --steps 2 --log-every 1)
    else
        # batch 128 in bf16 on one GPU; 12 processes draw the batches (augmentation and masks, ~70 ms per batch each)
        shape=(--device cuda --bf16 --batch-size "${BATCH:-128}" --steps 100000000 --minutes "$TRAIN_MINUTES"
               --workers 12 --log-every 50 --save-every 100000000)
    fi
    "$PYTHON" scripts/train_prior_refiner.py "$PACK/train-*.parquet" "$RUN" --prior "${INIT:-msl-face}" --fine \
        --warm-start --hole-weight 3 --lowpass 4 --adv-weight 1 --d-lr 4e-4 --perceptual-weight 0.25 \
        --vgg-weights "$PACK/vgg16-pool3.safetensors" --export-refiner "$OUT/refiner.safetensors" "${shape[@]}" \
        $([ "$FINE_BLOCKS" = 0 ] || echo --fine-blocks "$FINE_BLOCKS" --freeze-coarse --local-weight 1 --part-share 0.5)
    cp "$RUN/log.csv" "$OUT/refiner-log.csv"
    exit 0
elif [ "$TARGET" != network ]; then
    echo "error: TARGET must be refiner or network, not $TARGET" >&2; exit 2
fi

if [ -n "$INIT" ] && [ -z "$INIT_D" ] && [ -f "$INIT/../discriminator.safetensors" ]; then
    INIT_D="$INIT/../discriminator.safetensors"
fi

if [ "$DRY_RUN" = 1 ]; then
    launch=(--cpu --num_processes 1 --mixed_precision no)
    shape=(--resolution 64 --batch-size "${BATCH:-4}" --max-steps 4 --val-count 8 --log-every 1 --val-every 4
           --sample-every 4 --checkpoint-every 4 --mask-workers 0 --num-workers 0 --cpu)
else
    launch=(--num_processes "$gpus" --mixed_precision bf16)
    if [ "$gpus" -gt 1 ]; then launch+=(--multi_gpu); fi  # not `$(test && echo)`: under `set -e` its status ends the script
    # Batch 256 per GPU at 128²: the fastest of 64/128/256 in bench_train.py on an H200 (1059/1430/1599 img/s, bf16).
    # Decoding takes about 1 ms per face per worker and a mask 0.44 ms, hence 8 decoding and 3 mask workers.
    shape=(--batch-size "${BATCH:-256}" --max-steps 1000000 --val-count 200 --log-every 50 --val-every 1000
           --sample-every 1000 --checkpoint-every 2000 --mask-workers 3 --num-workers 8 --lr-g 0.0004 --lr-d 0.0004)
fi
init=()
[ -n "$INIT" ] && init+=(--init-from "$INIT")
[ -n "$INIT_D" ] && init+=(--init-discriminator "$INIT_D")

"$PYTHON" -m accelerate.commands.launch --num_machines 1 --dynamo_backend no "${launch[@]}" train.py \
    --config configs/msl-prior-128-faces128.yaml --dataset "$PACK/train-*.parquet" \
    --val-dataset "$PACK/val-00000.parquet" --prior-weights "$PACK/face-prior.safetensors" \
    --vgg-weights "$PACK/vgg16-pool3.safetensors" --w-adv "$W_ADV" --max-minutes "$TRAIN_MINUTES" \
    --output-dir "$RUN" "${shape[@]}" "${init[@]}"
"$PYTHON" scripts/device_report.py "$RUN" "$OUT" --processes "$([ "$DRY_RUN" = 1 ] && echo 1 || echo "$gpus")"
