"""The gappy PCA (`face/prior.py`): the fit of eq. 1 against a dense reference solve, its residual, the basis's int8
storage (older float checkpoints included), PCA files, and the refiner's fine level."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hf_faceinpaint.face.filters import known_cells
from hf_faceinpaint.face.prior import GappyPCA, PriorRefiner, fit_pca, load_fit_file, quantize_basis, save_fit
from hf_faceinpaint.hub import CheckpointError


def test_the_fit_solves_eq_1_like_a_dense_reference(make_pca, masks) -> None:
    pca = make_pca()
    image = torch.rand(2, 3, 32, 32) * 2 - 1  # frames twice the grid: area-resampled to it
    mask = masks(2, 32)
    coefficients, _, weights = pca.coefficients(image, 1 - mask)
    # eq. 1 as written: (B W Bᵀ + λ V⁻¹) c = B W (x − μ), in float64, with every pixel's row
    share = weights.repeat(1, 3, 1, 1).flatten(1).double()  # (B, N)
    cells = F.adaptive_avg_pool2d(image * (1 - mask), (16, 16)) / weights.clamp_min(1e-6)
    basis = pca.basis.double()
    normal = (basis * share[:, None, :]) @ basis.T + torch.diag(pca.ridge / pca.variance.double())
    rhs = ((cells.flatten(1).double() - pca.mean.double()) * share) @ basis.T
    expected = torch.linalg.solve(normal, rhs[..., None])[..., 0]
    torch.testing.assert_close(coefficients.double(), expected, rtol=1e-4, atol=1e-4)


def test_a_face_of_the_pca_comes_back_from_its_known_pixels_with_a_small_residual(make_pca, masks) -> None:
    pca = make_pca(ridge=1e-4)
    face = (pca.mean + torch.randn(1, 12) * pca.variance.sqrt() @ pca.basis).view(1, 3, 16, 16).clamp(-1, 1)
    mask = masks(1, 16)
    guess, cells, share, residual = pca(face, mask)
    assert guess.shape == cells.shape == (1, 3, 16, 16) and share.shape == (1, 1, 16, 16)
    assert (guess - face)[mask.bool().expand_as(face)].abs().max() < 0.05  # the hole from the known pixels
    assert residual.item() < 0.02
    noise_residual = pca(torch.rand(1, 3, 16, 16) * 2 - 1, mask)[3]  # not a face of the PCA
    assert noise_residual.item() > 10 * residual.item()


def test_the_gram_matrix_follows_the_basis_and_is_not_saved(make_pca, masks) -> None:
    pca = make_pca()
    torch.testing.assert_close(pca.gram, pca.basis @ pca.basis.T)  # set by load_fit
    assert "gram" not in pca.state_dict() and "basis" not in pca.state_dict()
    with torch.inference_mode():  # buffers loaded under inference mode (as `inpaint` may) work the same
        late = GappyPCA(16, 12, 0.5)
        late.load_state_dict(pca.state_dict())  # the post-load hook decodes the basis and computes B Bᵀ again
        torch.testing.assert_close(late(torch.zeros(1, 3, 16, 16), masks(1, 16))[3],
                                   pca(torch.zeros(1, 3, 16, 16), masks(1, 16))[3])


def test_a_batched_fit_works_with_two_threads_and_three_hundred_components(make_pca, masks) -> None:
    """oneMKL's batched LU solve failed here ("Pivots given to lu_solve must all be greater or equal to 1") once
    torch.set_num_threads(2) had been called: the fit solves by Cholesky."""
    pca = GappyPCA(16, 300, 5.0)
    basis = torch.linalg.qr(torch.randn(768, 300, generator=torch.Generator().manual_seed(1)))[0].T
    pca.load_fit(torch.zeros(768), basis, torch.linspace(900, 0.4, 300))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        guess, _, _, residual = pca(torch.rand(8, 3, 64, 64) * 2 - 1, masks(2, 64).repeat(4, 1, 1, 1))
    finally:
        torch.set_num_threads(threads)
    assert torch.isfinite(guess).all() and torch.isfinite(residual).all()


def test_the_basis_is_saved_as_int8_codes_within_half_a_step(make_pca, masks) -> None:
    pca = make_pca()
    assert pca.state_dict()["basis_codes"].dtype == torch.int8
    exact = torch.linalg.qr(torch.randn(768, 12, generator=torch.Generator().manual_seed(3)))[0].T
    codes, scale = quantize_basis(exact)
    assert codes.abs().amax(dim=1).eq(127).all()  # each row's largest value uses the whole range
    assert ((codes.float() * scale[:, None] - exact).abs() <= scale[:, None] / 2 + 1e-7).all()
    pca.load_fit(pca.mean, exact, pca.variance)
    torch.testing.assert_close(pca.basis, codes.float() * scale[:, None])  # what the fit uses


def test_a_float_basis_of_older_checkpoints_is_encoded_on_load(make_pca, masks) -> None:
    """Checkpoints saved before the int8 basis (msl-face v1-v7) hold the basis in float."""
    pca = make_pca()
    state = {k: v for k, v in pca.state_dict().items() if not k.startswith("basis_")}
    state["basis"] = pca.basis.clone()
    upgraded = GappyPCA.upgrade_state_dict(state, "")
    loaded = GappyPCA(16, 12, 0.5)
    loaded.load_state_dict(upgraded)
    torch.testing.assert_close(loaded.basis, pca.basis)  # codes of a decoded basis: the same codes


def test_pca_files_are_checked(tmp_path, make_pca) -> None:
    pca = make_pca()
    path = tmp_path / "pca.safetensors"
    save_fit(path, *fit_pca(torch.rand(40, 3, 16, 16) * 2 - 1, 12))
    load_fit_file(pca, path)
    with pytest.raises(CheckpointError, match="needs a 8² RGB grid"):
        load_fit_file(GappyPCA(8, 12, 0.5), path)
    with pytest.raises(CheckpointError, match="has 12 components, the draft needs 20"):
        load_fit_file(GappyPCA(16, 20, 0.5), path)
    other = tmp_path / "other.safetensors"
    save_fit(other, pca.mean, pca.basis, pca.variance)
    from safetensors.torch import load_file, save_file
    save_file({**load_file(other), "stray": torch.zeros(1)}, other)
    with pytest.raises(CheckpointError, match="unexpected stray"):
        load_fit_file(pca, other)


def test_a_fine_refiner_starts_as_its_grid_face_upsampled_and_reads_the_finer_cells(make_pca, masks) -> None:
    torch.manual_seed(0)
    fine, coarse = PriorRefiner(4, fine=True).eval(), PriorRefiner(4).eval()
    result = coarse.load_state_dict(fine.state_dict(), strict=False)
    assert result.missing_keys == [] and all(k.startswith(("fine.", "fine_head.")) for k in result.unexpected_keys)
    pca = make_pca()
    image, mask = torch.rand(2, 3, 64, 64) * 2 - 1, masks(2, 64)
    guess, cells, share, _ = pca(image, mask)
    fine_cells, fine_share = known_cells(image, 1 - mask, 32)
    with torch.no_grad():
        upsampled = F.interpolate(coarse(cells, share, guess), size=32, mode="bilinear", align_corners=False)
        torch.testing.assert_close(fine(cells, share, guess, fine_cells, fine_share), upsampled)
        torch.nn.init.normal_(fine.fine_head.weight, std=0.1)
        drawn = fine(cells, share, guess, fine_cells, fine_share)
        assert drawn.shape == (2, 3, 32, 32) and (drawn - upsampled).abs().mean() > 1e-3
        changed = fine(cells, share, guess, fine_cells.flip(-1), fine_share)  # it reads the finer cells
        assert (changed - drawn).abs().max() > 1e-3
    with pytest.raises(ValueError, match="needs the known cells of the finer grid"):
        fine(cells, share, guess)
