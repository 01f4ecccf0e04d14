"""The demo in a real browser: headless Chromium driven by Playwright uploads the example, paints a stroke with the
mouse, presses Inpaint, downloads the result and compares its pixels with the photo.

Needs `/usr/bin/chromium` (Debian: `apt-get install -y chromium`; another Chromium or Chrome binary can be named
in HF_FACEINPAINT_CHROMIUM) and the `playwright` package (its own browser download is not used). Without them the
test is skipped, unless HF_FACEINPAINT_REQUIRE_BROWSER=1 (CI), where it fails. The screenshot goes to
$HF_FACEINPAINT_SCREENSHOT_DIR (default: the test's tmp_path).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hf_faceinpaint.images import example_image_path, load_image

CHROMIUM = Path(os.environ.get("HF_FACEINPAINT_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
    "--no-first-run",
]
TIMEOUT_MS = 90_000  # generous: the CI machine may be busy

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore:.*(no_silent_downcasting|copy keyword).*")]


@pytest.fixture(scope="session")
def sync_playwright() -> Any:
    """Playwright's sync entry point, or skip (fail when HF_FACEINPAINT_REQUIRE_BROWSER=1) if it cannot run here.

    Session-scoped and requested before `app_url`, so a skip happens before the app is served.
    """
    missing = []
    try:
        from playwright.sync_api import sync_playwright as entry_point
    except ImportError:
        entry_point = None
        missing.append("the playwright package (pip install playwright)")
    if not CHROMIUM.is_file():
        missing.append(f"{CHROMIUM} (apt-get install -y chromium)")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("HF_FACEINPAINT_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (HF_FACEINPAINT_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    return entry_point


def _wait_for_photo_on_canvas(page: Any) -> None:
    """Wait until the editor's canvas shows a picture (not a blank canvas), judging by its own screenshot."""
    canvas = page.locator("#editor canvas").first
    canvas.wait_for(state="visible")
    for _ in range(TIMEOUT_MS // 250):
        shot = np.asarray(Image.open(io.BytesIO(canvas.screenshot())).convert("L"), dtype=float)
        if shot.std() > 20:
            return
        page.wait_for_timeout(250)
    pytest.fail("the photo never appeared on the editor's canvas")


def _paint_stroke(page: Any) -> None:
    """Drag the mouse across the chin of the fitted example photo (few moves: a software-rendered canvas is slow)."""
    box = page.locator("#editor canvas").first.bounding_box()
    x, y = box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.33
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + box["width"] * 0.12, y + box["height"] * 0.04, steps=6)
    page.mouse.up()


def _image_from(page: Any, selector: str) -> np.ndarray:
    """The RGB pixels of the image an <img> on the page shows, fetched from the app."""
    source = page.locator(f"{selector} img").first.get_attribute("src")
    response = page.request.get(source)
    assert response.ok, source
    return np.asarray(Image.open(io.BytesIO(response.body())).convert("RGB"))


def test_paint_inpaint_download_in_chromium(sync_playwright: Any, app_url: str, tmp_path: Path) -> None:
    shots = Path(os.environ.get("HF_FACEINPAINT_SCREENSHOT_DIR") or tmp_path)
    shots.mkdir(parents=True, exist_ok=True)
    original = np.asarray(load_image(example_image_path()))
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
            page.set_default_timeout(TIMEOUT_MS)
            page.goto(app_url)
            page.locator("#photo input[type=file]").set_input_files(str(example_image_path()))
            _wait_for_photo_on_canvas(page)
            _paint_stroke(page)
            page.click("#inpaint")
            page.locator("#summary").get_by_text("hole").wait_for()
            page.locator("#result img").first.wait_for(state="visible")
            with page.expect_download() as download_info:
                page.click("#download")
            download = download_info.value
            assert download.suggested_filename == "astronaut-msl-face.png"  # the shipped default model
            result = np.asarray(Image.open(download.path()).convert("RGB"))
            page.locator("button", has_text="Masked input").click()
            masked = _image_from(page, "#masked")
            page.screenshot(path=str(shots / "app_after_inpaint.png"), full_page=True)
        finally:
            browser.close()
    assert result.shape == original.shape
    stroke = (masked != original).any(axis=2)  # hole pixels the method received blanked (white)
    assert 0.002 < stroke.mean() < 0.2, stroke.mean()
    rows, cols = np.nonzero(stroke)
    assert 100 < rows.mean() < 412 and 100 < cols.mean() < 412  # painted near the middle of the photo
    assert np.abs(result[stroke].astype(int) - original[stroke]).mean() > 1.0  # filled inside the stroke
    untouched = ~stroke & ~(original == 255).all(axis=2)  # white pixels cannot show in the blanked preview
    np.testing.assert_array_equal(result[untouched], original[untouched])
