"""The public `inpaint`: untouched pixels stay bit-identical, crop geometry, batching, dtypes, defaults, ICC."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageCms

from hf_faceinpaint import ClassicInpainter, MSLInpainter, legacy
from hf_faceinpaint.components import COMPONENTS
from hf_faceinpaint.face import geometry
from hf_faceinpaint.face.base import DetailStage, Draft
from hf_faceinpaint.face.draft import GappyPCADraft
from hf_faceinpaint.face.exemplars import ExemplarDetail
from hf_faceinpaint.io import save_safetensors_atomic
from hf_faceinpaint.models.registry import load_model
from hf_faceinpaint.images import example_image_path, example_mask_path, image_array, load_image, load_mask
from hf_faceinpaint.pipeline import FaceInpaintPipeline, inpaint, inpaint_arrays
from hf_faceinpaint.working import extract_crop


@pytest.fixture(scope="module")
def tiny() -> MSLInpainter:
    torch.manual_seed(0)
    return MSLInpainter.from_preset("msl-tiny-128").eval()


def _photo(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _hole(height: int, width: int, top: float = 0.4, left: float = 0.3) -> np.ndarray:
    mask = np.zeros((height, width), bool)
    y, x = int(top * height), int(left * width)
    mask[y : y + max(1, height // 6), x : x + max(1, width // 5)] = True
    mask[min(height - 1, y + height // 4), :: max(1, width // 7)] = True  # scattered single pixels too
    return mask


def _assert_only_hole_changed(result: Image.Image, photo: np.ndarray, mask: np.ndarray) -> None:
    out = np.asarray(result)
    assert result.mode == "RGB" and out.shape == photo.shape
    np.testing.assert_array_equal(out[~mask], photo[~mask])


@pytest.mark.parametrize("size", [(301, 517), (1203, 97), (97, 1203), (60, 60), (128, 128), (7, 3)])
@pytest.mark.parametrize("method", ["telea", "tiny"])
def test_pixels_outside_the_mask_are_bit_identical(size: tuple[int, int], method: str, tiny: MSLInpainter) -> None:
    photo, mask = _photo(*size), _hole(*size)
    result = inpaint(photo, mask, model=tiny if method == "tiny" else method)
    _assert_only_hole_changed(result, photo, mask)
    assert (np.asarray(result)[mask] != photo[mask]).any()


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "I;16"])
def test_input_modes_keep_outside_pixels(tmp_path: Path, mode: str, tiny: MSLInpainter) -> None:
    photo = _photo(90, 70)
    if mode == "I;16":  # 16-bit greyscale: x * 257 reads back as x
        img, expected = Image.fromarray(photo[..., 0].astype(np.uint16) * 257), np.repeat(photo[..., :1], 3, axis=2)
    else:
        img = Image.fromarray(photo).convert(mode)
        expected = np.asarray(img.convert("RGB"))
    img.save(tmp_path / "x.png")
    mask = _hole(90, 70)
    _assert_only_hole_changed(inpaint(tmp_path / "x.png", mask, model=tiny), expected, mask)


def test_classic_methods_fill_a_window_with_the_whole_frames_result() -> None:
    photo, hole = _photo(90, 120), np.zeros((90, 120), bool)
    hole[30:50, 40:47] = hole[60:62, 70:100] = True
    for method in ("telea", "ns"):
        model = ClassicInpainter(method)
        whole = model(photo, hole)
        np.testing.assert_array_equal(inpaint_arrays(model, [photo], [hole])[0], np.where(hole[..., None], whole, photo))


def test_a_hole_on_a_face_is_completed_in_the_faces_frame(tiny: MSLInpainter) -> None:
    photo = image_array(load_image(example_image_path()))  # 512², larger than the working frame
    mask = load_mask(example_mask_path(), (512, 512))  # mouth and cheeks, running out of the face's frame
    pipeline = FaceInpaintPipeline.around(tiny)
    face, rest = pipeline.plan(0, photo, mask, True, {})  # the face's frame, then the rest of the hole
    frame = face.frame
    assert face.face and not rest.face  # the stages run on the face only
    left, top, side = frame
    assert 0 <= left and 0 <= top and left + side <= 512 and top + side <= 512
    result = inpaint_arrays(tiny, [photo], [mask])[0]
    np.testing.assert_array_equal(result[~mask], photo[~mask])
    # inside the frame, away from its edges, the fill is the one the frame alone gets (as a photo seen whole)
    alone = inpaint_arrays(tiny, [extract_crop(photo, frame)], [extract_crop(mask, frame)])[0]
    band = round(pipeline.config.frame_band * side)
    inner = np.s_[top + band : top + side - band, left + band : left + side - band]
    np.testing.assert_array_equal(result[inner], alone[band:-band, band:-band])
    # without face framing the hole is cropped around, as before
    unframed = inpaint_arrays(tiny, [photo], [mask], face_framing=False)[0]
    np.testing.assert_array_equal(unframed[~mask], photo[~mask])
    assert not np.array_equal(unframed[inner], result[inner])
    # a photo the network sees whole is not framed
    (whole,) = pipeline.plan(0, photo[::2, ::2], mask[::2, ::2], True, {})
    assert whole.frame is None and whole.box == (0, 0, 256)


def test_list_input_matches_one_by_one(tiny: MSLInpainter) -> None:
    sizes = [(150, 90), (64, 200), (128, 128)]
    photos = [_photo(*size, seed=i) for i, size in enumerate(sizes)]
    masks = [_hole(*size) for size in sizes]
    batched = inpaint(photos, masks, model=tiny, batch_size=2)
    assert isinstance(batched, list) and len(batched) == 3
    for photo, mask, result in zip(photos, masks, batched):
        single = np.asarray(inpaint(photo, mask, model=tiny)).astype(int)
        assert np.abs(np.asarray(result).astype(int) - single).max() <= 1  # float reduction order only


def test_mismatched_lists_are_rejected(tiny: MSLInpainter) -> None:
    with pytest.raises(ValueError, match="same length"):
        inpaint([_photo(10, 10)], [_hole(10, 10)] * 2, model=tiny)
    with pytest.raises(ValueError, match="same length"):
        inpaint([_photo(10, 10)], _hole(10, 10), model=tiny)


def test_a_mask_over_95_percent_is_refused() -> None:
    with pytest.raises(ValueError, match="covers 100% of the photo; at most 95% can be filled"):
        inpaint(_photo(10, 20), np.ones((10, 20), bool), model="telea")


@pytest.mark.parametrize("dtype", [torch.float64, pytest.param(torch.bfloat16, marks=pytest.mark.slow)])  # bf16: slow on AVX2
def test_dtype_selection(dtype: torch.dtype) -> None:
    model = MSLInpainter.from_preset("msl-tiny-128")
    photo, mask = _photo(100, 80), _hole(100, 80)
    result = inpaint(photo, mask, model=model, dtype=dtype)
    assert next(model.parameters()).dtype == dtype and not model.training
    _assert_only_hole_changed(result, photo, mask)


@pytest.mark.slow  # bf16 is emulated, and slow, on CPUs without bf16 units
def test_a_bf16_fill_is_close_to_the_fp32_fill(tiny: MSLInpainter) -> None:
    photo, mask = _photo(96, 112), _hole(96, 112)
    fp32, bf16 = (np.asarray(inpaint(photo, mask, model=tiny, precision=p)).astype(int) for p in ("fp32", "bf16"))
    _assert_only_hole_changed(Image.fromarray(bf16.astype(np.uint8)), photo, mask)
    assert 0 < np.abs(fp32 - bf16)[mask].mean() < 2.0  # gray levels: bf16 really ran, and its fill is fp32's


def test_an_unknown_precision_is_refused(tiny: MSLInpainter) -> None:
    with pytest.raises(ValueError, match="unknown precision 'fp16'"):
        inpaint(_photo(10, 10), _hole(10, 10), model=tiny, precision="fp16")


def test_default_model_is_the_shipped_msl_face() -> None:
    photo, mask = _photo(40, 50), _hole(40, 50)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = inpaint(photo, mask)
    expected = inpaint(photo, mask, model=load_model("msl-face"))
    np.testing.assert_array_equal(np.asarray(result), np.asarray(expected))
    assert not np.array_equal(np.asarray(result), ClassicInpainter("telea")(photo, mask))
    _assert_only_hole_changed(result, photo, mask)


def test_default_model_warns_and_uses_telea_without_shipped_weights(no_shipped_model: None) -> None:
    photo, mask = _photo(40, 50), _hole(40, 50)
    with pytest.warns(UserWarning, match="Telea"):
        result = inpaint(photo, mask)
    expected = ClassicInpainter("telea")(photo, mask)
    np.testing.assert_array_equal(np.asarray(result), expected)


@pytest.mark.parametrize("method", ["telea", "tiny"])
def test_icc_profile_is_carried(tmp_path: Path, method: str, tiny: MSLInpainter) -> None:
    icc = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(_photo(50, 40)).save(tmp_path / "x.png", icc_profile=icc)
    result = inpaint(tmp_path / "x.png", _hole(50, 40), model=tiny if method == "tiny" else method)
    assert result.info["icc_profile"] == icc
    assert "icc_profile" not in inpaint(_photo(50, 40), _hole(50, 40), model="telea").info


def _demo() -> tuple[np.ndarray, np.ndarray]:
    photo = image_array(load_image(example_image_path()))
    return photo, load_mask(example_mask_path(), (photo.shape[1], photo.shape[0]))


def test_a_pipeline_with_another_draft_is_built_from_its_config_alone(tmp_path: Path) -> None:
    """The PCA without its refiner as the draft: only config.json says so; the network and the stages are msl-face's,
    unchanged, and they run on the new draft's face."""
    shipped = load_model("msl-face")
    values = shipped.config_dict()
    values["draft"] = {**values["draft"], "refiner_width": 0, "refiner_fine": False}
    (tmp_path / "config.json").write_text(json.dumps(values))
    state = {key: value for key, value in shipped.state_dict().items() if not key.startswith("draft.refiner.")}
    save_safetensors_atomic(state, tmp_path / "model.safetensors")
    pipeline = load_model(str(tmp_path))
    assert type(pipeline.draft) is GappyPCADraft and pipeline.draft.refiner is None
    assert pipeline.config_dict() == values and list(pipeline.stages) == list(shipped.stages)
    drawn, seen = [], []
    pipeline.draft.register_forward_hook(lambda module, args, output: drawn.append(output))
    for stage in pipeline.stages.values():
        stage.register_forward_pre_hook(lambda module, args: seen.append(args[2]))
    photo, mask = _demo()
    result = inpaint_arrays(pipeline, [photo], [mask])[0]
    assert len(drawn) == 1 and len(seen) == len(pipeline.stages)
    assert all(torch.equal(draft.face, drawn[0].face) for draft in seen)
    np.testing.assert_array_equal(result[~mask], photo[~mask])
    assert not np.array_equal(result, inpaint_arrays(shipped, [photo], [mask])[0])  # the refiner's face is gone


