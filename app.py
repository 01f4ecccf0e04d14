"""Gradio demo of hf-faceinpaint: paint over part of a face photo and get it filled.

Run `python app.py` (127.0.0.1:7860; --host / --port / --share; --allow-model PATH_OR_ID, repeatable, or
--allow-any-model to let requests load other checkpoints), or use this file as a Hugging Face Space's
`app_file` (see space/README.md); Ctrl-C and SIGTERM both stop it and remove its results. This file holds the UI
only; the logic is in `hf_faceinpaint.editor`, the painting canvas's script and the page's CSS in
`hf_faceinpaint/assets` (painter.js, app.css). User documentation: docs/app.md.

The painting canvas is the page's own (a `gr.HTML` with a script), not `gr.ImageEditor`: Gradio's page reads an
image editor's value (encoding and uploading its layers as PNGs) before every update of its props or progress,
and applies those updates in the order the reads finish, so a stale "processing" overlay could land after the
request had ended and block the editor (issue 49). The canvas here sends nothing while painting; the Inpaint
click sends its strokes once, as one PNG layer, and the photo is already on the server.

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
from importlib import resources
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

ASSETS = resources.files("hf_faceinpaint") / "assets"
# What every launch of the page passes to `demo.launch` (server, tests, benchmarks).
LAUNCH_OPTIONS = {"max_file_size": MAX_UPLOAD, "css": (ASSETS / "app.css").read_text(encoding="utf-8")}

INTRO = """
# Face inpainting
Drop, paste or pick a face photo, paint over what should go, press **Inpaint**. Pixels outside the strokes stay
exactly as they were.
"""

DROP_LABEL = f"Photo: drop, paste or click to upload (JPEG, PNG or WebP; over {editor.MAX_SIDE} px it is downscaled)"
EDITOR_HEIGHT = 520

# The painting canvas (its script: assets/painter.js): tools above the photo, never over it.
PAINTER_HTML = f"""
<div class="painter" data-state="empty" data-hole="{','.join(map(str, editor.HOLE_RGBA[:3]))}"
     style="--editor-height: {EDITOR_HEIGHT}px">
  <div class="tools" role="toolbar" aria-label="Painting tools">
    <button type="button" data-tool="brush" aria-pressed="true">Brush</button>
    <button type="button" data-tool="eraser" aria-pressed="false">Eraser</button>
    <button type="button" data-action="undo" aria-label="Undo" title="Undo (Ctrl+Z)" disabled>↶ Undo</button>
    <button type="button" data-action="redo" aria-label="Redo" title="Redo (Ctrl+Shift+Z)" disabled>↷ Redo</button>
    <button type="button" data-action="clear" id="clear-strokes">Clear strokes</button>
    <label class="brush-size" title="[ / ] keys">Size
      <input id="brush-size" type="range" min="1" max="20" step="1" value="{editor.BRUSH_PERCENT:g}"
             aria-label="Brush size, % of the photo's shorter side">
      <output>{editor.BRUSH_PERCENT:g} %</output>
    </label>
  </div>
  <div class="stage">
    <img class="photo" alt="The photo">
    <canvas class="strokes" width="1" height="1" aria-label="Paint over what to fill"></canvas>
    <div class="ring" hidden></div>
  </div>
  <p class="hint">Paint over what to fill. Brush size: [ / ] keys (% of the photo's shorter side); undo / redo:
    Ctrl+Z / Ctrl+Shift+Z.</p>
</div>
"""

# Inpaint pressed: mark the button busy at once, and send the strokes layer (a PNG) in place of the canvas's value.
INPAINT_JS = """
(photo, painted, ...rest) => {
  document.querySelector("#inpaint")?.setAttribute("data-busy", "");
  const layer = document.querySelector("#editor .painter[data-state=ready] canvas.strokes");
  return [photo, layer ? layer.toDataURL("image/png") : "", ...rest];
}
"""
# The answer arrived: the button is free again; a result is brought into view (on a phone it is below the canvas).
IDLE_JS = """() => { document.querySelector("#inpaint")?.removeAttribute("data-busy"); }"""
SHOW_RESULT_JS = """() => {
  document.querySelector("#inpaint")?.removeAttribute("data-busy");
  document.querySelector("#result")?.scrollIntoView({ block: "nearest", behavior: "smooth" });
}"""


def _notify(notices: list[str] | tuple[str, ...]) -> None:
    """Show each notice as a Gradio warning toast."""
    for notice in notices:
        gr.Warning(notice)


def _upload_path(value: str | dict[str, Any] | None) -> str | None:
    """The server path of an image input, given as a path or (events without preprocessing) as its file data."""
    return value.get("path") if isinstance(value, dict) else value


def _show(photo: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
    """The painting canvas's update that shows a scene (`editor.scene`); records its size in the session's photo."""
    photo["canvas"] = (view["width"], view["height"])
    return gr.update(visible=True, scene=view)


def no_result() -> tuple[Any, ...]:
    """Updates that empty the result panel: slider, download, masked input, comparison, summary, the result that
    "Edit this result" opens, and that button."""
    return (
        None, gr.update(value=None, interactive=False), None, gr.update(value=None, visible=False), "", None,
        gr.update(interactive=False),
    )


def open_photo(upload: str | dict[str, Any] | None, mask_file: str | dict[str, Any] | None) -> tuple[Any, ...]:
    """Check a newly chosen photo and open it (with the mask file as strokes) on the painting canvas, in place of the
    drop zone; the previous photo's result goes. Runs without Gradio's preprocessing, so a file that is not an image
    reaches the check (and its message). Returns updates for the drop zone, the canvas, the mask slot and the
    session's photo, then `no_result()`.
    """
    path = _upload_path(upload)
    if path is None:  # the drop zone was cleared (by "New photo")
        return (gr.skip(),) * (4 + len(no_result()))
    try:
        view, notices = editor.scene(path, _upload_path(mask_file))
    except editor.InputError as err:
        gr.Warning(str(err))
        return (gr.update(value=None), gr.update(visible=False, scene=None), gr.skip(), None, *no_result())
    _notify(notices)
    photo = {"path": path, "name": Path(path).stem}
    mask_update = gr.update(value=None) if notices and "mask file" in notices[-1] else gr.skip()
    return (gr.update(visible=False), _show(photo, view), mask_update, photo, *no_result())


def apply_mask_file(photo: dict[str, Any] | None, mask_file: str | dict[str, Any] | None) -> tuple[Any, Any]:
    """Draw an uploaded mask file onto the canvas as its strokes; a mask that does not fit is refused and its slot
    emptied. Returns updates for the canvas and the mask slot."""
    path = _upload_path(mask_file)
    if photo is None or path is None:
        if photo is None:
            gr.Warning("Open a photo first; then upload its mask.")
        return gr.skip(), gr.update(value=None)
    view, notices = editor.scene(photo["path"], path)
    _notify(notices)
    if notices and "mask file" in notices[-1]:
        return gr.skip(), gr.update(value=None)
    return _show(photo, view), gr.skip()


def new_photo() -> tuple[Any, ...]:
    """Back to an empty drop zone: updates for the drop zone, the canvas and the session's photo, then
    `no_result()` (the session's history stays)."""
    return (gr.update(value=None, visible=True), gr.update(visible=False, scene=None), None, *no_result())


def edit_again(path: str | None, photo: dict[str, Any] | None) -> tuple[Any, Any]:
    """Open a result (of this session) on the canvas as the new photo, keeping the original's file name.

    Returns updates for the canvas and the session's photo.
    """
    if not path or not Path(path).is_file():
        gr.Warning("That result is no longer on the server (results are kept for an hour); inpaint again.")
        return gr.skip(), gr.skip()
    view, _ = editor.scene(path, None)
    again = {"path": path, "name": (photo or {}).get("name") or Path(path).stem}
    return _show(again, view), again


def edit_from_history(
    history: list[tuple[str, str]], photo: dict[str, Any] | None, event: gr.SelectData
) -> tuple[Any, Any]:
    """Open the history entry the user clicked on the canvas (see `edit_again`)."""
    return edit_again(history[event.index][0] if event.index < len(history) else None, photo)


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
        strokes: str | None,
        method: str,
        checkpoint: str,
        compare: str,
        history: list[tuple[str, str]],
        progress: gr.Progress = gr.Progress(),  # noqa: B008 (Gradio's way to ask for a progress tracker)
    ) -> tuple[Any, ...]:
        """Inpaint the strokes (the canvas's strokes layer, a PNG data URL, which the page sends in place of the
        canvas's value). Returns the slider, download, masked input, comparison, summary, the session's history
        (state and gallery), the result that "Edit this result" opens and that button. A downscaled photo's notice
        was shown when it opened, and is not repeated."""
        sweep_empty_uploads(Path(gr.utils.get_upload_folder()))
        try:
            job = editor.job_from_sketch(
                photo and photo["path"], strokes, photo and photo.get("canvas"), photo and photo["name"]
            )
            specs = editor.resolve_methods(method, checkpoint, compare, policy)
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
        history = editor.with_result(history, result, editor.history_caption(job.name, specs[0]))
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


def painting_canvas() -> gr.HTML:
    """The painting canvas (`PAINTER_HTML`, assets/painter.js): the photo the server sent as its `scene`, strokes
    painted over it in the browser; hidden until a photo is open."""
    return gr.HTML(
        "", html_template=PAINTER_HTML, js_on_load=(ASSETS / "painter.js").read_text(encoding="utf-8"),
        apply_default_css=False, visible=False, elem_id="editor", scene=None,
    )


def build_app(out_root: Path | None = None, policy: editor.MethodPolicy = editor.OWN_METHODS) -> gr.Blocks:
    """Build the demo; the default method is loaded here, once (`load_model` keeps it for all requests). Launch it
    with `LAUNCH_OPTIONS`.

    Layout: the drop zone, then in its place the painting canvas, with the method and Inpaint right under it, and
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
        history = gr.State([])  # this session's results, newest first: [(path, caption)]
        last_result = gr.State(None)
        with gr.Row():
            with gr.Column(scale=1, min_width=340):
                drop = gr.Image(
                    label=DROP_LABEL, type="filepath", image_mode=None, sources=["upload", "clipboard"],
                    height=EDITOR_HEIGHT, elem_id="photo",
                )
                painted = painting_canvas()
                with gr.Row(equal_height=True):
                    method = gr.Dropdown(
                        method_choices, value=editor.default_method(), show_label=False, scale=2, min_width=160,
                        elem_id="method",
                    )
                    run = gr.Button("Inpaint", variant="primary", scale=1, min_width=120, elem_id="inpaint")
                another = gr.Button("New photo", size="sm", elem_id="new-photo")
            with gr.Column(scale=1, min_width=340):
                with gr.Row(equal_height=True):
                    before_after = gr.ImageSlider(
                        label="Before | after (drag the slider)", type="filepath", format="png", slider_position=30,
                        height=EDITOR_HEIGHT, max_height=EDITOR_HEIGHT, elem_id="result",
                    )
                    comparison = gr.Image(
                        label="Comparison", type="filepath", format="png", visible=False, height=EDITOR_HEIGHT,
                        elem_id="comparison",
                    )
                summary = gr.Markdown(elem_id="summary")
                with gr.Row():
                    download = gr.DownloadButton("Download PNG", interactive=False, elem_id="download")
                    reuse = gr.Button("Edit this result", interactive=False, elem_id="edit-result")
                gr.Markdown("This session's results: click one to edit it again.", elem_id="history-label")
                gallery = gr.Gallery(
                    show_label=False, columns=5, height=140, allow_preview=False, interactive=False, fit_columns=False,
                    object_fit="cover", elem_id="history",
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
                masked = gr.Image(
                    label="Masked input the method received (white = hole)", type="filepath", format="png", scale=1,
                    elem_id="masked",
                )
        gr.Examples(
            [[str(example_image_path()), str(example_mask_path())], [str(example_image_path()), None]],
            inputs=[drop, mask_file], label="Example: NASA portrait (public domain)",
            example_labels=["Astronaut, with a mask", "Astronaut, no mask"], elem_id="examples",
        )

        result = [before_after, download, masked, comparison, summary, last_result, reuse]  # what `no_result` empties
        private = {"api_visibility": "private", "concurrency_limit": CONCURRENCY_LIMIT}
        drop.change(
            open_photo, [drop, mask_file], [drop, painted, mask_file, photo, *result], preprocess=False, **private
        )
        mask_file.upload(apply_mask_file, [photo, mask_file], [painted, mask_file], preprocess=False, **private)
        another.click(new_photo, None, [drop, painted, photo, *result], **private)
        reuse.click(edit_again, [last_result, photo], [painted, photo], **private)
        gallery.select(edit_from_history, [history, photo], [painted, photo], **private)
        method.change(toggle_checkpoint, method, checkpoint, api_visibility="private")
        inpainted = run.click(
            inpaint_sketch, [photo, painted, method, checkpoint, compare, history],
            [before_after, download, masked, comparison, summary, history, gallery, last_result, reuse],
            js=INPAINT_JS, concurrency_limit=CONCURRENCY_LIMIT, concurrency_id="inpaint", api_visibility="private",
        )
        inpainted.success(None, js=SHOW_RESULT_JS)
        inpainted.failure(None, js=IDLE_JS)  # (Gradio 6 runs no `.then` step after an error)
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
    build_app(policy=policy).launch(server_name=args.host, server_port=args.port, share=args.share, **LAUNCH_OPTIONS)


if __name__ == "__main__":
    serve()
