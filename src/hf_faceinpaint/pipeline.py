"""The one inference path: `FaceInpaintPipeline`, which composes a network with the face stages, and `inpaint`
(photos in, photos out) and `inpaint_arrays` (what `evaluate` scores) around it.

A pipeline is declared by its components (diffusers' way): the `network` (a paper's model, `models/`), a
`framer` (`face.framing.CascadeFramer`), a `draft` (`face.draft.GappyPCADraft`) and named detail `stages`
(`face.structure.StructureTransfer`, `face.exemplars.ExemplarDetail`, `face.symmetry.MirrorDetail`), plus its own
`PipelineConfig`. `save_pretrained` writes them as one `config.json` (the pipeline's fields, then each component's
class name and config under its key) and one `model.safetensors` (each component's weights under its key), so a
Hub repo or the package data is two files, and `from_pretrained` rebuilds every part from the config alone.

One call, top to bottom, for each photo:
  1. plan (`plan`): a photo larger than `max_working_side` whose hole is on a face is completed in the face's
     training-style frame (`face_frame`: the framer's cascade, else the analysis-by-synthesis search with the draft,
     each hypothesis drafted once and the draft kept); the part of the hole outside that frame is completed in a
     crop around it by the network alone, and the two meet in a band cross-faded inside the frame's edges. Any other
     photo is completed in one crop around its hole (the whole photo when it fits the working size).
  2. complete (`complete`): crops of the same working size are batched; the network runs under the autocast that
     `precision` chooses (`precision.network_autocast`), its prediction is composited once, and in a face's frame the
     draft and the stages then change the hole in float32, each in turn. The result becomes uint8 once, is resized
     to the crop once, and only its hole pixels are pasted back: every pixel outside the mask stays bit-identical to
     the (8-bit RGB) input.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from . import legacy
from .components import CLASS_KEY, build_component, checked_config
from .face.base import DetailStage, Draft, FaceDraft, FaceFramer
from .face.framing import CascadeFramer, Frame
from .images import ImageSource, image_array, load_image, load_mask
from .io import CheckpointError, frames_to_tensor, tensor_to_frames
from .models.base import Inpainter
from .models.classic import ClassicInpainter
from .hub import REPO_URL, HubModelMixin, load_state_dict_strict, model_card_template
from .models.registry import load_model
from .precision import check_precision, network_autocast
from .working import crop_box, edge_weights, extract_crop, fill_hole, hole_window, resize_image, resize_mask, \
    working_size

COMPONENT_KEYS = ("network", "framer", "draft", "stages")


@dataclass
class PipelineConfig:
    """The working frame's settings (the defaults are msl-face's).

    Args:
        max_working_side: Largest working side of a network: crops beyond it are downscaled (cost grows with its
            square), and photos larger than it are framed on their face.
        context_factor: A crop around a hole is at least this many times the hole's bounding-box side ...
        min_crop_fraction: ... and at least this share of the photo's shorter side (so a small hole on a face still
            shows most of the face).
        frame_band: A hole that runs out of a face's frame is filled again around the frame's edges, this share of
            the frame's side deep, and there cross-faded into the face's fill (the face lies 0.19 of the side inside
            the frame).
    """

    max_working_side: int = 256
    context_factor: float = 2.0
    min_crop_fraction: float = 0.6
    frame_band: float = 0.125

    def __post_init__(self) -> None:
        if not (self.max_working_side >= 16 and self.context_factor >= 1 and 0 < self.min_crop_fraction <= 1
                and 0 < self.frame_band < 0.5):
            raise ValueError(f"bad pipeline settings: {self}")


@dataclass
class Pass:
    """One crop to complete: photo `index`'s `window` (rows, columns; the whole photo when None), the hole to fill
    there, the crop `box` (left, top, side) in the window's pixels, its working side, and whether the face stages
    run on it (`frame`: the face frame it is, for the drafts kept by the search; None elsewhere)."""

    index: int
    window: tuple[slice, slice] | None
    hole: np.ndarray
    box: Frame
    work: int
    face: bool
    frame: Frame | None = None


class FaceInpaintPipeline(nn.Module, HubModelMixin, library_name="hf-faceinpaint", pipeline_tag="image-to-image",
                          license="apache-2.0", repo_url=REPO_URL, model_card_template=model_card_template(),
                          tags=["inpainting", "face-inpainting", "gan", "pipeline"]):
    """A network composed with the face stages.

    Args:
        network: The inpainting network (a paper's model).
        framer: Finds a hole's face in a large photo; None completes every hole in a crop around it.
        draft: Draws a face into a face's frame for the stages (and the framer's search); None: no draft.
        stages: Named detail stages, run in order on a face's frame.
        config: The working frame's settings.
    """

    def __init__(self, network: nn.Module, framer: FaceFramer | None = None, draft: FaceDraft | None = None,
                 stages: dict[str, DetailStage] | None = None, config: PipelineConfig | None = None) -> None:
        super().__init__()
        self.network, self.framer, self.draft = network, framer, draft
        self.stages = nn.ModuleDict(stages or {})
        self.config = config or PipelineConfig()

    @classmethod
    def around(cls, network: nn.Module) -> "FaceInpaintPipeline":
        """The pipeline of a bare network: face framing, no draft, no stages."""
        return cls(network, CascadeFramer())

    # ---- config and weights

    def config_dict(self) -> dict[str, Any]:
        """The config as `config.json` holds it: the pipeline's fields, then each component's."""
        return {CLASS_KEY: type(self).__name__, **asdict(self.config), "network": self.network.config_dict(),
                "framer": None if self.framer is None else self.framer.config_dict(),
                "draft": None if self.draft is None else self.draft.config_dict(),
                "stages": {name: stage.config_dict() for name, stage in self.stages.items()}}

    @classmethod
    def from_config(cls, values: dict[str, Any], check_size: bool = True) -> "FaceInpaintPipeline":
        """A pipeline with fresh components from its `config.json` form, every value checked first.

        Raises:
            TypeError, ValueError: A malformed config, an unknown component class, or a network too large to build.
        """
        if not isinstance(values, dict):
            raise TypeError(f"a pipeline config must be a JSON object, not {type(values).__name__}")
        if legacy.is_legacy_pipeline(values):
            values = legacy.pipeline_config(values)
        own = {key: value for key, value in values.items() if key not in (*COMPONENT_KEYS, CLASS_KEY)}
        network = values.get("network")
        if not isinstance(network, dict):
            raise TypeError("a pipeline config needs its network's config under 'network'")
        stages = values.get("stages") or {}
        if not isinstance(stages, dict):
            raise TypeError("'stages' must map stage names to their configs")
        optional = {key: None if values.get(key) is None else build_component(values[key], kind, check_size)
                    for key, kind in (("framer", FaceFramer), ("draft", FaceDraft))}
        return cls(Inpainter.build(network, check_size), optional["framer"], optional["draft"],
                   {str(name): build_component(stage, DetailStage, check_size) for name, stage in stages.items()},
                   checked_config(PipelineConfig, own))

    def load_weights(self, state: dict[str, torch.Tensor], source: str) -> None:
        """Load every component's weights strictly, naming missing, unexpected and mis-shaped keys (the keys of an
        older flat checkpoint renamed first: `legacy.pipeline_state`)."""
        load_state_dict_strict(self, legacy.pipeline_state(state) if legacy.is_legacy_state(state) else state, source)

    def _save_pretrained(self, save_directory) -> None:
        self.save_files(save_directory, self.config_dict())

    # ---- planning

    def work_side(self, side: int) -> int:
        """The working side of a `side`-pixel crop (`working.working_size`)."""
        config = self.network.config
        return working_size(side, config.resolution, getattr(config, "size_multiple", None),
                            self.config.max_working_side)

    def around_hole(self, mask: np.ndarray) -> tuple[Frame, int]:
        """The crop box and working side of a hole completed in a crop around it: at least the whole photo when it
        fits the working size (a face photo is then seen whole, as in training, at native resolution), else at
        least `min_crop_fraction` of its shorter side, and at least `context_factor` times the hole; a crop smaller
        than its working size is grown to it (more context, no resampling) where the photo allows."""
        config = self.config
        height, width = mask.shape
        whole = max(height, width) if max(height, width) <= config.max_working_side else 0
        box = crop_box(mask, max(round(config.min_crop_fraction * min(height, width)), whole), config.context_factor)
        work = self.work_side(box[2])
        if box[2] < work:
            box = crop_box(mask, work, config.context_factor)
        return box, work

    def plan(self, index: int, image: np.ndarray, mask: np.ndarray, face_framing: bool,
             drafts: dict[tuple[int, Frame], Draft]) -> list[Pass]:
        """The passes that complete photo `index` (see the module docstring, step 1)."""
        frame = None
        if face_framing and self.framer is not None and max(mask.shape) > self.config.max_working_side:
            frame = self.face_frame(image, mask, lambda found, draft: drafts.setdefault((index, found), draft))
        if frame is None:
            box, work = self.around_hole(mask)
            return [Pass(index, None, mask, box, work, face=True)]
        left, top, side = frame
        window = np.s_[max(top, 0) : top + side, max(left, 0) : left + side]  # the frame's part of the photo
        face = Pass(index, window, mask[window], (left - window[1].start, top - window[0].start, side),
                    self.work_side(side), face=True, frame=frame)
        if np.count_nonzero(face.hole) == np.count_nonzero(mask):
            return [face]
        # the rest of the hole, in a crop around it, with a band inside the frame's edges filled again
        rest = mask.copy()
        rest[window][edge_weights(mask.shape, frame, self.config.frame_band) == 1.0] = False
        box, work = self.around_hole(rest)
        return [face, Pass(index, None, rest, box, work, face=False)]

    def face_frame(self, image: np.ndarray, mask: np.ndarray, keep=lambda frame, draft: None) -> Frame | None:
        """The training-style frame of the face the hole lies on, or None when it touches no face.

        The framer's cascade first; where it sees no face and there is a draft, analysis by synthesis: each of the
        framer's hypotheses is drafted (`drawn`) and confirmed by the cascade, and the first confirmed is drafted
        once more in the frame the cascade saw, which is kept when confirmed again (the frame the draft fits, not
        the one guessed from the hole). Every draft made is handed to `keep(frame, draft)`.
        """
        frame = self.framer.detect(image, mask)
        if frame is not None or self.draft is None:
            return frame
        for guess in self.framer.hypotheses(image, mask):
            face = self.drawn(image, mask, guess, keep)
            found = None if face is None else self.framer.confirm(image, mask, guess, face)
            if found is not None:
                again = self.drawn(image, mask, found, keep)
                return (None if again is None else self.framer.confirm(image, mask, found, again)) or found
        return None

    def drawn(self, image: np.ndarray, mask: np.ndarray, frame: Frame, keep) -> np.ndarray | None:
        """The draft of `frame` (at its working side, as the face pass will see it) as a (side, side, 3) uint8
        crop, or None where the draft does not trust the frame to be a face."""
        work = self.work_side(frame[2])
        crop = frames_to_tensor(resize_image(extract_crop(image, frame), work)[None], self._device())
        hole = torch.from_numpy(resize_mask(extract_crop(mask, frame), work)[None, None]).to(crop)
        with torch.inference_mode():
            draft = self.draft(crop, hole)
        keep(frame, draft)
        return resize_image(tensor_to_frames(draft.face)[0], frame[2]) if bool(draft.trust[0] > 0) else None

    # ---- completing

    def complete(self, images: Sequence[np.ndarray], passes: Sequence[Pass], batch_size: int, precision: str,
                 drafts: dict[tuple[int, Frame], Draft]) -> None:
        """Fill each pass's hole in its (writable) image in place (see the module docstring, step 2)."""
        for work, face in sorted({(p.work, p.face) for p in passes}):
            same = [p for p in passes if (p.work, p.face) == (work, face)]
            for start in range(0, len(same), batch_size):
                chunk = same[start : start + batch_size]
                views = [images[p.index] if p.window is None else images[p.index][p.window] for p in chunk]
                crops = np.stack([resize_image(extract_crop(view, p.box), work) for view, p in zip(views, chunk)])
                holes = np.stack([resize_mask(extract_crop(p.hole, p.box), work) for p in chunk])
                filled = self.fill(crops, holes, precision, [drafts.get((p.index, p.frame)) for p in chunk] if face
                                   else None)
                for out, view, p in zip(filled, views, chunk):
                    fill_hole(view, resize_image(out, p.box[2]), p.hole, p.box[0], p.box[1], in_place=True)

    def fill(self, crops: np.ndarray, holes: np.ndarray, precision: str = "auto",
             drafts: Sequence[Draft | None] | None = None) -> np.ndarray:
        """Complete working frames: the network, composited, then (with `drafts`: a face's frames, each with its
        kept draft or None to draft it here) the draft and the stages.

        Args:
            crops: (B, S, S, 3) uint8.
            holes: (B, S, S) bool, True = hole.
            precision: The network's arithmetic, one of `precision.PRECISIONS`.
            drafts: None: the network alone; else one entry per frame.

        Returns:
            (B, S, S, 3) uint8, equal to `crops` wherever `holes` is False.
        """
        param = next(self.network.parameters())
        x = frames_to_tensor(crops, param.device)  # (B, 3, S, S) in [-1, 1], float32
        m = torch.from_numpy(holes[:, None]).to(x)  # (B, 1, S, S)
        with torch.inference_mode():
            with network_autocast(param, precision):
                predicted = self.network(x.to(param.dtype), m.to(param.dtype))
            filled = m * predicted.float() + (1.0 - m) * x  # the one composite: the stages change only the hole
            if drafts is not None:
                draft = self.drafts(x, m, drafts)
                for stage in self.stages.values():
                    filled = stage(filled, m, draft)
        return np.where(holes[..., None], tensor_to_frames(filled), crops)

    def drafts(self, x: torch.Tensor, m: torch.Tensor, kept: Sequence[Draft | None]) -> Draft | None:
        """The draft of frames (B, 3, S, S) with holes (B, 1, S, S): the kept ones reused, the others drawn."""
        if self.draft is None:
            return None
        todo = [i for i, draft in enumerate(kept) if draft is None]
        drawn = self.draft(x[todo], m[todo]) if todo else None
        parts = [kept[i] if kept[i] is not None else Draft(drawn.face[[todo.index(i)]], drawn.trust[[todo.index(i)]])
                 for i in range(len(kept))]
        return Draft(torch.cat([p.face for p in parts]), torch.cat([p.trust for p in parts]))

    def inpaint_arrays(self, images: Sequence[np.ndarray], masks: Sequence[np.ndarray], batch_size: int = 8,
                       in_place: bool = False, face_framing: bool = True, precision: str = "auto") -> list[np.ndarray]:
        """Fill the holes of (H, W, 3) uint8 images (see `inpaint_arrays`)."""
        check_precision(precision)
        results = list(images) if in_place else [image.copy() for image in images]  # filled in place from here on
        drafts: dict[tuple[int, Frame], Draft] = {}
        plans = [self.plan(i, image, mask, face_framing, drafts) for i, (image, mask) in enumerate(zip(results, masks))]
        self.complete(results, [p for plan in plans for p in plan if p.face], batch_size, precision, drafts)
        bands = {}  # the face pass's fill in the band of each photo that has a rest pass
        for plan in plans:
            if len(plan) == 2:
                face = plan[0]
                weight = edge_weights(masks[face.index].shape, face.frame, self.config.frame_band)
                bands[face.index] = face.window, weight, results[face.index][face.window].copy()
        self.complete(results, [p for plan in plans for p in plan if not p.face], batch_size, precision, drafts)
        for i, (window, weight, face_fill) in bands.items():
            # the two fills meet without a seam: in the band the face's fill is cross-faded into the rest's, its
            # weight falling to 0 at the frame's edge (the face's features lie inside the band)
            band = masks[i][window] & (weight < 1)  # (h, w)
            filled = results[i][window]
            share = weight[band][:, None]
            filled[band] = np.rint(share * face_fill[band] + (1.0 - share) * filled[band]).astype(np.uint8)
        return results

    def _device(self) -> torch.device:
        return next(self.network.parameters()).device