@pytest.mark.parametrize("name", sorted(n for n, c in COMPONENTS.items() if issubclass(c, DetailStage)))
def test_every_stage_changes_the_hole_only(name: str) -> None:
    side = 128
    generator = torch.Generator().manual_seed(0)
    face = torch.rand(1, 3, side, side, generator=generator) * 2 - 1
    filled = (face + face.flip(-1)) / 2  # a mirror-symmetric frame: every stage has something to do
    mask = torch.zeros(1, 1, side, side)
    top, bottom, left, right = geometry.PARTS["eyes"].pixels(side)
    mask[..., top:bottom, left:right] = 1
    stage = COMPONENTS[name]()
    if isinstance(stage, ExemplarDetail):
        stage.eyes.random_(0, 256, generator=generator)
    out = stage(filled, mask, Draft(torch.zeros_like(filled), torch.ones(1)))
    assert torch.equal(out * (1 - mask), filled * (1 - mask)) and not torch.equal(out, filled)


def test_the_search_drafts_each_frame_once_and_the_face_pass_reuses_its_draft(eyes_painted_over) -> None:
    pipeline = load_model("msl-face")
    calls = []
    hook = pipeline.draft.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        photo, mask = eyes_painted_over
        drafts: dict = {}
        passes = pipeline.plan(0, photo.copy(), mask, True, drafts)
        assert passes[0].frame is not None and len(calls) == len(drafts)  # every hypothesis drafted once, and kept
        searched = len(calls)
        pipeline.complete([photo.copy()], [p for p in passes if p.face], 8, "auto", drafts)
        assert len(calls) == searched + ((0, passes[0].frame) not in drafts)  # the face pass reuses a kept draft
    finally:
        hook.remove()


