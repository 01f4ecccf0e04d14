#!/usr/bin/env bash
# The one command of a GPU window (docs/device-training.md): `accelerate launch train.py` on every GPU found, in bf16,
# for a wall-clock budget, starting from a pipeline's component (INIT: a shipped name or a save_pretrained folder,
# default msl-face). Two targets:
#
#   TARGET=draft (default): the face draft's refiner (`train.py --model pca-refiner-128`, the part that draws eyes,
#                nose and mouth in large holes), with msl-face's losses (the DraftWeights defaults);
#   TARGET=network: msl-face's network (`--model msl-tiny-128`), with its recipe's last phase (configs/).
#
# and leave in $OUT:
#   final/            the trained EMA component, a float16 save_pretrained folder: scripts/export_shipped_model.py
#                     msl-face --draft (or --network) final --out DIR makes the pipeline
#   discriminator.safetensors  the discriminator, to continue the GAN in the next window (INIT_D)
#   metrics.jsonl     losses, validation PSNR/SSIM/L1 (with Telea's on the same pairs) and perf/ records
#   samples.png       the last sample grid (masked input / output / ground truth)
#   gpu.json          GPU, batch, preset, img/s, step time, peak memory (and for the network its TFLOP/s)
#
#   PACK=.devicepack OUT=/path TRAIN_MINUTES=8 [TARGET=draft|network] [INIT=msl-face|DIR] [INIT_D=FILE] [BATCH=N]
#       bash scripts/device_train.sh
#   PACK=DIR OUT=DIR DRY_RUN=1 bash scripts/device_train.sh     # the same path on the CPU: a few small steps
#
# PACK comes from scripts/pack_device_data.py. Wheels the machine lacks (datasets, dill, multiprocess) travel in .whl/
# and are installed into /tmp/site.
set -euo pipefail
cd "$(dirname "$0")/.."
PACK=${PACK:-.devicepack}
OUT=${OUT:?set OUT to the folder that receives the results}
TRAIN_MINUTES=${TRAIN_MINUTES:-8}
DRY_RUN=${DRY_RUN:-0}
INIT=${INIT:-msl-face}
INIT_D=${INIT_D:-}
TARGET=${TARGET:-draft}
PYTHON=${PYTHON:-$([ -x .venv/bin/python ] && echo .venv/bin/python || echo python3)}
RUN=${RUN:-runs/device}

for file in vgg16-pool3.safetensors val-00000.parquet; do
    [ -f "$PACK/$file" ] || { echo "error: $PACK/$file is missing: run scripts/pack_device_data.py $PACK" >&2; exit 2; }
done
case "$TARGET" in
    draft) preset=pca-refiner-128 batch=${BATCH:-128} target=(--mask-kind face --lr-g 2e-4 --lr-d 4e-4) ;;
    network) preset=msl-tiny-128 batch=${BATCH:-256}
             target=(--config configs/msl-tiny-128-faces128.yaml --w-style 0.0036 --w-adv 0.01 --mask-specks 0.3) ;;
    *) echo "error: TARGET must be draft or network, not $TARGET" >&2; exit 2 ;;
esac
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

if [ "$DRY_RUN" = 1 ]; then
    launch=(--cpu --num_processes 1 --mixed_precision no)
    shape=(--batch-size "${BATCH:-2}" --max-steps 2 --val-count 4 --log-every 1 --val-every 2 --sample-every 2
           --checkpoint-every 2 --mask-workers 0 --num-workers 0 --cpu)
    [ "$TARGET" = network ] && shape+=(--resolution 64)
else
    launch=(--num_processes "$gpus" --mixed_precision bf16)
    if [ "$gpus" -gt 1 ]; then launch+=(--multi_gpu); fi  # not `$(test && echo)`: under `set -e` its status ends the script
    # Batch 256 per GPU for the network at 128²: the fastest of 64/128/256 in bench_train.py on an H200 (1059/1430/1599
    # img/s, bf16). Decoding takes about 1 ms per face per worker and a mask 0.44 ms: 8 decoding and 3 mask workers.
    shape=(--batch-size "$batch" --max-steps 1000000 --val-count 200 --log-every 50 --val-every 1000
           --sample-every 1000 --checkpoint-every 2000 --mask-workers 3 --num-workers 8)
fi
init=(--init-from "$INIT")
[ -n "$INIT_D" ] && init+=(--init-discriminator "$INIT_D")

"$PYTHON" -m accelerate.commands.launch --num_machines 1 --dynamo_backend no "${launch[@]}" train.py \
    --model "$preset" "${target[@]}" --dataset "$PACK/train-*.parquet" --val-dataset "$PACK/val-00000.parquet" \
    --vgg-weights "$PACK/vgg16-pool3.safetensors" --vgg-normalization caffe --max-minutes "$TRAIN_MINUTES" \
    --output-dir "$RUN" "${shape[@]}" "${init[@]}"
"$PYTHON" scripts/device_report.py "$RUN" "$OUT" --preset "$preset" \
    --processes "$([ "$DRY_RUN" = 1 ] && echo 1 || echo "$gpus")"
