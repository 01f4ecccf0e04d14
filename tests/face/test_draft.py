"""The gappy-PCA face draft (`face/draft.py`): its trust from the PCA's residual, the refiner's correction (and its
skip where no frame is trusted), float32 faces from a bf16 refiner, its config's checks and the Hub round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_faceinpaint.face.draft import GappyPCADraft, GappyPCADraftConfig


def test_the_trust_falls_with_the_residual_and_the_refiner_corrects_the_pcas_face(make_draft, masks) -> None:
    refined, plain = make_draft(refiner_width=8), make_draft()
    image, mask = torch.rand(2, 3, 32, 32) * 2 - 1, masks(2, 32)
    guess, cells, share, residual = refined.pca(image, mask)
    with torch.no_grad():
        expected_trust = ((0.3 - residual) / 0.05).clamp(0, 1)
        refined.config.residual_full, refined.config.residual_none = 0.0, residual.max().item() + 1
        plain.config.residual_full, plain.config.residual_none = 0.0, residual.max().item() + 1
        draft = refined(image, mask)
        expected = F.interpolate(refined.refiner(cells, share, guess), size=32, mode="bicubic").clamp(-1, 1)
        torch.testing.assert_close(draft.face, expected)
        torch.testing.assert_close(draft.trust, plain(image, mask).trust)  # the trust comes from the PCA alone
        # no frame trusted: the refiner is skipped, the face is the PCA's
        refined.config.residual_full, refined.config.residual_none = 0.0, residual.min().item() / 2
        untrusted = refined(image, mask)
        assert not untrusted.trust.any()
        torch.testing.assert_close(untrusted.face, plain(image, mask).face)
    torch.testing.assert_close(make_draft()(image, mask).trust, expected_trust)


def test_a_bf16_refiner_still_gives_a_float32_face(make_draft, masks) -> None:
    draft = make_draft(refiner_width=8, refiner_fine=True, residual_none=10.0).to(torch.bfloat16)
    with torch.no_grad():
        assert draft(torch.rand(1, 3, 32, 32) * 2 - 1, masks(1, 32)).face.dtype == torch.float32


@pytest.mark.parametrize(("values", "match"), [
    (dict(refiner_width=0, refiner_fine=True), "refiner_fine needs a refiner"),
    (dict(size=12), "multiple of 8"),
    (dict(residual_full=0.4), "residual_full < residual_none"),
])
def test_bad_draft_settings_are_refused(values: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        GappyPCADraftConfig(**values)


def test_a_draft_is_a_hub_component_of_its_own(make_draft, masks, tmp_path) -> None:
    draft = make_draft(refiner_width=8, refiner_fine=True, residual_none=10.0)
    torch.nn.init.normal_(draft.refiner.fine_head.weight, std=0.1)  # a fine level that draws something
    draft.save_pretrained(tmp_path)
    loaded = GappyPCADraft.from_pretrained(tmp_path)
    assert loaded.config == draft.config
    image, mask = torch.rand(1, 3, 32, 32) * 2 - 1, masks(1, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(image, mask).face, draft(image, mask).face)