LEGACY_CONFIG = Path(__file__).parent / "fixtures" / "msl-face-v12-config.json"  # msl-face v12's config.json


def _legacy_folder(folder: Path, basis_as_float: bool = False) -> None:
    """msl-face as v12 wrote it (one flat MSLConfig, the prior under prior., the bank under exemplars.); with
    `basis_as_float`, the basis as v1-v7 stored it."""
    shipped = load_model("msl-face")
    inverse = legacy.pipeline_state({key: key for key in _old_keys(shipped)})  # today's key -> v12's
    state = {inverse[key]: value.half() if value.is_floating_point() else value
             for key, value in shipped.state_dict().items()}
    if basis_as_float:
        codes, scale = state.pop("prior.basis_codes"), state.pop("prior.basis_scale")
        state["prior.basis"] = (codes.float() * scale.float()[:, None]).half()
    folder.mkdir()
    save_safetensors_atomic(state, folder / "model.safetensors")
    (folder / "config.json").write_text(LEGACY_CONFIG.read_text())


def _old_keys(pipeline: FaceInpaintPipeline) -> list[str]:
    """The keys v12 wrote for `pipeline`'s state."""
    def old(key: str) -> str:
        for new, previous in (("draft.pca.", "prior."), ("draft.refiner.", "prior.refiner."),
                              ("stages.exemplars.", "exemplars."), ("network.", "")):
            if key.startswith(new):
                return previous + key.removeprefix(new)
        raise AssertionError(key)

    return [old(key) for key in pipeline.state_dict()]


