"""io.py: writes through a temporary sibling that is renamed into place, and the temporary files left by a killed
process are removed by the next write to the same destination."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from hf_faceinpaint.io import STALE_TEMP_S, atomic_path, write_text_atomic


def test_a_write_lands_whole_or_not_at_all(tmp_path: Path) -> None:
    write_text_atomic(tmp_path / "sub" / "a.txt", "first")
    with pytest.raises(RuntimeError), atomic_path(tmp_path / "sub" / "a.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")
    assert (tmp_path / "sub" / "a.txt").read_text() == "first"
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["a.txt"]


def test_stale_temporary_files_of_ours_are_removed_by_the_next_write(tmp_path: Path) -> None:
    old = time.time() - STALE_TEMP_S - 60
    stale_file, stale_dir = tmp_path / ".out.png.tmp-123-abcd", tmp_path / ".out.png.tmp-124-beef"
    in_progress, other = tmp_path / ".out.png.tmp-125-cafe", tmp_path / ".notes.tmp-1-aaaa"
    stale_dir.mkdir()
    (stale_dir / "part").write_text("x")
    for path in (stale_file, in_progress, other):
        path.write_text("x")
    for path in (stale_file, stale_dir, other):
        os.utime(path, (old, old))
    write_text_atomic(tmp_path / "out.png", "done")
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == [".notes.tmp-1-aaaa", ".out.png.tmp-125-cafe", "out.png"]  # another write's and others' stay
