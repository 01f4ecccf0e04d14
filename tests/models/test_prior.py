"""The gappy-PCA face prior (`models/prior.py`): the fit of eq. 1 against a dense reference solve, its residual, the
structure transfer of eq. 2 and its parts (hole depth, Gaussian low-pass) against OpenCV, an MSL model that
blends the prior into its prediction (`prior_input=False`), and the basis's int8 storage (older float checkpoints
included)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hf_faceinpaint import MSLInpainter
from hf_faceinpaint.models.registry import load_pretrained
from hf_faceinpaint.models.msl import MSLConfig
from hf_faceinpaint.models.hub import CheckpointError, save_safetensors_atomic
from hf_faceinpaint.models.prior import (
    FacePrior,
    fit_pca,
    gaussian_blur,
    erode,
    hole_depth,
    known_cells,
    load_fit_file,
    load_refiner_file,
    quantize_basis,
    refiner_fine,
    refiner_fine_blocks,
    refiner_width,
    save_fit,
    transfer_structure,
)


def random_prior(size: int = 16, components: int = 12, ridge: float = 0.5, seed: int = 0,
                 refiner_width: int = 0, refiner_fine: bool = False, refiner_fine_blocks: int = 0) -> FacePrior:
    """A prior fitted by `fit_pca` on random low-rank "faces" (orthonormal basis, decreasing variances)."""
    generator = torch.Generator().manual_seed(seed)
    pixels = 3 * size * size
    directions = torch.linalg.qr(torch.randn(pixels, components, generator=generator))[0]  # (N, K)
    scales = torch.linspace(0.3, 0.05, components)
    faces = (torch.randn(200, components, generator=generator) * scales) @ directions.T  # (M, N)
    prior = FacePrior(size, components, ridge, refiner_width, refiner_fine, refiner_fine_blocks)
    prior.load_fit(*fit_pca(faces.view(-1, 3, size, size).clamp(-1, 1), components, mirror=False))
    return prior


def box_masks(batch: int, side: int) -> torch.Tensor:
    mask = torch.zeros(batch, 1, side, side)
    mask[0, :, side // 4 : side // 2, side // 5 : 4 * side // 5] = 1  # an "eyes" box
    if batch > 1:
        mask[1, :, :, : side // 2] = 1  # half the frame
    return mask


def test_fit_solves_eq_1_like_a_dense_reference() -> None:
    prior = random_prior()
    image = torch.rand(2, 3, 32, 32) * 2 - 1  # frames twice the grid: area-resampled to it
    mask = box_masks(2, 32)
    coefficients, weights = prior.coefficients(image, 1 - mask)
    # eq. 1 as written: (B W Bᵀ + λ V⁻¹) c = B W (x − μ), in float64, with every pixel's row
    share = weights.repeat(1, 3, 1, 1).flatten(1).double()  # (B, N)
    cells = F.adaptive_avg_pool2d(image * (1 - mask), (16, 16)) / weights.clamp_min(1e-6)
    basis = prior.basis.double()
    normal = (basis * share[:, None, :]) @ basis.T + torch.diag(prior.ridge / prior.variance.double())
    rhs = ((cells.flatten(1).double() - prior.mean.double()) * share) @ basis.T
    expected = torch.linalg.solve(normal, rhs[..., None])[..., 0]
    torch.testing.assert_close(coefficients.double(), expected, rtol=1e-4, atol=1e-4)


def test_a_face_of_the_prior_is_recovered_from_its_known_pixels_with_a_small_residual() -> None:
    prior = random_prior(ridge=1e-4)
    face = (prior.mean + torch.randn(1, 12) * prior.variance.sqrt() @ prior.basis).view(1, 3, 16, 16)
    mask = box_masks(1, 16)
    fitted, residual = prior.fit(face.clamp(-1, 1), mask)
    inside = mask.bool().expand_as(face)
    assert (fitted - face.clamp(-1, 1))[inside].abs().max() < 0.05  # the hole comes back from the known pixels
    assert residual.item() < 0.02
    noise, noise_residual = prior.fit(torch.rand(1, 3, 16, 16) * 2 - 1, mask)  # not a face of the prior
    assert noise_residual.item() > 10 * residual.item() and noise.shape == face.shape


def test_the_gram_matrix_follows_the_basis_and_is_not_saved() -> None:
    prior = random_prior()
    torch.testing.assert_close(prior.gram, prior.basis @ prior.basis.T)  # set by load_fit
    assert "gram" not in prior.state_dict()
    other = FacePrior(16, 12, 0.5)
    other.load_state_dict(prior.state_dict())  # the post-load hook computes it again
    torch.testing.assert_close(other.gram, prior.gram)
    with torch.inference_mode():  # buffers loaded under inference mode (as `inpaint` may) work the same
        late = FacePrior(16, 12, 0.5)
        late.load_state_dict(prior.state_dict())
        torch.testing.assert_close(late.fit(torch.zeros(1, 3, 16, 16), box_masks(1, 16))[1], prior.fit(
            torch.zeros(1, 3, 16, 16), box_masks(1, 16))[1])


def test_batched_fit_works_with_two_threads_and_three_hundred_components() -> None:
    """oneMKL's batched LU solve failed here ("Pivots given to lu_solve must all be greater or equal to 1") once
    torch.set_num_threads(2) had been called: the fit now solves by Cholesky."""
    prior = FacePrior(16, 300, 5.0)
    basis = torch.linalg.qr(torch.randn(768, 300, generator=torch.Generator().manual_seed(1)))[0].T
    prior.load_fit(torch.zeros(768), basis, torch.linspace(900, 0.4, 300))
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        face, residual = prior.fit(torch.rand(8, 3, 64, 64) * 2 - 1, box_masks(2, 64).repeat(4, 1, 1, 1))
    finally:
        torch.set_num_threads(threads)
    assert torch.isfinite(face).all() and torch.isfinite(residual).all()


def test_hole_depth_is_opencvs_chessboard_distance() -> None:
    rng = np.random.default_rng(0)
    mask = np.zeros((40, 50), np.uint8)
    mask[5:30, 3:45] = 1
    mask[0:10, 20:25] = 1  # touches the border: beyond the frame counts as hole, as in OpenCV
    mask[rng.random(mask.shape) < 0.05] = 1
    expected = cv2.distanceTransform(mask, cv2.DIST_C, 3)
    depth = hole_depth(torch.from_numpy(mask)[None, None].float(), 100)[0, 0].numpy()
    np.testing.assert_array_equal(depth, expected)
    capped = hole_depth(torch.from_numpy(mask)[None, None].float(), 3)[0, 0].numpy()
    np.testing.assert_array_equal(capped, np.minimum(expected, 4))


def test_erode_is_the_3x3_minimum_with_the_frame_beyond_counting_as_hole() -> None:
    masks = (torch.rand(3, 1, 17, 23, generator=torch.Generator().manual_seed(0)) > 0.3).float()  # (B, 1, H, W)
    torch.testing.assert_close(erode(masks), -F.max_pool2d(-masks, 3, stride=1, padding=1), rtol=0, atol=0)
    assert erode(torch.ones(1, 1, 4, 5)).eq(1).all()  # a hole filling the frame is not eroded from its border


def test_gaussian_blur_is_opencvs_with_reflected_borders() -> None:
    image = np.random.default_rng(0).random((3, 30, 40)).astype(np.float32)
    ours = gaussian_blur(torch.from_numpy(image)[None], 2.0)[0].numpy()
    expected = np.stack([cv2.GaussianBlur(c, (13, 13), 2.0, borderType=cv2.BORDER_REFLECT_101) for c in image])
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    assert gaussian_blur(torch.from_numpy(image)[None], 0.0) is not None


def test_transfer_structure_keeps_the_edge_and_takes_the_prior_deep_inside() -> None:
    prediction = torch.zeros(2, 3, 64, 64)
    face = torch.full((2, 3, 64, 64), 0.5)
    mask = torch.zeros(2, 1, 64, 64)
    mask[:, :, 8:56, 8:56] = 1
    out = transfer_structure(prediction, face, mask, sigma=2.0, ramp=8.0, trust=torch.tensor([1.0, 0.0]))
    assert out[0, :, 30, 30].allclose(torch.full((3,), 0.5), atol=1e-4)  # deep inside: the prior's level
    assert out[0, :, 8, 30].abs().max() < 0.5 / 8 + 1e-6  # next to a known pixel: weight 1/ramp, blurred
    assert out[0, :, :8].abs().max() == 0 and out[0, :, :, 60:].abs().max() == 0  # known pixels untouched
    assert out[1].abs().max() == 0  # no trust: the prediction itself


def blended_config(**overrides) -> MSLConfig:
    values = dict(resolution=32, widths=(8, 16), prior_size=16, prior_components=12, prior_input=False,
                  prior_blend=0.06, prior_blend_ramp=0.25)
    return MSLConfig(**{**values, **overrides})


def test_a_blended_prior_is_not_an_input_and_gates_on_its_residual(tmp_path) -> None:
    torch.manual_seed(0)
    model = MSLInpainter(blended_config()).eval()
    prior = random_prior(ridge=1e-4)
    model.prior.load_fit(prior.mean, prior.basis, prior.variance)
    plain = MSLInpainter(blended_config(prior_components=0, prior_blend=0.0)).eval()
    plain.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("prior.")})
    assert model.config.in_channels == 4 and not model.takes_guide
    mask = box_masks(1, 32)
    face = F.interpolate((prior.mean + prior.variance.sqrt() @ prior.basis).view(1, 3, 16, 16), size=32,
                         mode="bicubic").clamp(-1, 1)
    noise = F.interpolate(torch.randint(0, 2, (1, 3, 16, 16)).float() * 2 - 1, size=32)  # ±1 per grid cell
    assert model.prior.fit(noise, mask)[1].item() > model.config.prior_residual_none
    with torch.inference_mode():
        assert torch.equal(model(noise, mask), plain(noise, mask))  # a bad fit (not a face): no prior at all
        blended, alone = model(face, mask), plain(face, mask)
    assert not torch.allclose(blended, alone)
    assert torch.equal(blended * (1 - mask), face * (1 - mask))  # composited: known pixels are the input's
    with pytest.raises(ValueError, match="guide"):
        model.generate(face, mask, guide=face)
    model.save_pretrained(tmp_path)
    loaded = load_pretrained(tmp_path)
    torch.testing.assert_close(loaded.prior.basis, model.prior.basis)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(face, mask), blended)


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        (dict(prior_blend=-0.1), "prior_blend >= 0"),
        (dict(prior_blend_ramp=0.0), "prior_blend_ramp > 0"),
        (dict(prior_residual_full=0.4), "prior_residual_full < prior_residual_none"),
        (dict(prior_blend=0.0), "unused"),
        (dict(prior_refiner_width=-1), "prior_refiner_width"),
        (dict(prior_components=0, prior_blend=0.0, prior_refiner_width=4), "prior_refiner_width needs a prior"),
        (dict(prior_refiner_fine=True), "prior_refiner_fine needs a refiner"),
    ],
)
def test_blend_settings_are_checked(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        blended_config(**overrides)


def test_the_refiner_corrects_the_pcas_face_on_the_grid_and_keeps_the_residual() -> None:
    torch.manual_seed(0)
    refined = random_prior(refiner_width=4).eval()
    plain = random_prior()
    image, mask = torch.rand(2, 3, 32, 32) * 2 - 1, box_masks(2, 32)
    guess, cells, share, residual = refined.fit_grid(image, mask)
    assert guess.shape == cells.shape == (2, 3, 16, 16) and share.shape == (2, 1, 16, 16)
    with torch.no_grad():
        face, fit_residual = refined.fit(image, mask)
        expected = F.interpolate(refined.refiner(cells, share, guess), size=32, mode="bicubic").clamp(-1, 1)
        torch.testing.assert_close(face, expected)
        torch.testing.assert_close(fit_residual, plain.fit(image, mask)[1])  # the trust still comes from the PCA
        # no frame's residual below refine_below: the refiner is skipped, the face is the PCA's
        torch.testing.assert_close(refined.fit(image, mask, refine_below=fit_residual.min().item())[0],
                                   plain.fit(image, mask)[0])
        assert not torch.equal(refined.fit(image, mask, refine_below=fit_residual.max().item())[0],
                               plain.fit(image, mask)[0])
        torch.nn.init.zeros_(refined.refiner.head.weight)
        torch.nn.init.zeros_(refined.refiner.head.bias)
        torch.testing.assert_close(refined.fit(image, mask)[0], plain.fit(image, mask)[0])  # a zero correction
    with torch.no_grad():  # a bf16 model's refiner runs in bf16 and still returns a float32 face
        assert refined.to(torch.bfloat16).fit(image, mask)[0].dtype == torch.float32


def test_a_fine_refiner_starts_as_its_grid_face_upsampled_and_draws_on_the_finer_grid() -> None:
    torch.manual_seed(0)
    fine = random_prior(refiner_width=4, refiner_fine=True).eval()
    coarse = random_prior(refiner_width=4).eval()
    result = coarse.refiner.load_state_dict(fine.refiner.state_dict(), strict=False)
    assert result.missing_keys == [] and all(k.startswith(("fine.", "fine_head.")) for k in result.unexpected_keys)
    image, mask = torch.rand(2, 3, 64, 64) * 2 - 1, box_masks(2, 64)
    guess, cells, share, _ = fine.fit_grid(image, mask)
    fine_cells, fine_share = known_cells(image, 1 - mask, 32)
    with torch.no_grad():
        grid_face = coarse.refiner(cells, share, guess)  # (B, 3, 16, 16)
        upsampled = F.interpolate(grid_face, size=32, mode="bilinear", align_corners=False)
        torch.testing.assert_close(fine.refiner(cells, share, guess, fine_cells, fine_share), upsampled)
        expected = F.interpolate(upsampled, size=64, mode="bicubic").clamp(-1, 1)
        torch.testing.assert_close(fine.fit(image, mask)[0], expected)  # the fit feeds it the 2S grid's cells
        torch.nn.init.normal_(fine.refiner.fine_head.weight, std=0.1)
        drawn = fine.refiner(cells, share, guess, fine_cells, fine_share)
        assert drawn.shape == (2, 3, 32, 32) and (drawn - upsampled).abs().mean() > 1e-3
        changed = fine.refiner(cells, share, guess, fine_cells.flip(-1), fine_share)  # it reads the finer cells
        assert (changed - drawn).abs().max() > 1e-3
    with pytest.raises(ValueError, match="needs the known cells of the finer grid"):
        fine.refiner(cells, share, guess)
    with pytest.raises(ValueError, match="refiner_fine needs a refiner"):
        FacePrior(16, 12, 0.5, refiner_fine=True)


def test_fine_blocks_start_as_the_identity_and_are_read_from_a_file_strictly(tmp_path) -> None:
    torch.manual_seed(0)
    plain = random_prior(refiner_width=4, refiner_fine=True).eval()
    torch.nn.init.normal_(plain.refiner.fine_head.weight, std=0.1)  # a fine level that draws something
    blocks = random_prior(refiner_width=4, refiner_fine=True, refiner_fine_blocks=3).eval()
    result = blocks.refiner.load_state_dict(plain.refiner.state_dict(), strict=False)  # a warm start
    assert result.unexpected_keys == [] and result.missing_keys
    assert all(key.startswith(("fine.2.", "fine.3.", "fine.4.")) for key in result.missing_keys)
    image, mask = torch.rand(2, 3, 64, 64) * 2 - 1, box_masks(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(blocks.fit(image, mask)[0], plain.fit(image, mask)[0])  # new blocks: identity
        for block in blocks.refiner.fine[2:]:
            torch.nn.init.normal_(block.body[-1].weight, std=0.1)
        assert (blocks.fit(image, mask)[0] - plain.fit(image, mask)[0]).abs().mean() > 1e-3
    files = {count: tmp_path / f"blocks{count}.safetensors" for count in (0, 3)}
    for count, prior in ((0, plain), (3, blocks)):
        save_safetensors_atomic({k: v.contiguous() for k, v in prior.state_dict().items()}, files[count])
        assert refiner_fine_blocks(files[count]) == count
    load_fit_file(FacePrior(16, 12, 0.5, refiner_width=4, refiner_fine=True, refiner_fine_blocks=3), files[3])
    with pytest.raises(CheckpointError, match="refiner keys missing or unexpected: fine.2"):
        load_fit_file(FacePrior(16, 12, 0.5, refiner_width=4, refiner_fine=True), files[3])
    with pytest.raises(ValueError, match="fine_blocks needs the fine level"):
        FacePrior(16, 12, 0.5, refiner_width=4, refiner_fine_blocks=2)
    with pytest.raises(ValueError, match="prior_refiner_fine_blocks"):
        blended_config(prior_refiner_width=4, prior_refiner_fine_blocks=2)
    model = MSLInpainter(blended_config(prior_refiner_width=4, prior_refiner_fine=True, prior_refiner_fine_blocks=2))
    model.save_pretrained(tmp_path / "model")
    assert load_pretrained(tmp_path / "model").config.prior_refiner_fine_blocks == 2


def test_a_prior_file_carries_its_refiner_strictly(tmp_path) -> None:
    torch.manual_seed(0)
    refined = random_prior(refiner_width=4).eval()
    with_refiner, pca_only = tmp_path / "refined.safetensors", tmp_path / "pca.safetensors"
    save_safetensors_atomic({k: v.contiguous() for k, v in refined.state_dict().items()}, with_refiner)
    save_fit(pca_only, refined.mean, refined.basis, refined.variance)
    assert (refiner_width(with_refiner), refiner_width(pca_only)) == (4, 0)
    loaded = FacePrior(16, 12, 0.5, refiner_width=4).eval()
    load_fit_file(loaded, with_refiner)
    image, mask = torch.rand(1, 3, 32, 32) * 2 - 1, box_masks(1, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded.fit(image, mask)[0], refined.fit(image, mask)[0])
    with pytest.raises(CheckpointError, match="refiner keys missing"):
        load_fit_file(FacePrior(16, 12, 0.5, refiner_width=4), pca_only)
    with pytest.raises(CheckpointError, match="refiner the model has none of"):
        load_fit_file(FacePrior(16, 12, 0.5), with_refiner)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_fit_file(FacePrior(16, 12, 0.5, refiner_width=8), with_refiner)
    fine, fine_file = random_prior(refiner_width=4, refiner_fine=True), tmp_path / "fine.safetensors"
    save_safetensors_atomic({k: v.contiguous() for k, v in fine.state_dict().items()}, fine_file)
    assert (refiner_fine(fine_file), refiner_fine(with_refiner)) == (True, False)
    load_fit_file(FacePrior(16, 12, 0.5, refiner_width=4, refiner_fine=True), fine_file)
    with pytest.raises(CheckpointError, match="refiner keys missing or unexpected: fine"):
        load_fit_file(FacePrior(16, 12, 0.5, refiner_width=4), fine_file)
    with pytest.raises(CheckpointError, match="refiner keys missing or unexpected: fine"):
        load_fit_file(FacePrior(16, 12, 0.5, refiner_width=4, refiner_fine=True), with_refiner)


def test_a_refiner_file_replaces_the_refiner_alone_strictly(tmp_path) -> None:
    torch.manual_seed(0)
    source, target = random_prior(refiner_width=4), random_prior(seed=1, refiner_width=4)
    refiner_file = tmp_path / "refiner.safetensors"
    save_safetensors_atomic({f"refiner.{k}": v.half() if v.is_floating_point() else v
                             for k, v in source.refiner.state_dict().items()}, refiner_file)
    basis = target.basis.clone()
    load_refiner_file(target, refiner_file)
    for key, value in source.refiner.state_dict().items():
        torch.testing.assert_close(target.refiner.state_dict()[key], value.half().to(value.dtype), msg=key)
    torch.testing.assert_close(target.basis, basis)  # the PCA stays
    with pytest.raises(CheckpointError, match="has no refiner"):
        load_refiner_file(random_prior(), refiner_file)
    with pytest.raises(CheckpointError, match="wrong shape"):
        load_refiner_file(random_prior(refiner_width=8), refiner_file)
    whole = tmp_path / "whole.safetensors"
    save_safetensors_atomic({k: v.contiguous() for k, v in source.state_dict().items()}, whole)
    with pytest.raises(CheckpointError, match="more than a refiner: basis"):
        load_refiner_file(target, whole)


@pytest.mark.parametrize("fine", [False, True])
def test_a_blended_model_saves_and_reloads_its_refiner(tmp_path, fine: bool) -> None:
    torch.manual_seed(0)
    model = MSLInpainter(blended_config(prior_refiner_width=4, prior_refiner_fine=fine)).eval()
    if fine:  # a fine level that draws something
        torch.nn.init.normal_(model.prior.refiner.fine_head.weight, std=0.1)
    prior = random_prior(ridge=1e-4)
    model.prior.load_fit(prior.mean, prior.basis, prior.variance)
    model.save_pretrained(tmp_path)
    loaded = load_pretrained(tmp_path)
    assert (loaded.config.prior_refiner_width, loaded.config.prior_refiner_fine) == (4, fine)
    image, mask = torch.rand(1, 3, 32, 32) * 2 - 1, box_masks(1, 32)
    with torch.inference_mode():
        torch.testing.assert_close(loaded(image, mask), model(image, mask))


def test_the_basis_is_saved_as_int8_codes_within_half_a_step() -> None:
    prior = random_prior()
    state = prior.state_dict()
    assert "basis" not in state and state["basis_codes"].dtype == torch.int8
    exact = torch.linalg.qr(torch.randn(768, 12, generator=torch.Generator().manual_seed(3)))[0].T
    codes, scale = quantize_basis(exact)
    assert codes.abs().amax(dim=1).eq(127).all()  # each row's largest value uses the whole range
    assert ((codes.float() * scale[:, None] - exact).abs() <= scale[:, None] / 2 + 1e-7).all()
    prior.load_fit(prior.mean, exact, prior.variance)
    torch.testing.assert_close(prior.basis, codes.float() * scale[:, None])  # what the fit uses


def test_a_checkpoint_with_a_float_basis_still_loads_strictly(tmp_path) -> None:
    """Models saved before the int8 basis (msl-face v1-v7, their training runs) hold "prior.basis" in float."""
    model = MSLInpainter(MSLConfig(resolution=32, widths=(8, 16), discriminator_widths=(8, 16), prior_components=12,
                                   prior_size=16, prior_input=False, prior_blend=1 / 32))
    fitted = random_prior()
    model.prior.load_fit(fitted.mean, fitted.basis, fitted.variance)
    model.save_pretrained(tmp_path / "new")
    legacy = {key: value for key, value in model.state_dict().items() if not key.startswith("prior.basis_")}
    legacy["prior.basis"] = model.prior.basis.clone()
    save_safetensors_atomic(legacy, tmp_path / "new" / "model.safetensors")
    loaded = MSLInpainter.from_pretrained(tmp_path / "new")
    torch.testing.assert_close(loaded.prior.basis, model.prior.basis)  # codes of a decoded basis: the same codes
    legacy["prior.stray"] = torch.zeros(1)
    save_safetensors_atomic(legacy, tmp_path / "new" / "model.safetensors")
    with pytest.raises(CheckpointError, match="unexpected keys: prior.stray"):
        MSLInpainter.from_pretrained(tmp_path / "new")
