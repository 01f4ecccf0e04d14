"""OpenCV's classic inpainting (Telea 2004, Navier-Stokes / Bertalmio 2001) behind the project's interface.

These are the baselines every comparison in the project runs against. They work on the full-resolution photo.
"""

from __future__ import annotations

import cv2
import numpy as np

CLASSIC_METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}
CLASSIC_LABELS = {"telea": "OpenCV Telea (classic baseline)", "ns": "OpenCV Navier-Stokes (classic baseline)"}


class ClassicInpainter:
    """`cv2.inpaint` with a fixed method and radius.

    Args:
        method: "telea" or "ns".
        radius: Neighbourhood radius in pixels that the algorithm considers around each hole pixel.
    """

    def __init__(self, method: str = "telea", radius: int = 3) -> None:
        if method not in CLASSIC_METHODS:
            raise ValueError(f"unknown classic method {method!r}; expected one of {sorted(CLASSIC_METHODS)}")
        self.method, self.radius = method, radius

    @property
    def name(self) -> str:
        return self.method

    def __repr__(self) -> str:
        return f"ClassicInpainter(method={self.method!r}, radius={self.radius})"

    def __call__(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """image: (H, W, 3) uint8 RGB; mask: (H, W) bool or {0, 1}, True = hole. Returns (H, W, 3) uint8."""
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        hole = (np.asarray(mask) > 0).astype(np.uint8) * 255
        if hole.shape != image.shape[:2]:
            raise ValueError(f"mask shape {hole.shape} does not match image {image.shape[:2]}")
        # OpenCV works in BGR; inpainting treats channels independently but we keep the convention explicit.
        out = cv2.inpaint(np.ascontiguousarray(image[..., ::-1]), hole, self.radius, CLASSIC_METHODS[self.method])
        return np.ascontiguousarray(out[..., ::-1])
