"""Peak memory of the command line's folder mode against single mode: `inpaint --image-dir` on several large photos
must peak no higher than `inpaint IMAGE MASK -o OUT` on one of them (the target: 1.5 GiB for 12000² photos).

    python benchmarks/bench_folder_memory.py [--side 12000] [--count 4] [--model telea]

Writes `--count` photos of `--side`² (a flat background and an ellipse, as the 12000-pixel test in tests/test_cli.py)
with a small rectangular hole each into a temporary folder, then runs each mode once as a subprocess and reports its
peak resident memory (ru_maxrss of the child). Writing the photos takes about 10 s each at 12000² on 2 cores.

Measured (2-core Xeon, 4 × 12000², telea): single 1.30 GiB, folder 1.32 GiB; folder mode before its calls were
bounded by `cli.FOLDER_PIXELS` (all four photos in one call): 2.91 GiB.
"""

from __future__ import annotations

import argparse
import resource
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path

from PIL import Image, ImageDraw


def write_photos(folder: Path, side: int, count: int) -> None:
    """`count` photos and masks named 0..count-1 under folder/images and folder/masks."""
    for sub in ("images", "masks"):
        (folder / sub).mkdir()
    warnings.simplefilter("ignore", Image.DecompressionBombWarning)
    for index in range(count):
        photo, mask = Image.new("RGB", (side, side), (180, 140, 120 + index)), Image.new("L", (side, side), 0)
        ImageDraw.Draw(photo).ellipse((side // 4, side // 4, 3 * side // 4, 3 * side // 4), fill=(200, 160, 140))
        centre = side // 2
        ImageDraw.Draw(mask).rectangle((centre - 200, centre - 200, centre + 200, centre + 100), fill=255)
        photo.save(folder / "images" / f"{index}.png")
        mask.save(folder / "masks" / f"{index}.png")


def peak_gib(arguments: list[str]) -> float:
    """Peak resident memory of `python -m hf_faceinpaint ARGUMENTS` (which must succeed), in GiB."""
    script = ("import resource, subprocess, sys; done = subprocess.run(sys.argv[1:], capture_output=True, text=True); "
              "print(done.stderr[-2000:], file=sys.stderr); "
              "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(done.returncode)")
    command = [sys.executable, "-c", script, sys.executable, "-m", "hf_faceinpaint", "inpaint", *arguments]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"failed: {' '.join(arguments)}\n{done.stderr}")
    return int(done.stdout.splitlines()[-1]) / 2**20  # ru_maxrss is in KiB on Linux


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=12000)
    parser.add_argument("--count", type=int, default=4)
    parser.add_argument("--model", default="telea")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        write_photos(folder, args.side, args.count)
        single = peak_gib([str(folder / "images" / "0.png"), str(folder / "masks" / "0.png"), "-o",
                           str(folder / "single.png"), "--model", args.model])
        batch = peak_gib(["--image-dir", str(folder / "images"), "--mask-dir", str(folder / "masks"), "--out-dir",
                          str(folder / "out"), "--model", args.model])
    print(f"| mode | photos of {args.side}² | model | peak RSS |")
    print("|---|---|---|---|")
    print(f"| single | 1 | {args.model} | {single:.2f} GiB |")
    print(f"| folder | {args.count} | {args.model} | {batch:.2f} GiB |")
    print(f"(this process: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB writing the photos)")


if __name__ == "__main__":
    main()
