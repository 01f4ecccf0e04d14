"""The GPU recipe (docs/device-training.md) on the CPU: the pack, then `DRY_RUN=1 scripts/device_train.sh`, which
CI runs end to end so that a lent GPU window can use it as it is."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hf_faceinpaint.models.prior import load_refiner_file, refiner_fine_blocks
from hf_faceinpaint.models.registry import load_pretrained

pytestmark = pytest.mark.slow  # packing and the dry run take 40 s on 2 cores

ROOT = Path(__file__).resolve().parents[2]


def _rows(rng: np.random.Generator, count: int, prefix: str) -> list[dict]:
    rows = []
    for index in range(count):
        buffer = io.BytesIO()
        small = Image.fromarray(rng.integers(0, 256, (6, 6, 3), dtype=np.uint8))
        small.resize((128, 128), Image.BICUBIC).save(buffer, format="JPEG", quality=92)
        rows.append({"image": {"bytes": buffer.getvalue(), "path": None}, "source": "synthetic", "id": f"{prefix}{index}"})
    return rows


@pytest.fixture(scope="module")
def pack(tmp_path_factory: pytest.TempPathFactory, vgg_file: Path) -> Path:
    """A pack made by scripts/pack_device_data.py from a faces128-shaped folder of 112 + 8 synthetic faces."""
    faces = tmp_path_factory.mktemp("faces128")
    rng = np.random.default_rng(0)
    pq.write_table(pa.Table.from_pylist(_rows(rng, 112, "t")), faces / "train-00000-of-00001.parquet")
    pq.write_table(pa.Table.from_pylist(_rows(rng, 8, "v")), faces / "val-00000.parquet")
    out = tmp_path_factory.mktemp("pack") / "pack"
    done = subprocess.run(
        [sys.executable, "scripts/pack_device_data.py", str(out), "--faces", str(faces), "--vgg-weights",
         str(vgg_file), "--prior-components", "100", "--shards", "3"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "112 training + 8 validation faces" in done.stdout
    return out


def test_pack_holds_every_face_and_what_training_needs(pack: Path) -> None:
    shards = sorted(pack.glob("train-*.parquet"))
    assert len(shards) == 3
    assert sum(pq.read_table(path).num_rows for path in shards) == 112
    assert pq.read_table(pack / "val-00000.parquet").num_rows == 8
    image = pq.read_table(shards[0]).to_pylist()[0]["image"]["bytes"]
    assert Image.open(io.BytesIO(image)).format == "WEBP"
    assert {p.name for p in pack.glob("*.safetensors")} == {"face-prior.safetensors", "vgg16-pool3.safetensors"}


def test_pack_refuses_to_exceed_its_size_limit(tmp_path: Path, pack: Path, vgg_file: Path) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    for path in pack.glob("*.parquet"):  # any faces128-shaped folder will do
        (faces / path.name).write_bytes(path.read_bytes())
    done = subprocess.run(
        [sys.executable, "scripts/pack_device_data.py", str(tmp_path / "p"), "--faces", str(faces), "--vgg-weights",
         str(vgg_file), "--prior-components", "8", "--max-mib", "0.001"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "over --max-mib" in done.stderr
    assert not (tmp_path / "p").exists()


def test_dry_run_of_the_refiner_leaves_a_refiner_the_shipped_model_takes(tmp_path: Path, pack: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PACK": str(pack), "OUT": str(out), "DRY_RUN": "1", "RUN": str(tmp_path / "run"),
           "PYTHON": sys.executable}
    done = subprocess.run(["bash", "scripts/device_train.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {"refiner.safetensors", "refiner-log.csv"}
    assert len((out / "refiner-log.csv").read_text().splitlines()) == 2  # steps 1 and 2
    assert (out / "refiner.safetensors").stat().st_size < 16 * 2**20  # what a device run can send back
    model = load_pretrained(ROOT / "src" / "hf_faceinpaint" / "weights" / "msl-face")
    load_refiner_file(model.prior, out / "refiner.safetensors")  # strict
    blocks = subprocess.run(["bash", "scripts/device_train.sh"], cwd=ROOT, env={**env, "FINE_BLOCKS": "2"},
                            capture_output=True, text=True)
    assert blocks.returncode == 0, blocks.stderr[-3000:]
    assert refiner_fine_blocks(out / "refiner.safetensors") == 2  # export_shipped_model.py --refiner takes it
    wrong = subprocess.run(["bash", "scripts/device_train.sh"], cwd=ROOT, env={**env, "TARGET": "both"},
                           capture_output=True, text=True)
    assert wrong.returncode == 2 and "TARGET must be refiner or network" in wrong.stderr


def test_dry_run_leaves_a_loadable_model_and_the_reports(tmp_path: Path, pack: Path) -> None:
    out = tmp_path / "out"
    env = {**os.environ, "PACK": str(pack), "OUT": str(out), "DRY_RUN": "1", "RUN": str(tmp_path / "run"),
           "PYTHON": sys.executable, "TARGET": "network"}
    done = subprocess.run(["bash", "scripts/device_train.sh"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == {"msl-face-gpu", "discriminator.safetensors", "metrics.jsonl",
                                                "samples.png", "gpu.json"}
    model = load_pretrained(out / "msl-face-gpu")
    assert model.prior is not None and next(model.parameters()).dtype.is_floating_point
    report = json.loads((out / "gpu.json").read_text())
    assert report["steps"] == 4 and report["images_seen"] == 16 and report["batch_per_process"] == 4
    assert report["img_per_s"] > 0 and report["train_gflop_per_image"] > 0 and report["achieved_tflops"] > 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("val/psnr" in r for r in records) and any("perf/img_s" in r for r in records)
