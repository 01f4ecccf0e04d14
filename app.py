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
import signal
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
Drop, paste or pick a face photo, paint over what should go, press **Inpaint**. Pixels outside the strokes stay
exactly as they were. Shortcuts: `[` / `]` brush size, Ctrl+Z / Ctrl+Shift+Z undo / redo.
"""

DROP_LABEL = f"Photo: drop, paste or click to upload (JPEG, PNG or WebP; over {editor.MAX_SIDE} px it is downscaled)"
EDITOR_LABEL = "Paint over what to fill"
EDITOR_HEIGHT = 520
BRUSH_LABEL = "Brush size, % of the photo's shorter side ([ / ] keys)"

# Keyboard shortcuts, installed once when the page loads: [ and ] step the brush-size slider (its change event then
# resizes the brush), Ctrl+Z / Ctrl+Shift+Z (or Ctrl+Y) press the editor's own undo / redo buttons. Keys typed into
# a text field are left alone.
SHORTCUTS_JS = """
() => {
  const press = (label) => document.querySelector(`#editor button[aria-label="${label}"]`)?.click();
  document.addEventListener("keydown", (event) => {
    if (event.target.closest("input, textarea, select, [contenteditable=true]")) return;
    const ctrl = event.ctrlKey || event.metaKey;
    if (ctrl && event.key.toLowerCase() === "z") {
      press(event.shiftKey ? "Redo" : "Undo");
    } else if (ctrl && event.key.toLowerCase() === "y") {
      press("Redo");
    } else if (!ctrl && (event.key === "[" || event.key === "]")) {
      const input = document.querySelector("#brush-size input[type=number]");
      if (!input) return;
      const value = Math.min(+input.max, Math.max(+input.min, +input.value + (event.key === "]" ? 1 : -1)));
      input.value = value;
      input.dispatchEvent(new Event("input", { bubbles: true }));
      input.dispatchEvent(new Event("change", { bubbles: true }));
      input.dispatchEvent(new Event("blur"));
    } else {
      return;
    }
    event.preventDefault();
  });
}
"""


def _notify(notices: list[str] | tuple[str, ...]) -> None:
    """Show each notice as a Gradio warning toast."""
    for notice in notices:
        gr.Warning(notice)


def _upload_path(value: str | dict[str, Any] | None) -> str | None:
    """The server path of an image input, given as a path or (events without preprocessing) as its file data."""
    return value.get("path") if isinstance(value, dict) else value


def _brush(canvas: tuple[int, int] | None, percent: float) -> gr.Brush:
    """The editor's brush: one translucent colour, `percent` % of the canvas's shorter side across."""
    radius = editor.brush_radius(canvas, percent) if canvas else 10
    return gr.Brush(colors=[editor.HOLE_CSS], color_mode="fixed", default_size=radius)


def _show(photo: dict[str, Any], value: dict[str, Any], percent: float) -> dict[str, Any]:
    """The editor update that shows an editor value (photo and layers) with the brush sized to it."""
    photo["canvas"] = value["background"].size
    return gr.update(value=value, visible=True, brush=_brush(photo["canvas"], percent))


def open_photo(
    upload: str | dict[str, Any] | None, mask_file: str | dict[str, Any] | None, percent: float
) -> tuple[Any, ...]:
    """Check a newly chosen photo and open it (with the mask file as painted strokes) in the editor, in place of the
    drop zone. Runs without Gradio's preprocessing, so a file that is not an image reaches the check (and its
    message). Returns updates for the drop zone, the editor and the mask slot, and the session's photo.
    """
    path = _upload_path(upload)
    if path is None:  # the drop zone was cleared (by "New photo")
        return gr.skip(), gr.skip(), gr.skip(), gr.skip()
    try:
        value, notices = editor.editor_value(path, _upload_path(mask_file))
    except editor.InputError as err:
        gr.Warning(str(err))
        return gr.update(value=None), gr.update(visible=False), gr.skip(), None
    _notify(notices)
    photo = {"path": path, "name": Path(path).stem}
    mask_update = gr.update(value=None) if notices and "mask file" in notices[-1] else gr.skip()
    return gr.update(visible=False), _show(photo, value, percent), mask_update, photo


def apply_mask_file(photo: dict[str, Any] | None, mask_file: str | dict[str, Any] | None) -> tuple[Any, Any]:
    """Draw an uploaded mask file into the editor as its strokes; a mask that does not fit is refused and its slot
    emptied. Returns updates for the editor and the mask slot."""
    path = _upload_path(mask_file)
    if photo is None or path is None:
        if photo is None:
            gr.Warning("Open a photo first; then upload its mask.")
        return gr.skip(), gr.update(value=None)
    value, notices = editor.editor_value(photo["path"], path)
    _notify(notices)
    if notices and "mask file" in notices[-1]:
        return gr.skip(), gr.update(value=None)
    return gr.update(value=value), gr.skip()


def clear_strokes(photo: dict[str, Any] | None) -> Any:
    """The editor with the photo and no strokes (the toolbar's clear button and "Clear strokes" both come here)."""
    if photo is None:
        return gr.skip()
    value, _ = editor.editor_value(photo["path"], None)
    return gr.update(value=value)


def resize_brush(photo: dict[str, Any] | None, percent: float) -> Any:
    """The editor's brush at `percent` % of the photo's shorter side."""
    return gr.update(brush=_brush(photo.get("canvas") if photo else None, percent))


def new_photo() -> tuple[Any, Any, None]:
    """Back to an empty drop zone: updates for the drop zone and the editor, and no session photo."""
    return gr.update(value=None, visible=True), gr.update(value=None, visible=False), None


def edit_again(path: str | None, photo: dict[str, Any] | None, percent: float) -> tuple[Any, Any]:
    """Open a result (of this session) in the editor as the new photo, keeping the original's file name.

    Returns updates for the editor and the session's photo.
    """
    if not path or not Path(path).is_file():
        gr.Warning("That result is no longer on the server (results are kept for an hour); inpaint again.")
        return gr.skip(), gr.skip()
    value, _ = editor.editor_value(path, None)
    again = {"path": path, "name": (photo or {}).get("name") or Path(path).stem}
    return _show(again, value, percent), again


def edit_from_history(
    history: list[tuple[str, str]], photo: dict[str, Any] | None, percent: float, event: gr.SelectData
) -> tuple[Any, Any]:
    """Open the history entry the user clicked in the editor (see `edit_again`)."""
    return edit_again(history[event.index][0] if event.index < len(history) else None, photo, percent)


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
        photo: dict[str, Any] | None,
        painted: dict[str, Any] | None,
        method: str,
        checkpoint: str,
        compare: str,
        history: list[tuple[str, str]],
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for a progress tracker)
    ) -> tuple[Any, ...]:
        """Inpaint the painted strokes. Returns the slider, download, masked input, comparison, summary, the
        session's history (state and gallery) and the result the "edit this result" button opens."""
        sweep_empty_uploads(Path(gr.utils.get_upload_folder()))
        try:
            job = editor.job_from_sketch(photo and photo["path"], painted, photo and photo["name"])
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
        history = editor.with_result(history, result, editor.method_label(specs[0]))
        return (
            (str(outputs.before), result), download, str(outputs.masked), comparison, outputs.summary,
            history, history, result, gr.update(interactive=True),
        )

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
    """The painting canvas: the photo the server sent (never uploaded from here), a fixed translucent brush sized to
    the photo, eraser, undo / redo; hidden until a photo is open."""
    return gr.ImageEditor(
        label=EDITOR_LABEL,
        type="numpy", image_mode="RGBA", format="png", sources=[], transforms=[], layers=False,
        brush=_brush(None, editor.BRUSH_PERCENT), eraser=gr.Eraser(),
        # an initial canvas smaller than any photo: a larger one offsets the mask layers the server sends
        canvas_size=(64, 64), height=EDITOR_HEIGHT, visible=False, elem_id="editor",
    )


