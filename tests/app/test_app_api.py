"""app.py: importing it has no side effects, its command line, its page handlers, and `/inpaint` via gradio_client."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from PIL import Image

from hf_faceinpaint import editor
from hf_faceinpaint.images import example_image_path, example_mask_path, load_image, load_mask

pytestmark = pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")  # gradio's pandas use


def test_import_builds_nothing_and_cli_defaults(app_module: ModuleType, monkeypatch: pytest.MonkeyPatch) -> None:
    assert callable(app_module.build_app)
    assert not hasattr(app_module, "demo")  # nothing is built or served at import
    monkeypatch.delenv("GRADIO_SERVER_NAME", raising=False)
    monkeypatch.delenv("GRADIO_SERVER_PORT", raising=False)
    args = app_module.parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    args = app_module.parse_args(["--host", "0.0.0.0", "--port", "9000", "--share"])
    assert (args.host, args.port, args.share) == ("0.0.0.0", 9000, True)
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")  # what a Space sets
    assert app_module.parse_args([]).host == "0.0.0.0"
    assert (args.allow_model, args.allow_any_model) == ([], False)
    args = app_module.parse_args(["--allow-model", "runs/a/final", "--allow-model", "org/b", "--allow-any-model"])
    assert (args.allow_model, args.allow_any_model) == (["runs/a/final", "org/b"], True)


def test_requests_sweep_the_empty_files_gradio_uploads_leave(
    app_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uploads = tmp_path / "gradio"
    uploads.mkdir()
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(uploads))
    old = time.time() - 2 * 3600
    for name, content, stale in [("tmpold", b"", True), ("tmpnew", b"", False), ("tmpdata", b"x", True),
                                 ("notes", b"", True)]:
        (uploads / name).write_bytes(content)
        if stale:
            os.utime(uploads / name, (old, old))
    _, inpaint_files = app_module.make_handlers(tmp_path / "out")
    inpaint_files(str(example_image_path()), str(example_mask_path()), "telea")
    assert sorted(p.name for p in uploads.iterdir()) == ["notes", "tmpdata", "tmpnew"]


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
def test_a_huge_photos_memory_goes_back_after_its_request(app_module: ModuleType, tmp_path: Path) -> None:
    photo, mask = Image.new("RGB", (12000, 12000), (180, 140, 120)), Image.new("L", (12000, 12000), 0)
    mask.paste(255, (5800, 5800, 6200, 6100))
    photo.save(tmp_path / "big.png")
    mask.save(tmp_path / "mask.png")
    del photo, mask
    code = f"""
import importlib.util, os, tempfile, warnings
from pathlib import Path
warnings.simplefilter("ignore")
rss = lambda: int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
spec = importlib.util.spec_from_file_location("app", {str(app_module.__file__)!r})
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
demo = app.build_app(out_root=Path(tempfile.mkdtemp(dir={str(tmp_path)!r})))
_, url, _ = demo.launch(prevent_thread_lock=True, max_file_size=app.MAX_UPLOAD)
from gradio_client import Client, handle_file
client = Client(url, verbose=False)
before = rss()
client.predict(handle_file({str(tmp_path / "big.png")!r}), handle_file({str(tmp_path / "mask.png")!r}), "telea",
               api_name="/inpaint")
print("held", rss() - before)
demo.close()
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "gradio")})
    assert done.returncode == 0, done.stderr
    held = int(done.stdout.split("held")[-1].split()[0]) / 2**30
    assert held < 0.3, f"{held:.2f} GiB still held after the request"


@pytest.mark.slow
def test_the_default_results_folder_is_removed_at_exit(app_module: ModuleType, tmp_path: Path) -> None:
    code = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('app', {str(app_module.__file__)!r})\n"
        "app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)\n"
        "app.build_app()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "TMPDIR": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    (line,) = [line for line in done.stdout.splitlines() if line.startswith("results are written under ")]
    folder = Path(line.removeprefix("results are written under ").removesuffix(" (removed at exit)"))
    assert folder.parent == tmp_path and not folder.exists()


