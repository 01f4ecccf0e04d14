"""Bad inputs to `hf-faceinpaint evaluate`: exit status 2, one "error:" line, and no output folder."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hf_faceinpaint.cli import main

PROBLEMS = {
    "empty image folder": "no image files",
    "corrupt image": "face_3.png",
    "empty mask folder": "no mask files",
    "no mask in bucket": "no mask in",
    "unknown method": "unknown method 'no-such-method'",
    "method twice": "listed twice",
    "bad bucket": "bad bucket '10-x'",
    "buckets with squares": "--buckets does not apply",
    "no mask folder": "needs --masks",
    "zero limit": "--limit must be at least 1",
    "missing images": "not found",
    "broken model card": "markers are broken",
}


@pytest.mark.parametrize("problem", list(PROBLEMS))
def test_bad_input_exits_2_without_outputs(
    tmp_path: Path, image_folder: Path, mask_folder: Path, one_error_line: Callable[..., None], problem: str
) -> None:
    flags = {"--images": str(image_folder), "--masks": str(mask_folder), "--methods": "telea",
             "--buckets": "10-20,20-30", "--resolution": "32", "--out": str(tmp_path / "out"), "--no-fid": None,
             "--no-lpips": None}
    if problem == "empty image folder":
        (tmp_path / "empty").mkdir()
        flags["--images"] = str(tmp_path / "empty")
    elif problem == "corrupt image":
        (image_folder / "face_3.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    elif problem == "empty mask folder":
        (tmp_path / "no_masks").mkdir()
        flags["--masks"] = str(tmp_path / "no_masks")
    elif problem == "no mask in bucket":
        flags["--buckets"] = "10-20,60-70"
    elif problem == "unknown method":
        flags["--methods"] = "telea,no-such-method"
    elif problem == "method twice":
        flags["--methods"] = "telea,ns,telea"
    elif problem == "bad bucket":
        flags["--buckets"] = "10-x"
    elif problem == "buckets with squares":
        flags["--mask-mode"] = "square"
        del flags["--masks"]
    elif problem == "no mask folder":
        del flags["--masks"]
    elif problem == "zero limit":
        flags["--limit"] = "0"
    elif problem == "missing images":
        flags["--images"] = str(tmp_path / "nowhere")
    else:
        (tmp_path / "README.md").write_text("# card\n<!-- evaluation:end -->\n")
        flags["--write-model-card"] = str(tmp_path / "README.md")
    argv = ["evaluate"] + [item for flag, value in flags.items() for item in ([flag] if value is None else [flag, value])]
    one_error_line(main(argv), PROBLEMS[problem])
    assert not (tmp_path / "out").exists()