@pytest.mark.parametrize("basis_as_float", [False, True])
def test_folders_of_msl_face_v1_to_v12_still_load(tmp_path: Path, basis_as_float: bool) -> None:
    _legacy_folder(tmp_path / "v12", basis_as_float)
    old, shipped = load_model(str(tmp_path / "v12")), load_model("msl-face")
    assert isinstance(old, FaceInpaintPipeline) and old.config_dict() == shipped.config_dict()
    for (key, a), b in zip(old.state_dict().items(), shipped.state_dict().values()):
        assert torch.equal(a, b) or basis_as_float and key.startswith("draft.pca.basis_"), key
    # a float basis is encoded again on load: the same basis within float16's rounding
    torch.testing.assert_close(old.draft.pca.basis, shipped.draft.pca.basis, rtol=0, atol=2e-4)
    # v1: the network alone, saved before the class name was written
    network = json.loads(LEGACY_CONFIG.read_text())
    v1 = {key: network[key] for key in ("attention_patch_size", "attention_rate", "attention_softmax_scale",
                                        "convs_per_level", "discriminator_widths", "kernel_sizes", "resolution",
                                        "se_reduction", "use_semantic_learning", "widths")}
    shipped.network.save_pretrained(tmp_path / "v1")
    (tmp_path / "v1" / "config.json").write_text(json.dumps(v1))
    assert type(load_model(str(tmp_path / "v1"))) is MSLInpainter
