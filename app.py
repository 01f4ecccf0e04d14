"""Gradio demo of hf-faceinpaint: paint over part of a face photo and get it filled.

Run `python app.py` (127.0.0.1:7860; --host / --port / --share; --allow-model PATH_OR_ID, repeatable, or
--allow-any-model to let requests load other checkpoints), or use this file as a Hugging Face Space's
`app_file` (see space/README.md). This file holds the UI only; the logic is in `hf_faceinpaint.editor`.

Endpoints: `/inpaint` (image file, mask file with white = hole, method name) -> result image, for
`gradio_client`; the page's own events are private.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from hf_faceinpaint import editor
from hf_faceinpaint.images import example_image_path, example_mask_path

# Inpainting events of the page and the API share this many workers; more requests wait in the queue.
CONCURRENCY_LIMIT = 2
QUEUE_SIZE = 32
MAX_UPLOAD = "50mb"
# Gradio's cache (uploads, results) is swept every hour of files older than six hours.
CACHE_SWEEP = (3600, 6 * 3600)

INTRO = f"""
# Face inpainting
**1** upload a face photo (JPEG, PNG or WebP, any size; over {editor.MAX_SIDE} px it is downscaled) or pick the
example · **2** paint over what should be filled: brush (size in its menu), eraser and undo are in the editor's
toolbar, or upload a mask (white = hole) · **3** press **Inpaint**, compare before/after with the slider and
download the PNG. Pixels outside the painted area are left exactly as they were.
"""

EDITOR_PLACEHOLDER = """
### 2 · Paint over what to fill
The painting canvas opens here once a photo is uploaded (or the example is picked).
"""


def _notify(notices: list[str] | tuple[str, ...]) -> None:
    """Show each notice as a Gradio warning toast."""
    for notice in notices:
        gr.Warning(notice)


def _upload_path(value: str | dict[str, Any] | None) -> str | None:
    """The server path of an image input, given as a path or (events without preprocessing) as its file data."""
    return value.get("path") if isinstance(value, dict) else value


def load_photo(
    photo: str | dict[str, Any] | None, mask_file: str | dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any], str | None]:
    """Check a newly chosen photo and show it (with the mask file as painted strokes) in the editor.

    Runs without Gradio's preprocessing, so a file that is not an image reaches the check (and its message).
    Returns updates for the photo, the editor and its placeholder, and the photo's path for the session.
    """
    path = _upload_path(photo)
    try:
        value, notices = editor.editor_value(path, _upload_path(mask_file))
    except editor.InputError as err:
        gr.Warning(str(err))
        path, value, notices = None, None, []
    _notify(notices)
    shown = value is not None
    photo_update = gr.update() if shown else gr.update(value=None)  # drop a photo that cannot be used
    return photo_update, gr.update(value=value, visible=shown), gr.update(visible=not shown), path


def toggle_checkpoint(method: str) -> dict[str, Any]:
    """Show the checkpoint box only for the "checkpoint" method."""
    return gr.update(visible=method == editor.CUSTOM)


M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter


def return_large_buffers_to_the_system() -> None:
    """Have glibc serve buffers of 4 MiB and more from mmap, so a huge photo's memory goes back to the system when
    its request ends instead of staying in the heap (measured on a 12000² PNG: 1.54 GiB held after the request
    without this, 0.54 with it). Does nothing where the C library is not glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, 4 * 2**20)


def sweep_empty_uploads(folder: Path, max_age_s: float = editor.REQUEST_DIR_MAX_AGE_S) -> None:
    """Remove the empty files that Gradio's streamed uploads leave in its upload folder, two per request
    (`NamedTemporaryFile(delete=False)` in gradio/route_utils.py), once they are older than `max_age_s`; an upload
    in progress is younger, and files with content are never touched."""
    cutoff = time.time() - max_age_s
    for path in folder.glob("tmp*"):
        with contextlib.suppress(OSError):  # removed meanwhile, or not ours to remove
            stat = path.lstat()
            if stat.st_size == 0 and stat.st_mtime < cutoff and path.is_file() and not path.is_symlink():
                path.unlink()


