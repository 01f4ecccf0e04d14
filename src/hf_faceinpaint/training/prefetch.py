"""Drawing the next step's training masks in worker processes while the current step trains.

On a GPU the per-sample mask drawing (OpenCV strokes, NumPy boxes) in the training process can take longer than the
step itself. The masks are pure functions of (seed, sample index), so worker processes give exactly the masks the
training process would have drawn.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np

from ..data import ignore_interrupts
from ..masks import MaskGenerator


def _draw(mask_generator: MaskGenerator, first: int, count: int) -> np.ndarray:
    return np.stack([mask_generator(first + i) for i in range(count)])  # (count, H, W) bool


class MaskPrefetcher:
    """`draw(first, count)` returns masks `first .. first + count - 1` and starts drawing `next_first ..` ahead.

    Args:
        mask_generator: The run's mask generator.
        workers: Worker processes; 0 draws in the calling process, with no look-ahead.
    """

    def __init__(self, mask_generator: MaskGenerator, workers: int = 0) -> None:
        self.mask_generator = mask_generator
        self.pool = (
            ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"), initializer=ignore_interrupts)
            if workers > 0 else None
        )
        self.workers = workers
        self.pending: dict[tuple[int, int], list[Future]] = {}

    def _submit(self, first: int, count: int) -> list[Future]:
        # one chunk per worker, so a step's masks are drawn in parallel
        chunk = -(-count // self.workers)
        return [self.pool.submit(_draw, self.mask_generator, start, min(chunk, first + count - start))
                for start in range(first, first + count, chunk)]

    def draw(self, first: int, count: int, next_first: int | None = None) -> np.ndarray:
        """Masks (count, H, W) of sample indices first, first + 1, ...; `next_first` is where the next call starts."""
        if self.pool is None:
            return _draw(self.mask_generator, first, count)
        futures = self.pending.pop((first, count), None) or self._submit(first, count)
        if next_first is not None and (next_first, count) not in self.pending:
            self.pending[(next_first, count)] = self._submit(next_first, count)
        return np.concatenate([future.result() for future in futures])

    def close(self) -> None:
        if self.pool is not None:
            self.pool.shutdown(cancel_futures=True)