def as_pipeline(model: nn.Module) -> FaceInpaintPipeline:
    """`model` itself when it is a pipeline, else the pipeline of the bare network (`FaceInpaintPipeline.around`)."""
    return model if isinstance(model, FaceInpaintPipeline) else FaceInpaintPipeline.around(model)


def predict(network: nn.Module, frames: np.ndarray, holes: np.ndarray, precision: str = "auto") -> np.ndarray:
    """A network alone on working frames (B, S, S, 3) uint8 with holes (B, S, S) bool, composited: what training
    validation scores. Returns (B, S, S, 3) uint8, equal to `frames` wherever `holes` is False."""
    return FaceInpaintPipeline(network).fill(frames, holes, precision)


def inpaint_arrays(model: "Inpainter | ClassicInpainter | FaceInpaintPipeline", images: Sequence[np.ndarray],
                   masks: Sequence[np.ndarray], batch_size: int = 8, in_place: bool = False, face_framing: bool = True,
                   precision: str = "auto") -> list[np.ndarray]:
    """Fill the holes of (H, W, 3) uint8 images: the array form of `inpaint`, and what `evaluate` scores.

    Args:
        model: A `ClassicInpainter`, a `FaceInpaintPipeline` or a bare network (run with face framing alone).
        images: (H, W, 3) uint8 each.
        masks: (H, W) bool each, True = hole; each must contain a hole pixel.
        batch_size: Crops per forward pass (crops of the same working size and kind are batched).
        in_place: Fill the (writable) images themselves instead of copies (`inpaint` does, for large photos).
        face_framing: Complete a hole on a face in a photo larger than the working frame in the face's
            training-style frame; False: always in a crop around the hole.
        precision: A neural model's arithmetic, one of `precision.PRECISIONS`.

    Returns:
        (H, W, 3) uint8 each, equal to the input outside the mask.
    """
    check_precision(precision)
    if isinstance(model, ClassicInpainter):
        filled = []
        for image, mask in zip(images, masks):
            # cv2.inpaint reads `radius` pixels around the hole: on this window it gives the whole frame's result
            top, left, bottom, right = hole_window(mask, 2 * model.radius + 2)
            patch = model(np.ascontiguousarray(image[top:bottom, left:right]), mask[top:bottom, left:right])
            filled.append(fill_hole(image, patch, mask, left, top, in_place))
        return filled
    return as_pipeline(model).inpaint_arrays(images, masks, batch_size, in_place, face_framing, precision)


