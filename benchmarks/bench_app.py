"""The demo as a user times it: headless Chromium opens a photo in `app.py`, paints one stroke and presses Inpaint.

    python benchmarks/bench_app.py [--sides 512,1024,2048] [--repeats 3]

For each photo side (the bundled example upscaled, saved as JPEG), a fresh page: upload into the drop zone, wait for
the photo on the canvas ("open"), drag one stroke over the face, press Inpaint and wait until the result is shown
("click -> result"). Of that, "request" is the server's whole request (method, PNGs: the summary's figure) and
"inpaint()" the model call alone (timed inside the served process). The rest is the browser: encoding and sending
the editor's layers, the queue, showing the result. Medians over `--repeats`.

Needs /usr/bin/chromium (or $HF_FACEINPAINT_CHROMIUM) and playwright, as the browser test. Run it on an otherwise
idle machine: the browser renders the canvas in software on the same CPUs.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import os
import platform
import re
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hf_faceinpaint import editor
from hf_faceinpaint.images import example_image_path

APP = Path(__file__).resolve().parents[1] / "app.py"
CHROMIUM = os.environ.get("HF_FACEINPAINT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def timed(function: Callable[..., Any], log: list[float]) -> Callable[..., Any]:
    """`function`, appending each call's seconds to `log`."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            log.append(time.perf_counter() - start)

    return wrapper


def one_request(page: Any, url: str, photo: Path) -> tuple[float, float, float]:
    """Seconds to open the photo, seconds from the Inpaint click to the result shown, and the summary's seconds."""
    page.goto(url)
    start = time.perf_counter()
    page.locator("#photo input[type=file]").set_input_files(str(photo))
    canvas = page.locator("#editor canvas").first
    canvas.wait_for(state="visible")
    while np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"), dtype=float).std() < 20:
        page.wait_for_timeout(50)
    opened = time.perf_counter() - start
    box = canvas.bounding_box()
    x, y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.35
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + box["width"] * 0.12, y + box["height"] * 0.03, steps=6)
    page.mouse.up()
    page.wait_for_timeout(300)
    start = time.perf_counter()
    page.click("#inpaint")
    page.locator("#summary").get_by_text("hole").wait_for()
    page.locator("#result img").first.wait_for(state="visible")
    page.wait_for_function("() => [...document.querySelectorAll('#result img')].every(img => img.complete)")
    shown = time.perf_counter() - start
    request = float(re.findall(r"([0-9.]+) s$", page.locator("#summary").inner_text().strip())[-1])
    return opened, shown, request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="512,1024,2048", help="photo sides, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    spec = importlib.util.spec_from_file_location("app", APP)
    assert spec is not None and spec.loader is not None
    app = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app)
    model_seconds: list[float] = []
    editor.inpaint = timed(editor.inpaint, model_seconds)  # the served process's model calls
    work = Path(tempfile.mkdtemp(prefix="bench-app-"))
    demo = app.build_app(out_root=work / "out")
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, max_file_size=app.MAX_UPLOAD)
    example = Image.open(example_image_path()).convert("RGB")
    rows = []
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(120_000)
            for side in [int(s) for s in args.sides.split(",")]:
                photo = work / f"face-{side}.jpg"
                example.resize((side, side), Image.Resampling.LANCZOS).save(photo, quality=92)
                runs = []
                for _ in range(args.repeats):
                    model_seconds.clear()
                    runs.append((*one_request(page, url, photo), sum(model_seconds)))
                opened, shown, request, model = (statistics.median(column) for column in zip(*runs, strict=True))
                rows.append((side, opened, shown, request, model))
            browser.close()
    finally:
        demo.close()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs; method: "
          f"{editor.default_method()}; editor canvas at most {editor.EDITOR_MAX_SIDE} px; medians of {args.repeats}")
    print("| photo | open (upload -> canvas) | click -> result | request (server) | inpaint() | browser + queue |")
    print("|---:|---:|---:|---:|---:|---:|")
    for side, opened, shown, request, model in rows:
        print(f"| {side}² | {opened:.2f} s | {shown:.2f} s | {request:.2f} s | {model:.2f} s | {shown - request:.2f} s |")


if __name__ == "__main__":
    main()
