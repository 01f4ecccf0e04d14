"""The demo as a user times it: headless Chromium opens a photo in `app.py`, paints one stroke and presses Inpaint.

    python benchmarks/bench_app.py [--sides 512,1024,2048] [--repeats 3] [--busy] [--viewport 390x844]

For each photo side (the bundled example upscaled, saved as JPEG), a fresh page: upload into the drop zone, wait for
the photo on the canvas ("open"), drag one stroke over the face, press Inpaint and wait until the result is shown
("click -> result"; "progress" is the time until the Inpaint button shows that it is busy). Of click -> result,
"request" is the server's whole request (method, PNGs: the summary's figure) and "inpaint()" the model call alone
(timed inside the served process). The rest is the browser: reading and sending the strokes layer, the queue,
fetching and showing the result. Medians over `--repeats`.

`--busy` runs a second job beside it (one process spinning on a CPU), as on a shared machine; `--viewport` sets the
page's size (default 1280x900; 390x844 is a phone, where the result also has to scroll into view).

Needs /usr/bin/chromium (or $HF_FACEINPAINT_CHROMIUM) and playwright, as the browser test. Otherwise run it on an
idle machine: the browser draws the page on the same CPUs.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


def one_request(page: Any, url: str, photo: Path) -> tuple[float, float, float, float]:
    """Seconds to open the photo, from the Inpaint click to the busy button and to the result shown (in view), and
    the summary's seconds."""
    page.goto(url)
    start = time.perf_counter()
    page.locator("#photo input[type=file]").set_input_files(str(photo))
    page.locator("#editor .painter[data-state=ready]").wait_for()
    opened = time.perf_counter() - start
    box = page.locator("#editor canvas").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.35
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + box["width"] * 0.12, y + box["height"] * 0.03, steps=6)
    page.mouse.up()
    page.wait_for_timeout(300)
    start = time.perf_counter()
    page.click("#inpaint", no_wait_after=True)
    page.locator("#inpaint[data-busy]").wait_for()
    progress = time.perf_counter() - start
    page.locator("#summary").get_by_text("hole").wait_for()
    page.locator("#result img").first.wait_for(state="visible")
    page.wait_for_function(
        """() => [...document.querySelectorAll('#result img')].every(img => img.complete)
                 && document.querySelector('#result').getBoundingClientRect().bottom <= window.innerHeight + 1"""
    )
    shown = time.perf_counter() - start
    request = float(re.findall(r"([0-9.]+) s$", page.locator("#summary").inner_text().strip())[-1])
    return opened, progress, shown, request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sides", default="512,1024,2048", help="photo sides, comma-separated")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--busy", action="store_true", help="a process spinning on one CPU beside the page")
    parser.add_argument("--viewport", default="1280x900", help="the page's WIDTHxHEIGHT")
    args = parser.parse_args()
    width, height = (int(side) for side in args.viewport.split("x"))
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
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, **app.LAUNCH_OPTIONS)
    example = Image.open(example_image_path()).convert("RGB")
    rows = []
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.busy else None
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_page(viewport={"width": width, "height": height})
            page.set_default_timeout(120_000)
            for side in [int(s) for s in args.sides.split(",")]:
                photo = work / f"face-{side}.jpg"
                example.resize((side, side), Image.Resampling.LANCZOS).save(photo, quality=92)
                runs = []
                for _ in range(args.repeats):
                    model_seconds.clear()
                    runs.append((*one_request(page, url, photo), sum(model_seconds)))
                rows.append((side, *(statistics.median(column) for column in zip(*runs, strict=True))))
            browser.close()
    finally:
        demo.close()
        if spinner is not None:
            spinner.kill()

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"
          f"{', a busy loop beside' if args.busy else ''}; page {args.viewport}; method: {editor.default_method()}; "
          f"canvas at most {editor.EDITOR_MAX_SIDE} px; medians of {args.repeats}")
    print("| photo | open (upload -> canvas) | click -> progress | click -> result | request (server) | inpaint() "
          "| browser + queue |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for side, opened, progress, shown, request, model in rows:
        print(f"| {side}² | {opened:.2f} s | {progress:.2f} s | {shown:.2f} s | {request:.2f} s | {model:.2f} s "
              f"| {shown - request:.2f} s |")


if __name__ == "__main__":
    main()
