"""The training loop in one process: artefacts, exact resume, the NaN guard, bad-image counting, the settings (config
files, flags, clear errors)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
from pathlib import Path

import pytest
import torch
from accelerate.state import AcceleratorState
from safetensors.torch import load_file

from hf_faceinpaint import MSLInpainter
from hf_faceinpaint.training import TrainingDiverged, main, parse_config, train
from hf_faceinpaint.training.flags import build_parser, read_config_file

ROOT = Path(__file__).resolve().parents[2]


def flags(face_folder: Path, vgg_file: Path, output_dir: Path, **overrides: object) -> list[str]:
    settings = {
        "model": "msl-tiny-128", "resolution": 32, "dataset": face_folder, "val-dataset": face_folder,
        "val-count": 4, "output-dir": output_dir, "max-steps": 4, "batch-size": 2, "vgg-weights": vgg_file,
        "checkpoint-every": 2, "log-every": 1, "sample-every": 2, "val-every": 2, "shuffle-buffer": 8, "seed": 3,
    }
    settings.update({key.replace("_", "-"): value for key, value in overrides.items()})
    return [item for key, value in settings.items() if value is not None for item in (f"--{key}", str(value))]


def loss_records(output_dir: Path) -> dict[int, dict]:
    """The logged losses and data counters by step (without the timings, `perf/`)."""
    lines = (output_dir / "metrics.jsonl").read_text().splitlines()
    return {r["step"]: {k: v for k, v in r.items() if not k.startswith("perf/")} for r in map(json.loads, lines) if "loss/g" in r}


def test_run_writes_everything(tmp_path: Path, face_folder: Path, vgg_file: Path) -> None:
    result = train(parse_config(flags(face_folder, vgg_file, tmp_path / "run")))
    run = tmp_path / "run"
    assert result.final_dir == run / "final"
    model = MSLInpainter.from_pretrained(result.final_dir)
    assert model.config.resolution == 32
    assert "Trained with `train.py` from the `msl-tiny-128` preset for 4 steps" in (result.final_dir / "README.md").read_text()
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["step-00000002", "step-00000004"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == ["step-00000002.png", "step-00000004.png"]
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert "val/telea_psnr" in records[0] and any("val/psnr" in r for r in records)
    assert sorted(loss_records(run)) == [1, 2, 3, 4]
    assert list(run.rglob("events.out.tfevents.*")), "no tensorboard log"
    assert not list(run.rglob("*.tmp-*")) and not list(run.rglob(".tmp-*")), "temporary files left behind"


@pytest.mark.slow
def test_resume_reproduces_the_uninterrupted_run(tmp_path: Path, face_folder: Path, vgg_file: Path) -> None:
    train(parse_config(flags(face_folder, vgg_file, tmp_path / "straight", max_steps=6)))
    train(parse_config(flags(face_folder, vgg_file, tmp_path / "split", max_steps=4)))
    shutil.rmtree(tmp_path / "split" / "checkpoints" / "step-00000004")  # resume from the middle of an epoch
    train(parse_config(flags(face_folder, vgg_file, tmp_path / "split", max_steps=6, resume="latest")))
    straight, split = loss_records(tmp_path / "straight"), loss_records(tmp_path / "split")
    for step in (3, 4, 5, 6):
        assert split[step] == straight[step], f"step {step} differs after resuming"
    logged = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in logged if "loss/g" in r] == [1, 2, 3, 4, 5, 6]  # steps 3 and 4 are not logged twice
    a, b = load_file(tmp_path / "straight" / "final" / "model.safetensors"), load_file(tmp_path / "split" / "final" / "model.safetensors")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, face_folder: Path, vgg_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hf_faceinpaint.training import msl

    calls = {"n": 0}
    real_l1 = msl.l1_loss

    def l1_that_breaks(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        calls["n"] += 1
        return real_l1(pred, target) * (float("nan") if calls["n"] == 3 else 1.0)

    monkeypatch.setattr(msl, "l1_loss", l1_that_breaks)
    with pytest.raises(TrainingDiverged, match=r"non-finite loss \(g_loss, rec\) at step 2.*step-00000002"):
        train(parse_config(flags(face_folder, vgg_file, tmp_path / "run", max_steps=6)))
    assert [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()] == ["step-00000002"]
    assert not (tmp_path / "run" / "final").exists()


def test_a_diverged_model_is_never_saved(tmp_path: Path, face_folder: Path, vgg_file: Path) -> None:
    # huge learning rates, the weights' magnitude unchecked: every loss stays finite, but a BatchNorm running variance
    # becomes infinite
    with pytest.raises(TrainingDiverged, match=r"diverged weights at step 2 \(.*running_var is not finite.*\); nothing "
                                               "was saved"):
        train(parse_config(flags(face_folder, vgg_file, tmp_path / "run", lr_g=1e6, lr_d=1e6, max_weight=0)))
    assert not list((tmp_path / "run").glob("checkpoints/step-*")) and not (tmp_path / "run" / "final").exists()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated-rng", "missing-rng", "step-not-a-number", "not-json"])
def test_an_unreadable_checkpoint_is_refused_before_anything_is_restored(
    tmp_path: Path, face_folder: Path, vgg_file: Path, damage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    train(parse_config(flags(face_folder, vgg_file, tmp_path / "run", max_steps=2)))
    folder = tmp_path / "run" / "checkpoints" / "step-00000002"
    rng, state = folder / "random_states_0.pkl", folder / "trainer_state.json"
    if damage == "truncated-rng":
        rng.write_bytes(rng.read_bytes()[:-40])
        needle = "random_states_0.pkl is unreadable"
    elif damage == "missing-rng":
        rng.unlink()
        needle = "random_states_0.pkl is unreadable"
    elif damage == "step-not-a-number":
        state.write_text(state.read_text().replace('"step": 2', '"step": "abc"'))
        needle = "trainer_state.json is not a trainer state this trainer can resume from"
    else:
        state.write_text("{")
        needle = "trainer_state.json is not a trainer state"
    status = main(flags(face_folder, vgg_file, tmp_path / "run", max_steps=4, resume="latest"))
    assert status == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints" / "step-00000004").exists()


def test_bad_images_are_skipped_and_counted(tmp_path: Path, face_folder: Path, vgg_file: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for good in sorted(face_folder.iterdir())[:4]:
        shutil.copy(good, data)
    (data / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (data / "empty.jpg").write_bytes(b"")
    # 4 good images at batch 2 make an epoch of 2 steps; by step 3 the stream has passed every file once (2 bad),
    # and the second pass may have met one or both bad files again before its first batch.
    train(parse_config(flags(data, vgg_file, tmp_path / "run", max_steps=3, val_dataset=face_folder)))
    records = loss_records(tmp_path / "run")
    assert records[3]["data/epoch"] == 1
    assert 2 <= records[3]["data/bad_images"] <= 4


def test_config_files_then_flags(tmp_path: Path, face_folder: Path, vgg_file: Path) -> None:
    settings, more = tmp_path / "settings.yaml", tmp_path / "more.json"
    settings.write_text(f"dataset: {face_folder}\nvgg-weights: {vgg_file}\nlr_g: 2e-4\nmax_steps: 9\nw-adv: 0.5\ncpu: true\n")
    more.write_text(json.dumps({"w_adv": 0.25, "resolution": 32}))
    argv = ["--config", str(settings), "--config", str(more), "--output-dir", str(tmp_path), "--max-steps", "3"]
    config = parse_config(argv)
    assert (config.lr_g, config.max_steps, config.dataset, config.cpu) == (2e-4, 3, str(face_folder), True)
    assert (config.msl.w_adv, config.resolution) == (0.25, 32)  # the later file wins
    assert parse_config([*argv, "--w-adv", "0"]).msl.w_adv == 0.0  # flags win over files


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda path: path.name)
def test_shipped_config_files_parse(path: Path) -> None:
    parser = build_parser()
    parser.set_defaults(**read_config_file(str(path)))
    assert parser.parse_args([]).model


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("lr-g: fast\n", "error: argument --lr-g: invalid float value: 'fast'"),
        ("max-steps: 2.5\n", "error: argument --max-steps: invalid int value: '2.5'"),
        ("mixed-precision: no\n", "error: config file SETTINGS: bad value for mixed_precision: False"),
        ("cpu: 1\n", "error: config file SETTINGS: bad value for cpu: 1"),
        ("- a list\n", "error: config file SETTINGS must hold a mapping of settings"),
    ],
)
def test_bad_config_file_values_exit_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture, content: str, message: str
) -> None:
    settings = tmp_path / "settings.yaml"
    settings.write_text(content)
    assert main(["--config", str(settings)]) == 2
    assert capsys.readouterr().err == message.replace("SETTINGS", str(settings)) + "\n"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"model": "msl-9000"}, "unknown --model 'msl-9000'"),
        ({"max_steps": 0}, "--max-steps must lie in [1, inf], got 0"),
        ({"adversarial": "lsgan"}, "--adversarial must be one of nsgan, hinge, wgan-gp, got 'lsgan'"),
        ({"id_weights": "/nonexistent/arcface.pth"}, "--id-weights applies to --stage 1 only"),
        ({"vgg_weights": "/nonexistent/vgg.pth"}, "--vgg-weights file /nonexistent/vgg.pth does not exist"),
        ({"dataset": "/nonexistent/faces"}, "is neither an image folder"),
        ({"dataset": "/nonexistent/*.parquet"}, "no Parquet files match"),
        ({"mixed_precision": "fp8"}, "--mixed-precision must be"),
        ({"resolution": 36}, "not a multiple of 8"),
        ({"mask_specks": 1.5}, "--mask-specks must lie in [0, 1], got 1.5"),
        ({"allow_changed": "batch_size,model"}, "--allow-changed takes names of resolution, dataset, "),
    ],
)
def test_bad_settings_exit_with_a_clear_error(
    tmp_path: Path, face_folder: Path, vgg_file: Path, capsys: pytest.CaptureFixture, overrides: dict, message: str
) -> None:
    assert main(flags(face_folder, vgg_file, tmp_path / "run", **overrides)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err


def test_missing_vgg_weights_offline(
    tmp_path: Path, face_folder: Path, vgg_file: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def offline(*args: object, **kwargs: object) -> None:
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    argv = [a for a in flags(face_folder, vgg_file, tmp_path / "run") if a not in ("--vgg-weights", str(vgg_file))]
    assert main(argv) == 2
    assert "pass a weights file" in capsys.readouterr().err


class _Stop(Exception):
    """Raised where the run would build its losses: everything before it has run."""


@pytest.mark.parametrize("precision, fast, warned", [("bf16", False, True), ("bf16", True, False), ("no", False, False)])
def test_emulated_bf16_is_warned_before_training(
    tmp_path: Path, face_folder: Path, vgg_file: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch,
    precision: str, fast: bool, warned: bool,
) -> None:
    """--mixed-precision bf16 on hardware without bf16 units (emulated: 35x slower for some networks) is one warning
    line on stderr before any work; float32, or bf16 where it is fast, says nothing."""
    from hf_faceinpaint import precision as precision_module
    from hf_faceinpaint.training import trainer

    def stop(*args: object) -> None:
        raise _Stop

    monkeypatch.setattr(precision_module, "bf16_is_fast", lambda device: fast)
    monkeypatch.setattr(trainer, "make_task", stop)
    AcceleratorState._reset_state(reset_partial_state=True)  # the process's one state, set by earlier runs
    try:
        with pytest.raises(_Stop):
            train(parse_config(flags(face_folder, vgg_file, tmp_path / "run", mixed_precision=precision)))
    finally:
        AcceleratorState._reset_state(reset_partial_state=True)  # later runs in this process choose their own
    err = capsys.readouterr().err
    assert ("warning: --mixed-precision bf16 on cpu, which has no bf16 units" in err) == warned
    assert ("use --mixed-precision no" in err) == warned


def test_unknown_config_file_setting(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"dataset": "x", "learning_rate": 1}))
    assert main(["--config", str(settings)]) == 2
    assert "unknown settings: learning_rate" in capsys.readouterr().err


def test_ema_decay_warms_up() -> None:
    """min(decay, (1 + n) / (10 + n)): early updates move the average quickly, later ones by 1 - decay."""
    from hf_faceinpaint.training.checkpoint import ema_model

    model = torch.nn.Linear(1, 1, bias=False)
    model.weight.data.fill_(1.0)
    ema = ema_model(model, decay=0.999)
    ema.update_parameters(model)  # the first update copies the weights
    model.weight.data.fill_(2.0)
    ema.update_parameters(model)  # n = 1: rate 2/11
    assert ema.module.weight.item() == pytest.approx(2 / 11 * 1.0 + 9 / 11 * 2.0)
    ema.n_averaged.fill_(100_000)
    before = ema.module.weight.item()
    model.weight.data.fill_(0.0)
    ema.update_parameters(model)  # n large: rate capped at the decay
    assert ema.module.weight.item() == pytest.approx(0.999 * before)


def test_exploded_but_finite_weights_stop_training(tmp_path: Path, face_folder: Path, vgg_file: Path) -> None:
    """At a learning rate of 1e4 every weight moves by about 1e4 a step while the losses stay finite: stopped on the
    first step a weight passes --max-weight (1e4), naming it, before anything is saved."""
    with pytest.raises(TrainingDiverged, match=r"diverged weights at step 1 \(generator\.\S+ reaches \|w\| = \S+ > "
                                               r"10000.*\); nothing was saved"):
        train(parse_config(flags(face_folder, vgg_file, tmp_path / "run", lr_g=1e4, lr_d=1e4, val_dataset=None)))
    assert not list((tmp_path / "run").glob("checkpoints/step-*")) and not (tmp_path / "run" / "final").exists()


def test_a_loss_far_above_its_running_median_stops_training(tmp_path: Path) -> None:
    from accelerate import Accelerator

    from hf_faceinpaint.training.steps import LossWatch

    accelerator, watch = Accelerator(cpu=True), LossWatch(1e3, window=10, warmup=5)
    for step, value in enumerate([2.0, 1.5, 1.8, 1.2, 1.0, 0.9, 1.1, 900.0], start=1):  # 900 < 1000 × median
        watch.check(accelerator, step, str(tmp_path), {"loss/g": torch.tensor(value), "loss/adv": torch.tensor(0.0)})
    watch.check(accelerator, 9, str(tmp_path), {"loss/g": torch.tensor(0.7), "loss/adv": torch.tensor(0.9)})  # < 1
    with pytest.raises(TrainingDiverged, match=r"loss/g left its range at step 10: 1\.3e\+03, over 1000 times its "
                                               r"running median 1\.2; stopped before saving. no checkpoint"):
        watch.check(accelerator, 10, str(tmp_path), {"loss/g": torch.tensor(-1300.0), "loss/adv": torch.tensor(0.0)})


@pytest.fixture(scope="module")
def two_step_run(tmp_path_factory: pytest.TempPathFactory, face_folder: Path, vgg_file: Path) -> Path:
    """A run trained for 2 steps with `flags`' settings (no validation), its checkpoint at step 2; copy it before
    changing it."""
    run = tmp_path_factory.mktemp("two-step") / "run"
    train(parse_config(flags(face_folder, vgg_file, run, max_steps=2, val_dataset=None)))
    return run


def resumed_copy(two_step_run: Path, tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(two_step_run, run)
    return run


def file_bytes(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def assert_one_error_line(err: str, *needles: str) -> None:
    (line,) = [line for line in err.splitlines() if line.startswith("error: ")]
    assert all(needle in line for needle in needles), line
    assert "Traceback" not in err


@pytest.mark.parametrize(("overrides", "needle"), [
    ({"model": "msl-256"}, "--model 'msl-tiny-128' there, 'msl-256' here); a checkpoint continues only its own model"),
    ({"batch_size": 4}, "--batch-size 2 there, 4 here); set them back, or pass --allow-changed batch_size"),
    ({"seed": 4, "resolution": 64}, "--resolution 32 there, 64 here; --seed 3 there, 4 here)"),
    ({"dataset": "FOLDER/../" + "FOLDER_NAME"}, None),  # the same folder, spelled otherwise: accepted
])
def test_resume_refuses_changed_run_settings_naming_them(
    tmp_path: Path, face_folder: Path, vgg_file: Path, two_step_run: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch, overrides: dict, needle: str | None,
) -> None:
    from hf_faceinpaint.training import trainer

    run = resumed_copy(two_step_run, tmp_path)
    if "dataset" in overrides:
        overrides = {"dataset": f"{face_folder}/../{face_folder.name}"}
        monkeypatch.setattr(trainer, "make_task", lambda *args: (_ for _ in ()).throw(_Stop()))  # past the check
    argv = flags(face_folder, vgg_file, run, max_steps=4, resume="latest", **overrides)
    if needle is None:
        with pytest.raises(_Stop):
            main(argv)
        return
    assert main(argv) == 2
    assert_one_error_line(capsys.readouterr().err, "run settings differ from the checkpoint's", needle)
    assert not (run / "checkpoints" / "step-00000004").exists()


def test_an_allowed_batch_size_change_converts_the_stream_position(
    tmp_path: Path, face_folder: Path, vgg_file: Path, two_step_run: Path
) -> None:
    """The stream position counts batches: 2 done of 2 images are 1 of 4; new data starts from its beginning."""
    from hf_faceinpaint.training.checkpoint import resume_state

    said: list[str] = []
    folder = two_step_run / "checkpoints" / "step-00000002"
    config = parse_config(flags(face_folder, vgg_file, two_step_run, batch_size=4, allow_changed="batch_size"))
    state = resume_state(folder, config, 1, said.append)
    assert state["positions"] == [[0, 1]] and state["settings"]["batch_size"] == 4 and "converted" in said[0]
    assert json.loads((folder / "trainer_state.json").read_text())["positions"] == [[0, 2]]
    config = parse_config(flags(tmp_path, vgg_file, two_step_run, allow_changed="dataset"))
    assert resume_state(folder, config, 1, said.append)["positions"] == [[0, 0]]


@pytest.mark.parametrize("name", ["optimizer.bin", "model.safetensors"])
def test_a_truncated_checkpoint_file_is_one_error_line(
    tmp_path: Path, face_folder: Path, vgg_file: Path, two_step_run: Path, capsys: pytest.CaptureFixture[str],
    name: str,
) -> None:
    run = resumed_copy(two_step_run, tmp_path)
    damaged = run / "checkpoints" / "step-00000002" / name
    damaged.write_bytes(damaged.read_bytes()[: damaged.stat().st_size // 2])
    before = file_bytes(run / "checkpoints")
    assert main(flags(face_folder, vgg_file, run, max_steps=4, resume="latest")) == 2
    assert_one_error_line(capsys.readouterr().err, f"{name} is unreadable", "resume from an earlier checkpoint")
    assert file_bytes(run / "checkpoints") == before


def test_a_checkpoint_of_another_model_is_one_error_line(
    tmp_path: Path, face_folder: Path, vgg_file: Path, two_step_run: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    """A checkpoint written before the run settings were stored, resumed with another --model: the restore fails
    on the weights' shapes, as one line."""
    run = resumed_copy(two_step_run, tmp_path)
    state_file = run / "checkpoints" / "step-00000002" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    del state["settings"]
    state_file.write_text(json.dumps(state))
    assert main(flags(face_folder, vgg_file, run, max_steps=4, resume="latest", model="msl-256")) == 2
    out, err = capsys.readouterr()
    assert "were not compared" not in out and "run settings; they are not compared" in out
    assert_one_error_line(err, "cannot restore checkpoint", "step-00000002 into this run: ", "size mismatch")


