"""app.py: importing it has no side effects, its command line, its page handlers, and `/inpaint` via gradio_client."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

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
_, url, _ = demo.launch(prevent_thread_lock=True, **app.LAUNCH_OPTIONS)
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
def test_a_huge_mask_for_a_small_photo_is_refused_without_its_memory(
    app_module: ModuleType, tmp_path: Path, palette_png: Callable[[Path, int], Path]
) -> None:
    Image.new("RGB", (64, 64), (180, 140, 120)).save(tmp_path / "photo.png")
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (20, 20, 40, 40))
    mask.save(tmp_path / "mask.png")
    palette_png(tmp_path / "huge.png", 13000)  # 165 KB on disk, 169 MB of palette indices decoded
    code = f"""
import importlib.util, warnings
from pathlib import Path
warnings.simplefilter("ignore")
peak = lambda: int([line for line in open("/proc/self/status") if line.startswith("VmHWM")][0].split()[1]) * 1024
spec = importlib.util.spec_from_file_location("app", {str(app_module.__file__)!r})
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
_, inpaint_files = app.make_handlers(Path({str(tmp_path / "out")!r}))
photo = {str(tmp_path / "photo.png")!r}
inpaint_files(photo, {str(tmp_path / "mask.png")!r}, "telea")  # a normal request
normal = peak()
try:
    inpaint_files(photo, {str(tmp_path / "huge.png")!r}, "telea")
except app.gr.Error as err:
    print("refused:", err)
print("extra", peak() - normal)
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "GRADIO_TEMP_DIR": str(tmp_path / "gradio")})
    assert done.returncode == 0, done.stderr
    assert "The mask file is 13000×13000 px, larger than the photo (64×64 px)" in done.stdout
    extra = int(done.stdout.split("extra")[-1].split()[0]) / 2**30
    assert extra < 0.3, f"the huge mask's request peaked {extra:.2f} GiB above a normal request's"


