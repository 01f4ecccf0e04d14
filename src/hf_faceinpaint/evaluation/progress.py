"""The evaluation's tqdm progress bars (shown on a terminal by default, hidden in logs and pipes)."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm


def progress_bar(*args: Any, enabled: bool | None = None, **kwargs: Any) -> tqdm:
    """A tqdm bar.

    Args:
        *args: Passed to tqdm (e.g. the iterable).
        enabled: True to always show it, False never, None only when stderr is a terminal (tqdm's `disable=None`).
        **kwargs: Passed to tqdm (desc, total, unit, ...).
    """
    return tqdm(*args, disable=None if enabled is None else not enabled, **kwargs)
