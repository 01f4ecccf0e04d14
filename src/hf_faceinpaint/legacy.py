"""Folders written before the face stages became a pipeline (msl-face v1-v12, `train.py` runs up to 2026-12-07): one
flat `MSLConfig` that also held the face stack's settings, and one state dict with the prior under `prior.` and the
eye bank under `exemplars.`. `pipeline_config` and `pipeline_state` read them as today's `FaceInpaintPipeline`;
`network_config` drops the face fields of a network without a face stack. Nothing here imports a model.
"""

from __future__ import annotations

from typing import Any

# The face stack's fields of the old MSLConfig, with the defaults they had (a config written before a field existed
# lacks it), and the old network-only fields that no longer exist.
OLD_FACE_FIELDS: dict[str, Any] = {
    "prior_components": 0, "prior_size": 64, "prior_ridge": 1.5, "prior_input": True, "prior_blend": 0.0,
    "prior_blend_ramp": 0.08, "prior_detail": 1.0, "prior_residual_full": 0.25, "prior_residual_none": 0.3,
    "prior_refiner_width": 0, "prior_refiner_fine": False, "prior_refiner_fine_blocks": 0,
    "mirror_detail": 0.0, "mirror_detail_ramp": 0.03125, "mirror_axis_trust": 0.0,
    "exemplar_count": 0, "exemplar_detail": 0.015625, "exemplar_ramp": 0.03125, "exemplar_contrast": 0.0,
    "stem_stride": 1,
}


def is_legacy_pipeline(values: dict[str, Any]) -> bool:
    """Whether a `config.json` is an old flat MSLConfig with a face stack (a prior, mirror detail or an eye bank)."""
    old = {**OLD_FACE_FIELDS, **{k: v for k, v in values.items() if k in OLD_FACE_FIELDS}}
    return values.get("_class_name", "MSLInpainter") == "MSLInpainter" and bool(
        old["prior_components"] or old["mirror_detail"] or old["exemplar_count"])


def _old(values: dict[str, Any]) -> dict[str, Any]:
    """The old face fields of `values`, defaults filled in, after refusing the features that were removed."""
    old = {**OLD_FACE_FIELDS, **{k: v for k, v in values.items() if k in OLD_FACE_FIELDS}}
    removed = [(old["stem_stride"] != 1, "a stride-2 stem (msl-prior-128)"),
               (old["prior_components"] and old["prior_input"], "the face prior as a network input (msl-prior-128)"),
               (old["prior_refiner_fine_blocks"], "residual blocks at the refiner's fine level")]
    for bad, what in removed:
        if bad:
            raise ValueError(f"this checkpoint uses {what}, which did not ship and is no longer supported")
    return old


def network_config(values: dict[str, Any]) -> dict[str, Any]:
    """An MSLInpainter `config.json` without the old face fields (which must be off: else it is a pipeline)."""
    if not any(key in values for key in OLD_FACE_FIELDS):
        return values
    if is_legacy_pipeline(values):
        raise ValueError("this folder holds msl-face's face stack as well as its network: load it with "
                         "hf_faceinpaint.load_model or FaceInpaintPipeline.from_pretrained")
    _old(values)
    return {key: value for key, value in values.items() if key not in OLD_FACE_FIELDS}


def pipeline_config(values: dict[str, Any]) -> dict[str, Any]:
    """A `FaceInpaintPipeline` config.json from an old flat MSLConfig with a face stack."""
    old = _old(values)
    network = {key: value for key, value in values.items() if key not in OLD_FACE_FIELDS}
    stages: dict[str, Any] = {}
    if old["prior_components"] and old["prior_blend"]:
        stages["structure"] = {"_class_name": "StructureTransfer", "sigma": old["prior_blend"],
                               "ramp": old["prior_blend_ramp"], "detail": old["prior_detail"]}
    if old["exemplar_count"]:
        stages["exemplars"] = {"_class_name": "ExemplarDetail", "count": old["exemplar_count"],
                               "sigma": old["exemplar_detail"], "ramp": old["exemplar_ramp"],
                               "contrast": old["exemplar_contrast"]}
    if old["mirror_detail"]:
        stages["mirror"] = {"_class_name": "MirrorDetail", "sigma": old["mirror_detail"],
                            "ramp": old["mirror_detail_ramp"], "axis_trust": old["mirror_axis_trust"]}
    draft = None
    if old["prior_components"]:
        draft = {"_class_name": "GappyPCADraft", "size": old["prior_size"], "components": old["prior_components"],
                 "ridge": old["prior_ridge"], "refiner_width": old["prior_refiner_width"],
                 "refiner_fine": old["prior_refiner_fine"], "residual_full": old["prior_residual_full"],
                 "residual_none": old["prior_residual_none"]}
    return {"_class_name": "FaceInpaintPipeline", "network": {**network, "_class_name": "MSLInpainter"},
            "framer": {"_class_name": "CascadeFramer"}, "draft": draft, "stages": stages}


def pipeline_state(state: dict[str, Any]) -> dict[str, Any]:
    """An old flat state dict's keys as the pipeline's: the prior's under `draft.` (its PCA under `draft.pca.`), the
    eye bank's under `stages.exemplars.`, the rest (the network's) under `network.`."""
    def renamed(key: str) -> str:
        if key.startswith("prior.refiner."):
            return "draft." + key.removeprefix("prior.")
        if key.startswith("prior."):
            return "draft.pca." + key.removeprefix("prior.")
        if key.startswith("exemplars."):
            return "stages." + key
        return "network." + key

    return {renamed(key): value for key, value in state.items()}


def is_legacy_state(state: dict[str, Any]) -> bool:
    """Whether a pipeline's state dict has the old flat keys (no `network.` prefix)."""
    return not any(key.startswith("network.") for key in state)
