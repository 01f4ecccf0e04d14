"""Train an hf-faceinpaint model.

    python train.py --model msl-tiny-128 --dataset "faces/train-*.parquet" --output-dir runs/tiny --max-steps 1000 \
        --vgg-weights vgg16.safetensors [--val-dataset faces/val.parquet] [--config settings.yaml]
    accelerate launch --multi_gpu --num_processes 8 train.py ...       # the same flags, several processes

`python train.py --help` lists every setting. The loop itself is in src/hf_faceinpaint/training/trainer.py.
"""

import sys

from hf_faceinpaint.training import main

if __name__ == "__main__":
    sys.exit(main())
