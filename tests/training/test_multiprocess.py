"""A real 2-process `accelerate launch` (gloo on the CPU): the ranks end with identical generator weights, and the
training stream gives each rank different samples."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

SCRIPT = '''
import json, os, sys
from safetensors.torch import save_file
from hf_faceinpaint.data import open_dataset, train_batches
from hf_faceinpaint.training import parse_config, train

config = parse_config(sys.argv[2:])
result = train(config)
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
out = sys.argv[1]
save_file({k: v.contiguous() for k, v in result.generator.named_parameters()}, f"{out}/rank{rank}.safetensors")
dataset, column = open_dataset(config.dataset)
seen = []
for epoch, done, images, _ in train_batches(dataset, column, 32, 1, rank=rank, world_size=world, seed=config.seed,
                                            shuffle_buffer=config.shuffle_buffer):
    if epoch > 0:
        break
    seen.append(round((images[0, 0, 0, 0].item() + 1) * 127.5))  # the index painted into the top-left pixel
json.dump({"seen": seen, "world": world}, open(f"{out}/rank{rank}.json", "w"))
'''


@pytest.mark.slow
def test_two_processes(tmp_path: Path, face_folder: Path, vgg_file: Path) -> None:
    script = tmp_path / "launch_train.py"
    script.write_text(SCRIPT)
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
        "--mixed_precision", "no", "--dynamo_backend", "no", str(script), str(tmp_path),
        "--model", "msl-tiny-128", "--resolution", "32", "--dataset", str(face_folder), "--output-dir", str(tmp_path / "run"),
        "--max-steps", "3", "--batch-size", "2", "--vgg-weights", str(vgg_file), "--shuffle-buffer", "8", "--cpu",
    ]
    env = {**os.environ, "ACCELERATE_USE_CPU": "true", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-4000:]

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    seen0, seen1 = set(ranks[0]["seen"]), set(ranks[1]["seen"])
    assert seen0 and seen1 and not seen0 & seen1, "the ranks saw overlapping samples"
    assert seen0 | seen1 == set(range(24)), "some samples were never seen in the epoch"

    w0, w1 = load_file(tmp_path / "rank0.safetensors"), load_file(tmp_path / "rank1.safetensors")
    assert w0.keys() == w1.keys()
    assert all(torch.equal(w0[k], w1[k]) for k in w0), "generator weights differ between ranks"
    initial = __import__("hf_faceinpaint").MSLInpainter.from_preset("msl-tiny-128")
    assert any(not torch.equal(w0[k], p) for k, p in initial.named_parameters()), "training did not change the weights"
    assert (tmp_path / "run" / "final" / "model.safetensors").is_file()