def inpaint(
    image: ImageSource | Sequence[ImageSource],
    mask: ImageSource | Sequence[ImageSource],
    model: "FaceInpaintPipeline | Inpainter | ClassicInpainter | str | os.PathLike | None" = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    batch_size: int = 8,
    face_framing: bool = True,
    precision: str = "auto",
) -> Image.Image | list[Image.Image]:
    """Fill the masked region of a face photo (or of a list of them).

    Args:
        image: A photo (path, PIL image or array; see `images.load_image`) or a list of them.
        mask: The hole mask (white / non-zero = hole; see `images.load_mask`), or a list matching `image`.
        model: Anything `load_model` accepts: a pipeline or network, "telea" / "ns", a shipped checkpoint name, a
            save_pretrained folder or a Hub repo id. None: the shipped default, or Telea with a warning.
        device: Device to run a neural model on (default: where the model is; CPU for loaded checkpoints).
        dtype: Floating dtype for a neural model (default: keep the model's).
        batch_size: Crops per forward pass when inpainting a list.
        face_framing: A neural model completes a hole on a face in a photo larger than its working frame in a crop
            that frames the face as its training faces were framed (see `inpaint_arrays`).
        precision: A float32 network's arithmetic: "auto" (bf16 autocast on hardware with bf16 units, see
            `precision.bf16_is_fast`; else float32), "fp32" or "bf16".

    Returns:
        An RGB PIL image the size of the input (a list of them for list input), carrying the input's RGB ICC
        profile in `info["icc_profile"]`. Pixels outside the mask equal the input's 8-bit RGB pixels exactly.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    check_precision(precision)
    single = not isinstance(image, (list, tuple))
    sources = [image] if single else list(image)
    mask_sources = [mask] if single else list(mask)
    if isinstance(mask, (list, tuple)) == single or len(mask_sources) != len(sources):
        raise ValueError("pass one image and one mask, or two lists of the same length")
    inpainter = load_model(model, device=device, dtype=dtype)
    # Photos are held once, as arrays (the PIL copies are dropped as soon as they are converted), and each result
    # becomes an image as its array is released: a 12000² photo then peaks at about three copies, not seven.
    frames, profiles, masks = [], [], []
    for src, mask_src in zip(sources, mask_sources):
        picture = load_image(src)
        profiles.append(picture.info.get("icc_profile"))
        frames.append(image_array(picture))  # (H, W, 3) uint8, ours: filled in place
        del picture
        masks.append(load_mask(mask_src, (frames[-1].shape[1], frames[-1].shape[0])))
    filled = inpaint_arrays(inpainter, frames, masks, batch_size, in_place=True, face_framing=face_framing,
                            precision=precision)
    del frames, masks
    results = []
    while filled:
        result = Image.fromarray(filled.pop(0))
        if profiles[len(results)]:
            result.info["icc_profile"] = profiles[len(results)]
        results.append(result)
    return results[0] if single else results
