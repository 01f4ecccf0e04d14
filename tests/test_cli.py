"""The command line, in-process through `main` and once as `python -m hf_faceinpaint`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

from hf_faceinpaint import MSLInpainter
from hf_faceinpaint.cli import main
from hf_faceinpaint.models.registry import shipped_checkpoint


def _write_pair(folder: Path, stem: str, size: tuple[int, int] = (48, 40), ext: str = ".png") -> tuple[Path, Path]:
    """A random photo `<stem><ext>` in folder/images and its mask `<stem>.png` in folder/masks; size is (W, H)."""
    width, height = size
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    photo = np.random.default_rng(len(stem)).integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = np.zeros((height, width), np.uint8)
    mask[height // 3 : height // 2, width // 4 : width // 2] = 255
    image_path, mask_path = folder / "images" / f"{stem}{ext}", folder / "masks" / f"{stem}.png"
    Image.fromarray(photo).save(image_path)
    Image.fromarray(mask).save(mask_path)
    return image_path, mask_path


def _assert_one_error_line(capsys: pytest.CaptureFixture[str], status: int, *needles: str) -> None:
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert status == 2
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    for needle in needles:
        assert needle in lines[0]
    assert "Traceback" not in err


def test_inpaint_writes_the_result(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = _write_pair(tmp_path, "face")
    out = tmp_path / "out" / "face.png"
    assert main(["inpaint", "--image", str(image), "--mask", str(mask), "--out", str(out), "--model", "ns"]) == 0
    stdout = capsys.readouterr().out
    assert "method: ns" in stdout and str(out) in stdout
    result, source = np.asarray(Image.open(out)), np.asarray(Image.open(image))
    hole = np.asarray(Image.open(mask)) > 0
    np.testing.assert_array_equal(result[~hole], source[~hole])


def test_photo_and_mask_as_arguments_with_short_options(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = _write_pair(tmp_path, "face")
    out = tmp_path / "short.png"
    assert main(["inpaint", str(image), str(mask), "-o", str(out), "-m", "ns"]) == 0
    assert "method: ns" in capsys.readouterr().out
    expected = tmp_path / "long.png"
    assert main(["inpaint", "--image", str(image), "--mask", str(mask), "--out", str(expected), "--model", "ns"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(expected)))


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["IMAGE", "MASK", "--image", "IMAGE"], "the image is given twice"),
        (["IMAGE", "MASK", "--image-dir", "IMAGE"], "either IMAGE MASK --out OUT"),
        (["IMAGE"], "either IMAGE MASK --out OUT"),
    ],
)
def test_photo_given_twice_mask_missing_or_modes_mixed_is_one_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], needle: str
) -> None:
    image, mask = _write_pair(tmp_path, "face")
    paths = {"IMAGE": str(image), "MASK": str(mask)}
    out = tmp_path / "out.png"
    status = main(["inpaint", *[paths.get(arg, arg) for arg in args], "-o", str(out), "-m", "ns"])
    _assert_one_error_line(capsys, status, needle)
    assert not out.exists()


def test_default_model_is_the_shipped_msl_face(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = _write_pair(tmp_path, "face")
    assert main(["inpaint", "--image", str(image), "--mask", str(mask), "--out", str(tmp_path / "o.png")]) == 0
    captured = capsys.readouterr()
    assert f"method: msl-face (shipped checkpoint: {shipped_checkpoint('msl-face')})" in captured.out
    assert "Warning" not in captured.err


def test_default_model_says_telea_without_shipped_weights(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], no_shipped_model: None
) -> None:
    image, mask = _write_pair(tmp_path, "face")
    assert main(["inpaint", "--image", str(image), "--mask", str(mask), "--out", str(tmp_path / "o.png")]) == 0
    captured = capsys.readouterr()
    assert "method: telea (no trained default model ships with this installation)" in captured.out
    assert "Warning" not in captured.err


PROBLEMS = ["missing", "not-an-image", "size-mismatch", "empty-mask", "full-mask", "unknown-model", "preset"]


@pytest.mark.parametrize("problem", PROBLEMS)
def test_bad_inputs_exit_2_with_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], problem: str
) -> None:
    image, mask = _write_pair(tmp_path, "face")
    model, needle = "telea", ""
    if problem == "missing":
        image, needle = tmp_path / "nope.png", "not found"
    elif problem == "not-an-image":
        image.write_text("hello")
        needle = "not a readable image"
    elif problem == "size-mismatch":
        Image.new("L", (10, 10), 255).save(mask)
        needle = "must match"
    elif problem == "empty-mask":
        Image.new("L", (48, 40), 0).save(mask)
        needle = "no hole pixels"
    elif problem == "full-mask":
        Image.new("L", (48, 40), 255).save(mask)
        needle = "the mask covers 100% of the photo; at most 95% can be filled"
    elif problem == "unknown-model":
        model, needle = "no-such-model", "no-such-model"
    else:
        model, needle = "msl-tiny-128", "without trained weights"
    out = tmp_path / "out.png"
    status = main(["inpaint", "--image", str(image), "--mask", str(mask), "--out", str(out), "--model", model])
    _assert_one_error_line(capsys, status, needle)
    assert not out.exists()
    assert not list(tmp_path.glob(".*tmp*"))


@pytest.mark.parametrize("name", ["out.xyz", "out.jpg", "out.ico"])
def test_unwritable_or_lossy_output_fails_before_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    image, mask = _write_pair(tmp_path, "face")
    status = main(["inpaint", "--image", str(image), "--mask", str(mask), "--out", str(tmp_path / name)])
    _assert_one_error_line(capsys, status, "use .png, .tif or .webp")
    assert "method:" not in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_12000_px_photo_with_a_small_hole_stays_under_1_5_gb(tmp_path: Path) -> None:
    photo, mask = Image.new("RGB", (12000, 12000), (180, 140, 120)), Image.new("L", (12000, 12000), 0)
    ImageDraw.Draw(photo).ellipse((3000, 3000, 9000, 9000), fill=(200, 160, 140))
    ImageDraw.Draw(mask).rectangle((5800, 5800, 6200, 6100), fill=255)
    photo.save(tmp_path / "big.png")
    mask.save(tmp_path / "mask.png")
    del photo, mask
    command = [sys.executable, "-m", "hf_faceinpaint", "inpaint", "--image", str(tmp_path / "big.png"),
               "--mask", str(tmp_path / "mask.png"), "--out", str(tmp_path / "out.png"), "--model", "msl-face"]
    script = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:]); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")
    done = subprocess.run([sys.executable, "-c", script, *command], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    peak_gib = int(done.stdout.splitlines()[-1]) / 2**20  # ru_maxrss is in KiB on Linux
    assert peak_gib < 1.5, f"peak {peak_gib:.2f} GiB"
    assert (tmp_path / "out.png").stat().st_size > 0


def test_folder_mode_pairs_by_stem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_pair(tmp_path, "a", ext=".jpg")
    _write_pair(tmp_path, "bb", size=(30, 70))
    out_dir = tmp_path / "results"
    status = main(
        ["inpaint", "--image-dir", str(tmp_path / "images"), "--mask-dir", str(tmp_path / "masks"),
         "--out-dir", str(out_dir), "--model", "telea"]
    )
    assert status == 0
    assert sorted(p.name for p in out_dir.iterdir()) == ["a.png", "bb.png"]
    assert Image.open(out_dir / "bb.png").size == (30, 70)
    assert "wrote 2 image(s)" in capsys.readouterr().out


def test_folder_mode_writes_every_good_pair_then_names_the_bad_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("a", "b", "c"):
        _write_pair(tmp_path, name)
    (tmp_path / "images" / "b.png").write_text("not an image")
    Image.new("L", (48, 40), 0).save(tmp_path / "masks" / "c.png")  # no hole
    for name in ("d", "e", "f", "g", "h", "i", "j", "k"):  # a second batch, all good
        _write_pair(tmp_path, name)
    out_dir = tmp_path / "results"
    status = main(
        ["inpaint", "--image-dir", str(tmp_path / "images"), "--mask-dir", str(tmp_path / "masks"),
         "--out-dir", str(out_dir), "--model", "telea"]
    )
    out, err = capsys.readouterr()
    (line,) = [line for line in err.splitlines() if "error" in line]  # beside it only the progress bar
    assert "wrote 9 image(s)" in out and status == 2 and "Traceback" not in err
    assert line.startswith("error: 2 of 11 pair(s) could not be inpainted: b.png: ") and "; c.png: " in line
    assert sorted(p.stem for p in out_dir.iterdir()) == ["a", "d", "e", "f", "g", "h", "i", "j", "k"]


def test_folder_mode_names_images_without_mask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _write_pair(tmp_path, "a")
    _, orphan = _write_pair(tmp_path, "lonely")
    orphan.unlink()
    out_dir = tmp_path / "results"
    status = main(
        ["inpaint", "--image-dir", str(tmp_path / "images"), "--mask-dir", str(tmp_path / "masks"),
         "--out-dir", str(out_dir)]
    )
    _assert_one_error_line(capsys, status, "lonely.png")
    assert not out_dir.exists()


def test_mixing_single_and_folder_options_is_an_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = _write_pair(tmp_path, "face")
    status = main(["inpaint", "--image", str(image), "--mask", str(mask), "--out-dir", str(tmp_path)])
    _assert_one_error_line(capsys, status, "either")


def test_info_on_a_preset_is_labelled_untrained(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--model", "msl-tiny-128"]) == 0
    out = capsys.readouterr().out
    assert "UNTRAINED" in out and '"resolution": 128' in out
    assert "parameters: " in out and "GFLOPs per image (128×128): " in out


@pytest.mark.slow
def test_demo_and_module_entry_point(tmp_path: Path) -> None:
    out = tmp_path / "demo.png"
    done = subprocess.run(
        [sys.executable, "-m", "hf_faceinpaint", "demo", "--out", str(out), "--model", "telea"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "method: telea" in done.stdout
    assert Image.open(out).size == (512, 512)
    failed = subprocess.run(
        [sys.executable, "-m", "hf_faceinpaint", "info", "--model", "no-such-model"],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert failed.returncode == 2 and failed.stderr.startswith("error: ") and len(failed.stderr.splitlines()) == 1


def test_local_checkpoint_folder_and_a_corrupt_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = _write_pair(tmp_path, "face")
    MSLInpainter.from_preset("msl-tiny-128").save_pretrained(tmp_path / "ckpt")
    out = tmp_path / "out.png"
    args = ["inpaint", "--image", str(image), "--mask", str(mask), "--out", str(out), "--model", str(tmp_path / "ckpt")]
    assert main(args) == 0
    assert "local directory" in capsys.readouterr().out and out.is_file()
    weights = tmp_path / "ckpt" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # truncated download
    out.unlink()
    _assert_one_error_line(capsys, main(args), "cannot read weights file")
    assert not out.exists()


def test_a_device_no_model_can_run_on_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    image, mask = _write_pair(tmp_path, "face")
    out = tmp_path / "out.png"
    status = main(["inpaint", str(image), str(mask), "-o", str(out), "--device", "meta"])
    _assert_one_error_line(capsys, status, "device 'meta' cannot run a model")
    assert not out.exists()


@pytest.mark.parametrize("offline_mode", [False, True], ids=["unreachable", "HF_HUB_OFFLINE"])
def test_a_mistyped_folder_that_looks_like_a_hub_id_fails_fast_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, offline_mode: bool
) -> None:
    """`-m ck/okk` (no such folder) on a machine without network: at once, one line saying both that the folder does
    not exist and that the Hub cannot be reached, instead of the Hub client's retries (49 s). The Hub's address is a
    closed local port, so the test never uses the network."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", offline_mode)
    image, mask = _write_pair(tmp_path, "face")
    monkeypatch.chdir(tmp_path)
    started = time.monotonic()
    status = main(["inpaint", str(image), str(mask), "-o", "out.png", "-m", "ck/okk"])
    assert time.monotonic() - started < 10
    why = "offline mode is set (HF_HUB_OFFLINE)" if offline_mode else "this machine seems to be offline"
    _assert_one_error_line(capsys, status, f"no local folder 'ck/okk' exists (in {tmp_path})",
                           f"the Hugging Face Hub could not be reached ({why})")


