"""Eq. 2 (`face/structure.py`): the draft's structure deep inside the hole, the fill kept at its edge, nothing changed
outside the hole, without a draft or where it is not trusted."""

from __future__ import annotations

import pytest
import torch

from hf_faceinpaint.face.base import Draft
from hf_faceinpaint.face.structure import StructureConfig, StructureTransfer


def test_the_edge_is_kept_and_the_draft_taken_deep_inside() -> None:
    fill = torch.zeros(2, 3, 64, 64)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 8:56, 8:56] = 1
    draft = Draft(torch.full((2, 3, 64, 64), 0.5), torch.tensor([1.0, 0.0]))
    stage = StructureTransfer(StructureConfig(sigma=2 / 64, ramp=8 / 64, detail=1.0))
    out = stage(fill, mask, draft)
    assert out[0, :, 30, 30].allclose(torch.full((3,), 0.5), atol=1e-4)  # deep inside: the draft's level
    assert out[0, :, 8, 30].abs().max() < 0.5 / 8 + 1e-6  # next to a known pixel: weight 1/ramp, blurred
    assert out[0, :, :8].abs().max() == 0 and out[0, :, :, 60:].abs().max() == 0  # known pixels untouched
    assert out[1].abs().max() == 0  # no trust: the fill itself
    assert stage(fill, mask, None) is fill  # no draft: nothing to transfer


def test_kappa_damps_the_fills_own_detail_deep_inside() -> None:
    fill = torch.zeros(1, 3, 64, 64)
    fill[..., ::2, :] = 0.4  # stripes: detail finer than σ
    mask = torch.zeros(1, 1, 64, 64)
    mask[..., 8:56, 8:56] = 1
    draft = Draft(torch.full((1, 3, 64, 64), 0.2), torch.ones(1))
    kept = StructureTransfer(StructureConfig(sigma=2 / 64, ramp=4 / 64, detail=1.0))(fill, mask, draft)
    damped = StructureTransfer(StructureConfig(sigma=2 / 64, ramp=4 / 64, detail=0.0))(fill, mask, draft)
    stripes = lambda x: (x[..., 30, 30] - x[..., 31, 30]).abs().max()  # noqa: E731
    assert stripes(damped) < 0.05 < stripes(kept)


@pytest.mark.parametrize("values", [dict(sigma=0.0), dict(ramp=-1.0), dict(detail=1.5)])
def test_bad_settings_are_refused(values: dict) -> None:
    with pytest.raises(ValueError):
        StructureConfig(**values)
