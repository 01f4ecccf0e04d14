"""Writing an evaluation's files: results.json, results.md, one plot per metric, the example grid, a model card.

Every file is first written to a temporary name in its destination folder; only when all of them exist are they
renamed into place, so a failure leaves no partial outputs (and no temporary files).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path

from ..io import atomic_path
from .figures import example_grid, metric_plot
from .report import model_card_section, read_card, results_markdown, updated_card_text
from .runner import Evaluation

RESULTS_JSON = "results.json"
RESULTS_MD = "results.md"
EXAMPLES_PNG = "examples.png"


def plot_name(key: str) -> str:
    """File name of a metric's plot, e.g. "plot_psnr.png".

    Args:
        key: Metric key.
    """
    return f"plot_{key}.png"


def _text_writer(text: str) -> Callable[[Path], None]:
    """A writer of UTF-8 text to a path."""
    return lambda path: path.write_text(text, encoding="utf-8")


def write_outputs(evaluation: Evaluation, out_dir: str | os.PathLike, model_card: str | os.PathLike | None = None) -> list[Path]:
    """Write all outputs atomically.

    Args:
        evaluation: The result of `evaluate`.
        out_dir: Output folder (created when missing).
        model_card: Optional model card to put the results table into (see `report.updated_card_text`).

    Returns:
        The written files, in order: results.json, results.md, the plots, examples.png, the model card.

    Raises:
        ValueError: The model card path is unusable or its markers are broken (checked before anything is written).
        OSError: A file cannot be written (nothing is left behind).
    """
    report = evaluation.report
    out = Path(out_dir)
    files: dict[Path, Callable[[Path], None]] = {
        out / RESULTS_JSON: _text_writer(json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False) + "\n"),
        out / RESULTS_MD: _text_writer(results_markdown(report)),
    }
    for info in report["metrics"]:
        files[out / plot_name(info["key"])] = lambda path, key=info["key"]: metric_plot(report, key, path)
    if evaluation.examples:
        files[out / EXAMPLES_PNG] = lambda path: example_grid(evaluation.examples, path)
    if model_card is not None:
        card = updated_card_text(read_card(model_card), model_card_section(report))
        files[Path(model_card)] = _text_writer(card)

    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    try:
        # every file is written under a temporary name; all are renamed into place only when all were written
        with contextlib.ExitStack() as stack:
            for path, write in files.items():
                write(stack.enter_context(atomic_path(path)))
    except BaseException:
        if created and not any(out.iterdir()):
            out.rmdir()
        raise
    return list(files)