@pytest.mark.parametrize("case", ["out-is-photo", "out-is-mask-by-symlink", "out-dir-is-mask-dir",
                                  "out-dir-is-image-dir-by-relative-path"])
def test_an_output_that_is_an_input_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    """An output (file, or folder mode's folder) that is one of the inputs, however the path is spelled, is one error
    line before any work; the inputs stay as they were."""
    image, mask = _write_pair(tmp_path, "face")
    before = {path: path.read_bytes() for path in (image, mask)}
    monkeypatch.chdir(tmp_path)
    (tmp_path / "link.png").symlink_to(mask)
    folders = ["--image-dir", "images", "--mask-dir", str(tmp_path / "masks"), "--out-dir"]
    argv, needle = {
        "out-is-photo": ([str(image), str(mask), "-o", "images/face.png"], f"is the photo {image}"),
        "out-is-mask-by-symlink": ([str(image), "masks/face.png", "-o", "link.png"], "is the mask masks/face.png"),
        "out-dir-is-mask-dir": ([*folders, "images/../masks"], "is the --mask-dir folder"),
        "out-dir-is-image-dir-by-relative-path": ([*folders, str(tmp_path / "images")], "is the --image-dir folder"),
    }[case]
    status = main(["inpaint", *argv, "--model", "telea"])
    _assert_one_error_line(capsys, status, needle, "overwr")
    assert {path: path.read_bytes() for path in before} == before
    assert "method:" not in capsys.readouterr().out