@pytest.mark.slow
def test_sigterm_stops_the_server_and_removes_its_results(app_module: ModuleType, tmp_path: Path, port: int) -> None:
    from gradio_client import Client, handle_file

    env = {**os.environ, "TMPDIR": str(tmp_path), "GRADIO_TEMP_DIR": str(tmp_path / "gradio"),
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"}
    server = subprocess.Popen([sys.executable, app_module.__file__, "--port", str(port)], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        lines = []
        while not any(f":{port}" in line for line in lines):  # Gradio names its URL once it serves
            lines.append(server.stdout.readline())
            assert lines[-1], "".join(lines)
        (folder,) = [Path(line.split(" under ")[1].split(" (")[0]) for line in lines if "results are written" in line]
        Client(f"http://127.0.0.1:{port}/", verbose=False).predict(
            handle_file(str(example_image_path())), handle_file(str(example_mask_path())), "telea", api_name="/inpaint"
        )
        assert any(folder.iterdir())  # the request's folder, with the photo's result
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)
    finally:
        server.kill()
        server.wait()
    assert not folder.exists() and not list(tmp_path.glob(f"{editor.APP_DIR_PREFIX}*")), server.stdout.read()


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


def _example_strokes() -> tuple[dict[str, Any], str]:
    """The session's photo for the example and the strokes the page sends for its bundled mask."""
    view, _ = editor.scene(example_image_path(), example_mask_path())  # the mask file, drawn as strokes
    photo = {"path": str(example_image_path()), "name": "astronaut", "canvas": (view["width"], view["height"])}
    return photo, view["strokes"]


def test_page_handlers_compare_methods_and_refuse_bad_photos(app_module: ModuleType, tmp_path: Path) -> None:
    inpaint_sketch, _ = app_module.make_handlers(tmp_path)
    photo, strokes = _example_strokes()
    slider, download, masked, comparison, summary, history, gallery, last, reuse = inpaint_sketch(
        photo, strokes, "telea", "", "ns", []
    )
    assert Path(slider[1]).name == "astronaut-telea.png" and download["value"] == slider[1] == last
    assert Path(masked).parent == Path(slider[0]).parent
    assert comparison["visible"] and comparison["label"] == "Result: OpenCV Navier-Stokes (classic baseline)"
    assert "vs" in summary and "hole 4.8% of the photo" in summary
    assert history == gallery == [(last, "astronaut · telea")] and reuse["interactive"]
    with pytest.raises(app_module.gr.Error, match="Upload a photo first"):
        inpaint_sketch(None, "", "telea", "", "", [])
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.warns(UserWarning, match="notes.png could not be read as an image"):
        drop, shown, mask_slot, session, *result = app_module.open_photo({"path": str(tmp_path / "notes.png")}, None)
    assert drop["value"] is None and not shown["visible"] and session is None
    assert tuple(result) == app_module.no_result()


def test_a_photo_opens_on_the_canvas_and_a_new_one_empties_the_result(app_module: ModuleType, tmp_path: Path) -> None:
    photo_path = tmp_path / "wide.png"
    Image.new("RGB", (1600, 800), (150, 120, 100)).save(photo_path)
    drop, shown, mask_slot, photo, *result = app_module.open_photo({"path": str(photo_path)}, None)
    assert not drop["visible"] and shown["visible"]  # the canvas takes the drop zone's place
    assert photo["name"] == "wide" and photo["canvas"] == (editor.EDITOR_MAX_SIDE, editor.EDITOR_MAX_SIDE // 2)
    assert shown["scene"]["width"] == editor.EDITOR_MAX_SIDE  # the page's canvas receives it as its prop
    slider, download, masked, comparison, summary, last, reuse = result  # the last photo's result goes
    assert slider is masked is last is None and summary == ""
    assert download["value"] is None and not download["interactive"] and not reuse["interactive"]
    assert not comparison["visible"]
    drop, shown, photo, *result = app_module.new_photo()
    assert drop["visible"] and not shown["visible"] and shown["scene"] is None and photo is None
    assert tuple(result) == app_module.no_result()
    assert app_module.open_photo(None, None) == (app_module.gr.skip(),) * 11  # the drop zone was emptied


def test_a_mask_file_of_another_shape_is_refused_and_its_slot_emptied(app_module: ModuleType, tmp_path: Path) -> None:
    photo = {"path": str(example_image_path()), "name": "astronaut"}
    Image.new("L", (300, 100), 255).save(tmp_path / "wrong.png")
    with pytest.warns(UserWarning, match="The mask file is 300×100 px but the photo is 512×512 px: another shape"):
        shown, slot = app_module.apply_mask_file(photo, {"path": str(tmp_path / "wrong.png")})
    assert shown == app_module.gr.skip() and slot["value"] is None
    shown, slot = app_module.apply_mask_file(photo, {"path": str(example_mask_path())})
    assert shown["scene"]["strokes"].startswith("data:image/png") and slot == app_module.gr.skip()


def test_a_result_opens_as_the_new_photo_and_the_history_keeps_the_last_few(
    app_module: ModuleType, tmp_path: Path
) -> None:
    inpaint_sketch, _ = app_module.make_handlers(tmp_path)
    photo, strokes = _example_strokes()
    history: list[tuple[str, str]] = []
    for _ in range(editor.HISTORY_LENGTH + 1):
        *_, history, _, result, _ = inpaint_sketch(photo, strokes, "telea", "", "", history)
        shown, photo = app_module.edit_again(result, photo)  # keep editing the result
        assert photo == {"path": result, "name": "astronaut", "canvas": (512, 512)}
        assert shown["scene"]["strokes"] is None
    assert len(history) == editor.HISTORY_LENGTH and history[0][0] == result
    assert all(Path(path).name == "astronaut-telea.png" for path, _ in history)  # named after the first photo
    event = app_module.gr.SelectData(None, {"index": 2, "value": None})
    shown, again = app_module.edit_from_history(history, photo, event)
    assert again["path"] == history[2][0]
    Path(history[2][0]).unlink()  # request folders go after an hour
    with pytest.warns(UserWarning, match="no longer on the server"):
        assert app_module.edit_from_history(history, photo, event) == (app_module.gr.skip(),) * 2


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