def make_handlers(
    out_root: Path, policy: editor.MethodPolicy = editor.OWN_METHODS
) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """The two inpainting callbacks (page and API), bound to the output root and the methods the operator allows."""

    def inpaint_sketch(
        photo: str | None,
        painted: dict[str, Any] | None,
        method: str,
        checkpoint: str,
        compare: str,
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for a progress tracker)
    ) -> tuple[Any, ...]:
        """Inpaint the painted strokes; returns the slider, download, masked input, comparison and summary."""
        sweep_empty_uploads(Path(gr.utils.get_upload_folder()))
        try:
            job = editor.job_from_sketch(photo, painted)
            specs = editor.resolve_methods(method, checkpoint, compare, policy)
            _notify(job.notices)
            outputs = editor.run_request(
                job, specs, editor.new_request_dir(out_root), lambda done, text: progress(done, desc=text)
            )
        except editor.InputError as err:
            raise gr.Error(str(err)) from err
        result = str(outputs.results[0])
        other = str(outputs.results[1]) if len(outputs.results) > 1 else None
        comparison = gr.update(
            value=other, label=f"Result: {editor.method_label(specs[-1])}", visible=other is not None
        )
        download = gr.update(value=result, interactive=True)
        return (str(outputs.before), result), download, str(outputs.masked), comparison, outputs.summary

    def inpaint_files(image: str | None, mask: str | None, method: str) -> str:
        """API: inpaint an image file with a mask file (white = hole) using a method name; returns the PNG."""
        sweep_empty_uploads(Path(gr.utils.get_upload_folder()))
        try:
            job = editor.job_from_files(image, mask)
            _notify(job.notices)
            return str(editor.run_job(job, editor.resolve_method(method, "", policy), editor.new_request_dir(out_root)))
        except editor.InputError as err:
            raise gr.Error(str(err)) from err

    return inpaint_sketch, inpaint_files


def sketch_editor() -> gr.ImageEditor:
    """The painting canvas (not rendered yet): a fixed translucent brush, eraser, undo; hidden until a photo loads."""
    return gr.ImageEditor(
        label="2 · Paint over what to fill",
        type="numpy", image_mode="RGBA", format="png", sources=[], transforms=[], layers=False,
        brush=gr.Brush(colors=[editor.HOLE_CSS], color_mode="fixed"), eraser=gr.Eraser(),
        # an initial canvas smaller than any photo: a larger one offsets the mask layers the server sends
        canvas_size=(64, 64), height=560, visible=False, render=False, elem_id="editor",
    )