def test_the_api_refuses_methods_the_operator_did_not_allow(
    app_module: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked_up: list[str] = []
    monkeypatch.setattr(editor, "load_model", lambda spec, *args, **kwargs: looked_up.append(spec))
    _, inpaint_files = app_module.make_handlers(tmp_path)
    for method in ("/etc", "/etc/passwd", "org/any-repo"):
        with pytest.raises(app_module.gr.Error, match=f"This server does not offer the method '{method}'"):
            inpaint_files(str(example_image_path()), str(example_mask_path()), method)
    assert looked_up == []  # refused before anything was loaded or looked up


def test_page_handlers_compare_methods_and_refuse_bad_photos(app_module: ModuleType, tmp_path: Path) -> None:
    inpaint_sketch, _ = app_module.make_handlers(tmp_path)
    value, _ = editor.editor_value(example_image_path(), example_mask_path())  # the mask file, drawn as a layer
    painted = {"background": None, "layers": [np.asarray(layer) for layer in value["layers"]], "composite": None}
    photo = str(example_image_path())
    slider, download, masked, comparison, summary = inpaint_sketch(photo, painted, "telea", "", "ns")
    assert Path(slider[1]).name == "astronaut-telea.png" and download["value"] == slider[1]
    assert Path(masked).parent == Path(slider[0]).parent
    assert comparison["visible"] and comparison["label"] == "Result: OpenCV Navier-Stokes (classic baseline)"
    assert "vs" in summary and "hole 4.8% of the photo" in summary
    with pytest.raises(app_module.gr.Error, match="Upload a photo first"):
        inpaint_sketch(None, None, "telea", "", "")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.warns(UserWarning, match="notes.png could not be read as an image"):
        photo, shown, placeholder, path = app_module.load_photo({"path": str(tmp_path / "notes.png")}, None)
    assert photo["value"] is None and not shown["visible"] and placeholder["visible"] and path is None


@pytest.fixture(scope="module")
def client(app_url: str):  # noqa: ANN201 (gradio_client.Client)
    """A gradio_client connected to the served demo."""
    from gradio_client import Client

    return Client(app_url, verbose=False)


@pytest.mark.slow
def test_api_inpaints_the_example_keeping_unmasked_pixels(client) -> None:  # noqa: ANN001
    from gradio_client import handle_file

    api = client.view_api(print_info=False, return_format="dict")
    assert list(api["named_endpoints"]) == ["/inpaint"]
    parameters = api["named_endpoints"]["/inpaint"]["parameters"]
    assert [parameter["parameter_name"] for parameter in parameters] == ["image", "mask", "method"]
    out = client.predict(
        handle_file(str(example_image_path())), handle_file(str(example_mask_path())), "telea", api_name="/inpaint"
    )
    original = np.asarray(load_image(example_image_path()))
    hole = load_mask(example_mask_path(), (512, 512))
    with Image.open(out) as result:
        assert result.format == "PNG" and result.size == (512, 512)
        pixels = np.asarray(result.convert("RGB"))
    np.testing.assert_array_equal(pixels[~hole], original[~hole])
    assert np.abs(pixels[hole].astype(int) - original[hole]).mean() > 1.0


@pytest.mark.parametrize(
    ("mask", "message"),
    [("empty", "The mask is empty"), ("full", "covers 100% of the photo"), ("text", "could not be read as an image")],
)
@pytest.mark.slow
def test_api_errors_reach_the_client(client, tmp_path: Path, mask: str, message: str) -> None:  # noqa: ANN001
    from gradio_client import handle_file

    path = tmp_path / "mask.png"
    if mask == "text":
        path.write_text("not a picture")
    else:
        Image.new("L", (512, 512), 0 if mask == "empty" else 255).save(path)
    with pytest.raises(Exception, match=message):
        client.predict(handle_file(str(example_image_path())), handle_file(str(path)), "", api_name="/inpaint")
