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
from safetensors import safe_open

from hf_faceinpaint.face.draft import GappyPCADraft
from hf_faceinpaint.models.msl import MSLInpainter
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
         str(vgg_file), "--shards", "3"],
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
    assert {p.name for p in pack.glob("*.safetensors")} == {"vgg16-pool3.safetensors"}


def test_pack_refuses_to_exceed_its_size_limit(tmp_path: Path, pack: Path, vgg_file: Path) -> None:
    faces = tmp_path / "faces"
    faces.mkdir()
    for path in pack.glob("*.parquet"):  # any faces128-shaped folder will do
        (faces / path.name).write_bytes(path.read_bytes())
    done = subprocess.run(
        [sys.executable, "scripts/pack_device_data.py", str(tmp_path / "p"), "--faces", str(faces), "--vgg-weights",
         str(vgg_file), "--max-mib", "0.001"],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert done.returncode == 2
    assert "over --max-mib" in done.stderr
    assert not (tmp_path / "p").exists()


OUTPUTS = {"final", "discriminator.safetensors", "metrics.jsonl", "samples.png", "gpu.json"}


def _dry_run(tmp_path: Path, pack: Path, **env: str) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path / "out"
    env = {**os.environ, "PACK": str(pack), "OUT": str(out), "DRY_RUN": "1", "RUN": str(tmp_path / "run"),
           "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", "scripts/device_train.sh"], cwd=ROOT, env=env, capture_output=True, text=True), out


def test_dry_run_of_the_draft_leaves_a_draft_the_shipped_pipeline_takes(tmp_path: Path, pack: Path,
                                                                        script_module) -> None:
    done, out = _dry_run(tmp_path, pack)
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == OUTPUTS
    draft = load_pretrained(out / "final")
    with safe_open(str(out / "final" / "model.safetensors"), framework="pt") as weights:
        assert weights.get_slice("refiner.head.weight").get_dtype() == "F16"  # a float16 folder
    assert isinstance(draft, GappyPCADraft)
    assert sum(p.stat().st_size for p in (out / "final").iterdir()) < 16 * 2**20  # what a device run sends back
    report = json.loads((out / "gpu.json").read_text())
    assert report["preset"] == "pca-refiner-128" and report["steps"] == 2 and report["img_per_s"] > 0
    export = script_module("export_shipped_model").main
    assert export(["msl-face", "--draft", str(out / "final"), "--out", str(tmp_path / "pipeline")]) == 0
    assert load_pretrained(tmp_path / "pipeline").draft.config == draft.config
    wrong, _ = _dry_run(tmp_path, pack, TARGET="both")
    assert wrong.returncode == 2 and "TARGET must be draft or network" in wrong.stderr


def test_dry_run_of_the_network_leaves_a_loadable_network_and_the_reports(tmp_path: Path, pack: Path) -> None:
    done, out = _dry_run(tmp_path, pack, TARGET="network")
    assert done.returncode == 0, done.stderr[-3000:]
    assert {p.name for p in out.iterdir()} == OUTPUTS
    assert isinstance(load_pretrained(out / "final"), MSLInpainter)
    report = json.loads((out / "gpu.json").read_text())
    assert report["steps"] == 2 and report["images_seen"] == 4 and report["batch_per_process"] == 2
    assert report["img_per_s"] > 0 and report["train_gflop_per_image"] > 0 and report["achieved_tflops"] > 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("val/psnr" in r for r in records) and any("perf/img_s" in r for r in records)