def build_app(out_root: Path | None = None, policy: editor.MethodPolicy = editor.OWN_METHODS) -> gr.Blocks:
    """Build the demo; the default method is loaded here, once (`load_model` keeps it for all requests).

    Args:
        out_root: Folder for the per-request output folders (default: a new temporary folder, removed at exit).
        policy: The methods requests may run (default: the installation's own; see `--allow-model`).
    """
    return_large_buffers_to_the_system()
    editor.load_method(editor.default_method())
    if out_root is None:
        out_root = Path(tempfile.mkdtemp(prefix="hf-faceinpaint-app-"))
        atexit.register(shutil.rmtree, out_root, ignore_errors=True)  # the results go when the server stops
        print(f"results are written under {out_root} (removed at exit)")
    inpaint_sketch, inpaint_files = make_handlers(out_root, policy)
    method_choices = editor.method_choices(policy)
    compare_choices = [("No comparison", "")] + [choice for choice in method_choices if choice[1] != editor.CUSTOM]

    with gr.Blocks(title="Face inpainting", delete_cache=CACHE_SWEEP) as demo:
        gr.Markdown(INTRO)
        if editor.default_model_notice():
            gr.Markdown(f"⚠️ {editor.default_model_notice()}", elem_id="model-notice")
        photo_path = gr.State(None)  # the checked upload, per session
        painted = sketch_editor()
        waiting = gr.Markdown(EDITOR_PLACEHOLDER, container=True, render=False, elem_id="editor-placeholder")
        with gr.Row():
            with gr.Column(scale=1, min_width=300):
                photo = gr.Image(
                    label="1 · Photo", type="filepath", image_mode=None, sources=["upload", "clipboard"],
                    height=240, elem_id="photo",
                )
                with gr.Accordion("Or upload a mask (white = hole)", open=False):
                    gr.Markdown("It replaces the painted strokes; erase or add to it in the editor.")
                    mask_file = gr.Image(
                        label="Mask image", type="filepath", image_mode=None, sources=["upload"], height=160,
                        elem_id="mask-file",
                    )
                gr.Examples(
                    [[str(example_image_path()), str(example_mask_path())], [str(example_image_path()), None]],
                    inputs=[photo, mask_file], fn=load_photo, outputs=[photo, painted, waiting, photo_path],
                    run_on_click=True, cache_examples=False,
                    label="Example: NASA portrait (public domain), with or without a mask",
                )
                method = gr.Dropdown(method_choices, value=editor.default_method(), label="Method", elem_id="method")
                checkpoint = gr.Textbox(
                    label="Checkpoint", placeholder="folder written by save_pretrained, or org/name on the Hub",
                    visible=False,
                )
                compare = gr.Dropdown(compare_choices, value="", label="Compare with", elem_id="compare")
                run = gr.Button("Inpaint", variant="primary", elem_id="inpaint")
            with gr.Column(scale=2):
                waiting.render()
                painted.render()
        summary = gr.Markdown(elem_id="summary")
        with gr.Row():
            before_after = gr.ImageSlider(
                label="3 · Before | after (drag the slider)", type="filepath", format="png", scale=2,
                slider_position=30, max_height=640, elem_id="result",
            )
            with gr.Column(scale=1, min_width=300):
                download = gr.DownloadButton("Download PNG", interactive=False, elem_id="download")
                comparison = gr.Image(
                    label="Comparison", type="filepath", format="png", visible=False, elem_id="comparison"
                )
                with gr.Accordion("Masked input the method received (white = hole)", open=False):
                    masked = gr.Image(show_label=False, type="filepath", format="png", elem_id="masked")

        gr.on(
            [photo.upload, photo.clear, mask_file.upload, mask_file.clear],
            load_photo, [photo, mask_file], [photo, painted, waiting, photo_path],
            preprocess=False, concurrency_limit=CONCURRENCY_LIMIT, api_visibility="private",
        )
        method.change(toggle_checkpoint, method, checkpoint, api_visibility="private")
        run.click(
            inpaint_sketch, [photo_path, painted, method, checkpoint, compare],
            [before_after, download, masked, comparison, summary],
            concurrency_limit=CONCURRENCY_LIMIT, concurrency_id="inpaint", api_visibility="private",
        )
        api_endpoint(inpaint_files)
    return demo.queue(max_size=QUEUE_SIZE)


def api_endpoint(inpaint_files: Callable[..., Any]) -> None:
    """`/inpaint` (image file, mask file, method name) -> result image, on hidden components of its own."""
    with gr.Column(visible=False):
        image, mask = gr.File(label="image"), gr.File(label="mask")
        method = gr.Textbox(label="method", value="")
        result = gr.Image(label="result", type="filepath", format="png")
        trigger = gr.Button()
    trigger.click(
        inpaint_files, [image, mask, method], result, api_name="inpaint",
        concurrency_limit=CONCURRENCY_LIMIT, concurrency_id="inpaint",
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the defaults follow GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (set on Spaces)."""
    parser = argparse.ArgumentParser(description="Serve the hf-faceinpaint Gradio demo.")
    parser.add_argument("--host", default=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), help="interface to bind")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GRADIO_SERVER_PORT", "7860")), help="port")
    parser.add_argument("--share", action="store_true", help="also create a temporary public gradio.live link")
    parser.add_argument(
        "--allow-model", action="append", default=[], metavar="PATH_OR_ID",
        help="a checkpoint folder or Hub repo id that requests may use, listed as a method (repeatable)",
    )
    parser.add_argument(
        "--allow-any-model", action="store_true",
        help="let requests load any folder or Hub repo id they name (local use only: not on a public server)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    args = parse_args()
    policy = editor.MethodPolicy(tuple(args.allow_model), args.allow_any_model)
    build_app(policy=policy).launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_UPLOAD)