def build_app(out_root: Path | None = None, policy: editor.MethodPolicy = editor.OWN_METHODS) -> gr.Blocks:
    """Build the demo; the default method is loaded here, once (`load_model` keeps it for all requests).

    Layout: the editor (where the photo is dropped, then painted) with the method and Inpaint right under it, and
    the result beside it on wide screens (below it on narrow ones); options and examples further down.

    Args:
        out_root: Folder for the per-request output folders (default: a new temporary folder of this process,
            removed at exit; those of earlier runs that have ended are removed first).
        policy: The methods requests may run (default: the installation's own; see `--allow-model`).
    """
    return_large_buffers_to_the_system()
    editor.load_method(editor.default_method())
    if out_root is None:
        out_root = editor.app_output_root()
        atexit.register(shutil.rmtree, out_root, ignore_errors=True)  # the results go when the server stops
        print(f"results are written under {out_root} (removed at exit)")
    inpaint_sketch, inpaint_files = make_handlers(out_root, policy)
    method_choices = editor.method_choices(policy)
    compare_choices = [("No comparison", "")] + [choice for choice in method_choices if choice[1] != editor.CUSTOM]

    with gr.Blocks(title="Face inpainting", delete_cache=CACHE_SWEEP) as demo:
        gr.Markdown(INTRO)
        if editor.default_model_notice():
            gr.Markdown(f"⚠️ {editor.default_model_notice()}", elem_id="model-notice")
        photo = gr.State(None)  # the session's photo on the server: {"path", "name", "canvas": (W, H)}
        history = gr.State([])  # this session's results, newest first: [(path, method label)]
        last_result = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=340):
                drop = gr.Image(
                    label=DROP_LABEL, type="filepath", image_mode=None, sources=["upload", "clipboard"],
                    height=EDITOR_HEIGHT, elem_id="photo",
                )
                painted = sketch_editor()
                with gr.Row(equal_height=True):
                    method = gr.Dropdown(
                        method_choices, value=editor.default_method(), show_label=False, scale=2, min_width=160,
                        elem_id="method",
                    )
                    run = gr.Button("Inpaint", variant="primary", scale=1, min_width=120, elem_id="inpaint")
                with gr.Row():
                    brush = gr.Slider(
                        1, 20, value=editor.BRUSH_PERCENT, step=1, label=BRUSH_LABEL, scale=3, min_width=200,
                        elem_id="brush-size",
                    )
                    with gr.Column(scale=1, min_width=120):
                        clear = gr.Button("Clear strokes", size="sm", elem_id="clear-strokes")
                        another = gr.Button("New photo", size="sm", elem_id="new-photo")
            with gr.Column(scale=1, min_width=340):
                before_after = gr.ImageSlider(
                    label="Before | after (drag the slider)", type="filepath", format="png", slider_position=30,
                    height=EDITOR_HEIGHT, max_height=EDITOR_HEIGHT, elem_id="result",
                )
                summary = gr.Markdown(elem_id="summary")
                with gr.Row():
                    download = gr.DownloadButton("Download PNG", interactive=False, elem_id="download")
                    reuse = gr.Button("Edit this result", interactive=False, elem_id="edit-result")
                gallery = gr.Gallery(
                    label="This session's results: click one to edit it again", columns=editor.HISTORY_LENGTH,
                    height=110, allow_preview=False, interactive=False, fit_columns=False, object_fit="cover",
                    elem_id="history",
                )
        with gr.Accordion("More: compare two methods, upload a mask, see what the method received", open=False):
            with gr.Row():
                with gr.Column(scale=1, min_width=300):
                    compare = gr.Dropdown(compare_choices, value="", label="Compare with", elem_id="compare")
                    checkpoint = gr.Textbox(
                        label="Checkpoint", placeholder="folder written by save_pretrained, or org/name on the Hub",
                        visible=False,
                    )
                    mask_file = gr.Image(
                        label="Mask image (white = hole): replaces the strokes", type="filepath", image_mode=None,
                        sources=["upload"], height=160, elem_id="mask-file",
                    )
                comparison = gr.Image(
                    label="Comparison", type="filepath", format="png", visible=False, scale=1, elem_id="comparison"
                )
                masked = gr.Image(
                    label="Masked input the method received (white = hole)", type="filepath", format="png", scale=1,
                    elem_id="masked",
                )
        gr.Examples(
            [[str(example_image_path()), str(example_mask_path())], [str(example_image_path()), None]],
            inputs=[drop, mask_file], label="Example: NASA portrait (public domain), with or without a mask",
        )

        private = {"api_visibility": "private", "concurrency_limit": CONCURRENCY_LIMIT}
        drop.change(
            open_photo, [drop, mask_file, brush], [drop, painted, mask_file, photo], preprocess=False, **private
        )
        mask_file.upload(apply_mask_file, [photo, mask_file], [painted, mask_file], preprocess=False, **private)
        gr.on([painted.clear, clear.click], clear_strokes, photo, painted, **private)
        brush.change(resize_brush, [photo, brush], painted, **private)
        another.click(new_photo, None, [drop, painted, photo], **private)
        reuse.click(edit_again, [last_result, photo, brush], [painted, photo], **private)
        gallery.select(edit_from_history, [history, photo, brush], [painted, photo], **private)
        method.change(toggle_checkpoint, method, checkpoint, api_visibility="private")
        run.click(
            inpaint_sketch, [photo, painted, method, checkpoint, compare, history],
            [before_after, download, masked, comparison, summary, history, gallery, last_result, reuse],
            concurrency_limit=CONCURRENCY_LIMIT, concurrency_id="inpaint", api_visibility="private",
        )
        demo.load(None, js=SHORTCUTS_JS)
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


def serve(argv: list[str] | None = None) -> None:
    """Run the server until Ctrl-C or SIGTERM (what systemd, Docker and Spaces send): SIGTERM stops it as Ctrl-C
    does (Gradio closes the server), so the exit handlers remove this run's results folder in both cases."""
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    policy = editor.MethodPolicy(tuple(args.allow_model), args.allow_any_model)
    build_app(policy=policy).launch(server_name=args.host, server_port=args.port, share=args.share, max_file_size=MAX_UPLOAD)


if __name__ == "__main__":
    serve()