def test_folder_mode_bounds_the_pixels_of_each_call(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Folder mode inpaints at most `FOLDER_PIXELS` pixels per call (a larger photo alone), so its memory does not
    grow with the batch; here with a budget of 6000 pixels for photos of 1920 and 4900 (the benchmark
    `benchmarks/bench_folder_memory.py` measures the peak with 12000² photos)."""
    from hf_faceinpaint import cli

    for stem, size in (("a", (48, 40)), ("b", (48, 40)), ("c", (48, 40)), ("d", (70, 70)), ("e", (48, 40))):
        _write_pair(tmp_path, stem, size=size)
    (tmp_path / "images" / "f.png").write_text("not an image")  # counted as a full budget: alone
    Image.new("L", (48, 40), 255).save(tmp_path / "masks" / "f.png")
    calls: list[list[str]] = []

    def spy(images: list[Path] | Path, *args: object, **kwargs: object) -> list[Image.Image] | Image.Image:
        calls.append([path.stem for path in images] if isinstance(images, list) else [images.stem])
        return real(images, *args, **kwargs)

    real = cli.inpaint
    monkeypatch.setattr(cli, "inpaint", spy)
    monkeypatch.setattr(cli, "FOLDER_PIXELS", 6000, raising=False)
    status = main(["inpaint", "--image-dir", str(tmp_path / "images"), "--mask-dir", str(tmp_path / "masks"),
                   "--out-dir", str(tmp_path / "out"), "--model", "telea"])
    assert status == 2 and "1 of 6 pair(s) could not be inpainted: f.png" in capsys.readouterr().err
    assert calls[:4] == [["a", "b", "c"], ["d"], ["e"], ["f"]]  # then f again, alone, to name its problem
    assert sorted(path.stem for path in (tmp_path / "out").iterdir()) == ["a", "b", "c", "d", "e"]