def test_a_full_disk_during_a_checkpoint_is_one_error_line(
    tmp_path: Path, face_folder: Path, vgg_file: Path, two_step_run: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The disk fills while the checkpoint of step 4 is written (its EMA file half-way): one line, the files of
    step 2 untouched, nothing half-written left behind."""
    import errno

    from hf_faceinpaint import io

    def full_disk(tensors: dict, filename: str, metadata: dict | None = None) -> None:
        Path(filename).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    run = resumed_copy(two_step_run, tmp_path)
    before = {part: file_bytes(run / part) for part in ("checkpoints", "final")}
    monkeypatch.setattr(io, "save_file", full_disk)
    assert main(flags(face_folder, vgg_file, run, max_steps=4, resume="latest", val_dataset=None)) == 2
    assert_one_error_line(capsys.readouterr().err, "could not write checkpoint", "step-00000004: No space left on "
                          "device; nothing of it was kept")
    assert {part: file_bytes(run / part) for part in before} == before  # the step-2 checkpoint and its final model
    assert not list(run.rglob("*.tmp-*"))


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_saves_a_checkpoint_and_exits_128_plus_its_number(
    tmp_path: Path, face_folder: Path, vgg_file: Path, signum: int
) -> None:
    """`train.py` as a process, sent SIGINT as Ctrl-C sends it (to the whole process group: its DataLoader and
    mask workers too), or SIGTERM to it alone, once it has logged a step: it finishes the step, saves a checkpoint
    that resumes, prints one line and exits 130 / 143, without a final model and without a worker's traceback."""
    from hf_faceinpaint.training.checkpoint import resume_state

    run = tmp_path / "run"
    workers = {"num_workers": 1, "mask_workers": 1} if signum == signal.SIGINT else {}
    argv = flags(face_folder, vgg_file, run, max_steps=10_000, checkpoint_every=0, val_dataset=None, sample_every=0,
                 val_every=0, **workers)
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *argv], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
                               start_new_session=True)  # a process group of its own, as a terminal's job
    try:
        deadline = time.monotonic() + 300
        while not ((run / "metrics.jsonl").is_file() and "loss/g" in (run / "metrics.jsonl").read_text()):
            assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1]
            time.sleep(0.2)
        if signum == signal.SIGINT:
            os.killpg(process.pid, signum)
        else:
            process.send_signal(signum)
        _, err = process.communicate(timeout=300)
    finally:
        process.kill()
    assert process.returncode == 128 + signum, err
    lines = [line.strip() for line in err.replace("\r", "\n").splitlines() if line.strip()]
    match = re.fullmatch(rf"interrupted by {signal.Signals(signum).name} at step (\d+): saved the checkpoint (\S+); "
                         "go on with --resume latest", lines[-1])
    assert match and "Traceback" not in err, err
    folder = Path(match[2])
    assert folder == run / "checkpoints" / f"step-{int(match[1]):08d}" and not (run / "final").exists()
    state = resume_state(folder, parse_config([*argv, "--resume", "latest"]), 1, print)  # every file complete
    assert state["step"] == int(match[1]) >= 1
