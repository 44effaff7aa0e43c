"""The synthetic grounded benchmark: phantom studies whose every answer and step is checkable.

`make_synthetic(folder, n, seed)` writes ``n`` questions about phantom studies
(`imaging.phantoms`), deterministically from ``seed``: the same (n, seed) gives byte-identical
files, and the first k cases of a larger set equal the set made with ``n = k``. Studies cycle
through six kinds; each study asks one to three questions (questions about one study are still
separate cases, each answered from a fresh context):

==============  =========================================  ============================================
study kind      images (volume names)                      questions (answer type)
==============  =========================================  ============================================
chest_ct        ``ct``                                     nodule present? (closed); which lung
                                                           (choice); diameter in mm (numeric)
abdomen_ct      ``ct``                                     liver lesion present? (closed); lesion
                                                           volume in mL (numeric); spleen volume (numeric)
followup        ``prior``, ``current`` (chest CT)          did the nodule grow? (closed); diameter
                                                           change in mm (numeric, signed)
brain_mr        ``t1``, ``t2``, ``flair`` in seeded order  which sequence shows the lesion brightest
                (the questions name the order)             (choice); lesion side (choice, asked only
                                                           when the lesion is clear of the midline)
chest_xray      ``xr``                                     cardiothoracic ratio (numeric); cardiomegaly
                                                           (closed, asked when the ratio is at least
                                                           `CTR_MARGIN` from 0.5)
ct_xray         ``ct``, ``xr`` (the CT's projection)       cardiothoracic ratio on the radiograph (numeric)
==============  =========================================  ============================================

Files: ``studies/<study>/<volume>.nii.gz`` (CT rounded to integer HU and stored as int16),
ground-truth masks ``studies/<study>/labels/<label>.nii.gz`` on the first image's grid, and
``synthetic.json``: ``{"format": "mmreason-synthetic", "version", "seed", "n", "spacing",
"cases": [...]}`` where each case has ``id``, ``study``, ``kind``, ``family``, ``images``
(relative paths), ``question``, ``answer``, ``answer_type``, ``options``, ``unit``,
``tolerance`` (relative), ``boxes`` (voxel bounds, half-open, per image), ``masks`` (label ->
relative path), ``reference_steps`` (``{"tool", "arguments", "volume", "expect"}``, ``expect``
in the vocabulary of `mmreason.verifiers.metrics`: ``nonempty``, ``laterality`` or a measurement
name such as ``longest_diameter_mm`` / ``volume_ml``; ``volume`` names the image the step is
about) and ``truth`` (the phantom's ground truth for the question). `benchmarks.datasets.synthetic` reads it back.

Numeric tolerances are stored relative (``case.tolerance``) but chosen per question family, each
for a stated reason (`TOLERANCES`): a nodule diameter within one in-plane voxel (the resolution of
a voxel-based measurement); a diameter change within 1 mm, below the 1.5 mm Lung-RADS threshold for
real growth, so an answer within tolerance never turns a stable nodule into a growing one; a
lesion volume within 15% (5% in diameter) and a spleen volume within 10%; a cardiothoracic ratio
within `CTR_MARGIN` (0.02) absolute, so a ratio within tolerance gives the same cardiomegaly answer
as the reference for every case where that question is asked. Version 3 tightened them (version
2 allowed 25% on lesion volumes, 10% on the ratio and one voxel on a diameter change, which let
a change of -3 mm pass against -4.2 mm).

The phantoms vary the patient with the seed (heart, spleen, liver and kidney sizes; see
`imaging.phantoms`), so no answer is the same for every study of a kind. Version 2 (this one):
organ sizes vary, the MR questions name the sequence of each volume, the MR side question is
asked only when the lesion lies in one hemisphere, and chest radiographs also ask about
cardiomegaly.
"""

from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from imaging.phantoms import NoduleSpec, Phantom, abdomen_ct, brain_mr, chest_ct, chest_xray, followup_pair
from imaging.volume import Volume

FORMAT = "mmreason-synthetic"
VERSION = 3
KINDS = ("chest_ct", "abdomen_ct", "followup", "brain_mr", "chest_xray", "ct_xray")
#: voxel spacing (z, y, x) mm of the CT/MR studies; X-rays use 1 mm pixels
SPACING = (3.0, 2.0, 2.0)
MR_SPACING = (3.0, 2.0, 2.0)
#: cardiomegaly (CTR > 0.5) is asked only when the true ratio is at least this far from 0.5
CTR_MARGIN = 0.02
SEQUENCES = ("T1", "T2", "FLAIR")
#: phantom volume names -> the sequence names the questions use
SEQUENCE_NAMES = {"t1": "T1", "t2": "T2", "flair": "FLAIR"}


@dataclass
class Study:
    """One written study: its folder (relative), image paths (relative) and masks on image 0."""

    name: str
    kind: str
    images: list[str]
    masks: dict[str, str]


def _bounds(mask: np.ndarray) -> tuple[list[int], list[int]] | None:
    """Half-open voxel bounds (z, y, x) of a boolean mask, None when empty."""
    idx = np.nonzero(mask)
    if not idx[0].size:
        return None
    return [int(i.min()) for i in idx], [int(i.max()) + 1 for i in idx]


def _box(label: str, image: int, mask: np.ndarray) -> list[dict[str, Any]]:
    b = _bounds(mask)
    return [] if b is None else [{"label": label, "image": image, "zyx_min": b[0], "zyx_max": b[1]}]


@dataclass(frozen=True)
class Tolerance:
    """The allowed error of one numeric question family and why it is that large.

    ``absolute`` (in the answer's unit) is turned into the relative tolerance a `Case` stores by
    dividing by the true value; ``relative`` is used as is; the larger of the two applies.
    """

    absolute: float = 0.0
    relative: float = 0.0
    reason: str = ""

    def for_value(self, value: float) -> float:
        # rounded up: a rounded-down relative tolerance would shrink the absolute bound below its reason
        return math.ceil(max(self.relative, self.absolute / max(abs(value), 1e-6)) * 1e4) / 1e4


#: numeric tolerance per question family (see the module docstring)
TOLERANCES: dict[str, Tolerance] = {
    "nodule_size": Tolerance(absolute=SPACING[2], reason="a diameter read off a voxel mask is exact to one "
                             "in-plane voxel at best"),
    "growth_mm": Tolerance(absolute=1.0, reason="below the 1.5 mm Lung-RADS threshold of real growth: an answer "
                           "within tolerance cannot turn a stable nodule into a growing one or back"),
    "lesion_volume": Tolerance(relative=0.15, reason="15% in volume is 5% in diameter, finer than the 25% "
                               "volume change that counts as progression in volumetry"),
    "organ_volume": Tolerance(relative=0.10, reason="the inter-observer spread of manual spleen volumetry"),
    "ctr": Tolerance(absolute=CTR_MARGIN, reason="equal to CTR_MARGIN: a ratio within tolerance gives the "
                     "reference's cardiomegaly answer wherever that question is asked"),
}
TOLERANCES["ctr_from_ct"] = TOLERANCES["ctr"]


def _as_stored(volume: Volume) -> Volume:
    """Intensities rounded to integers (HU for CT, which the writer then stores as int16; MR and
    X-ray are on a 0..1000 scale): the files shrink by half or more, far below the noise level."""
    return Volume(np.round(volume.data), volume.spacing, volume.affine, volume.modality, dict(volume.metadata),
                  volume.name)


class _Writer:
    """Writes the studies under ``root/studies`` with NIfTI through `imaging.writers`."""

    def __init__(self, root: Path) -> None:
        from imaging import writers

        self.root = root
        self.writers = writers

    def study(self, name: str, kind: str, volumes: dict[str, Volume], labels: dict[str, np.ndarray],
              reference: Volume) -> Study:
        folder = self.root / "studies" / name
        (folder / "labels").mkdir(parents=True, exist_ok=True)
        images = []
        for key, vol in volumes.items():
            path = folder / f"{key}.nii.gz"
            self.writers.write_nifti(_as_stored(vol), path)
            images.append(path.relative_to(self.root).as_posix())
        masks = {}
        for label, mask in labels.items():
            path = folder / "labels" / f"{label}.nii.gz"
            self.writers.write_nifti(Volume(mask.astype(np.float32), reference.spacing, reference.affine,
                                            reference.modality, name=label), path)
            masks[label] = path.relative_to(self.root).as_posix()
        return Study(name, kind, images, masks)


def _case(study: Study, family: str, question: str, answer: str, answer_type: str, *,
          options: list[str] | None = None, unit: str | None = None, tolerance: float | None = None,
          boxes: list[dict[str, Any]] | None = None, masks: list[str] | None = None,
          steps: list[dict[str, Any]] | None = None, truth: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "study": study.name, "kind": study.kind, "family": family, "images": list(study.images),
        "question": question, "answer": answer, "answer_type": answer_type, "options": options,
        "unit": unit, "tolerance": tolerance, "boxes": boxes or [],
        "masks": {k: study.masks[k] for k in (masks or []) if k in study.masks},
        "reference_steps": steps or [], "truth": truth or {},
    }


def _step(tool: str, arguments: dict[str, Any], expect: dict[str, Any], volume: str = "0") -> dict[str, Any]:
    return {"tool": tool, "arguments": arguments, "volume": volume, "expect": expect}


def _letter(options: list[str], value: str) -> str:
    return chr(ord("A") + options.index(value))


# ----------------------------------------------------------------------------- study kinds

def _chest_ct(w: _Writer, name: str, rng: np.random.Generator, pseed: int) -> list[dict[str, Any]]:
    present = rng.random() >= 0.3
    diameter = float(np.round(rng.uniform(6.0, 16.0) * 2) / 2)
    side = str(rng.choice(["right", "left"]))
    ph = chest_ct(seed=pseed, spacing=SPACING, nodules=[NoduleSpec(diameter_mm=diameter, side=side)] if present else [])
    labels = {"lungs": ph.labels["lungs"]} | ({"nodule": ph.labels["nodule_1"]} if present else {})
    st = w.study(name, "chest_ct", ph.volumes, labels, ph.volume)
    nod = ph.truth["nodules"][0] if present else None
    seg = _step("segment", {"target": "nodule"}, {"nonempty": present} | ({"laterality": side} if present else {}))
    boxes = _box("nodule", 0, ph.labels["nodule_1"]) if present else []
    cases = [_case(st, "nodule_presence", "Is there a lung nodule on this chest CT?", "yes" if present else "no",
                   "closed", boxes=boxes, masks=["nodule"], steps=[seg], truth={"nodule": nod})]
    if present:
        options = ["right lung", "left lung"]
        cases.append(_case(st, "nodule_side", "In which lung is the nodule?", _letter(options, f"{side} lung"),
                           "choice", options=options, boxes=boxes, masks=["nodule"], steps=[seg],
                           truth={"side": side, "nodule": nod}))
        tol = TOLERANCES["nodule_size"].for_value(nod["diameter_mm"])
        measure = _step("measure", {}, {"longest_diameter_mm": nod["diameter_mm"]})
        cases.append(_case(st, "nodule_size", "What is the diameter of the lung nodule in mm?",
                           f"{nod['diameter_mm']:g} mm", "numeric", unit="mm", tolerance=tol, boxes=boxes,
                           masks=["nodule"], steps=[seg, measure], truth={"nodule": nod}))
    return cases


def _abdomen_ct(w: _Writer, name: str, rng: np.random.Generator, pseed: int) -> list[dict[str, Any]]:
    present = rng.random() >= 0.3
    diameter = float(np.round(rng.uniform(14.0, 30.0))) if present else 0.0
    ph = abdomen_ct(seed=pseed, spacing=SPACING, lesion_diameter_mm=diameter)
    labels = {"liver": ph.labels["liver"], "spleen": ph.labels["spleen"]}
    if present:
        labels["liver_lesion"] = ph.labels["liver_lesion"]
    st = w.study(name, "abdomen_ct", ph.volumes, labels, ph.volume)
    lesion = ph.truth["liver_lesion"]
    boxes = _box("liver_lesion", 0, ph.labels["liver_lesion"]) if present else []
    seg = _step("segment", {"target": "lesion"}, {"nonempty": present})
    cases = [_case(st, "liver_lesion_presence", "Is there a focal lesion in the liver on this abdominal CT?",
                   "yes" if present else "no", "closed", boxes=boxes, masks=["liver_lesion", "liver"], steps=[seg],
                   truth={"liver_lesion": lesion})]
    if present:
        ml = lesion["volume_mm3_voxels"] / 1000.0
        cases.append(_case(st, "lesion_volume", "What is the volume of the liver lesion in mL?", f"{ml:.2f} mL",
                           "numeric", unit="mL", tolerance=TOLERANCES["lesion_volume"].relative, boxes=boxes, masks=["liver_lesion"],
                           steps=[seg, _step("measure", {}, {"volume_ml": round(ml, 2)})],
                           truth={"liver_lesion": lesion}))
    spleen_ml = ph.truth["spleen_volume_ml"]
    cases.append(_case(st, "organ_volume", "What is the volume of the spleen in mL?", f"{spleen_ml:.1f} mL", "numeric",
                       unit="mL", tolerance=TOLERANCES["organ_volume"].relative, boxes=_box("spleen", 0, ph.labels["spleen"]), masks=["spleen"],
                       steps=[_step("segment", {"target": "spleen"}, {"nonempty": True}),
                              _step("measure", {}, {"volume_ml": spleen_ml})],
                       truth={"spleen_volume_ml": spleen_ml}))
    return cases


def _followup(w: _Writer, name: str, rng: np.random.Generator, pseed: int) -> list[dict[str, Any]]:
    d0 = float(np.round(rng.uniform(6.0, 12.0) * 2) / 2)
    grew = rng.random() < 0.6
    change = float(np.round(rng.uniform(4.0, 8.0) * 2) / 2)
    d1 = d0 + change if grew else max(4.0, d0 - change)
    side = str(rng.choice(["right", "left"]))
    prior, current = followup_pair(seed=pseed, diameter_mm=(d0, d1), spacing=SPACING, side=side)
    st = w.study(name, "followup", {"prior": prior.volume, "current": current.volume},
                 {"nodule_prior": prior.labels["nodule_1"]}, prior.volume)
    boxes = _box("nodule", 0, prior.labels["nodule_1"]) + _box("nodule", 1, current.labels["nodule_1"])
    growth = round(d1 - d0, 3)
    steps = [_step("segment", {"target": "nodule"}, {"nonempty": True, "laterality": side}, volume="0"),
             _step("measure", {}, {"longest_diameter_mm": d0}, volume="0"),
             _step("segment", {"target": "nodule"}, {"nonempty": True, "laterality": side}, volume="1"),
             _step("measure", {}, {"longest_diameter_mm": d1}, volume="1")]
    truth = {"prior_diameter_mm": d0, "current_diameter_mm": d1, "growth_mm": growth,
             "growth_pct": current.truth["growth_pct"], "side": side}
    intro = "Volume 0 is the prior chest CT and volume 1 the current one."
    tol = TOLERANCES["growth_mm"].for_value(growth)
    return [
        _case(st, "growth", f"{intro} Did the lung nodule grow between the prior and the current scan?",
              "yes" if grew else "no", "closed", boxes=boxes, masks=["nodule_prior"], steps=steps, truth=truth),
        _case(st, "growth_mm", f"{intro} By how many mm did the nodule diameter change from the prior to the "
              "current scan (negative if it shrank)?", f"{growth:g} mm", "numeric", unit="mm", tolerance=tol,
              boxes=boxes, masks=["nodule_prior"], steps=steps, truth=truth),
    ]


def _brain_mr(w: _Writer, name: str, rng: np.random.Generator, pseed: int) -> list[dict[str, Any]]:
    diameter = float(np.round(rng.uniform(8.0, 18.0)))
    ph = brain_mr(seed=pseed, spacing=MR_SPACING, lesion_diameter_mm=diameter)
    order = [str(k) for k in rng.permutation(list(ph.volumes))]
    volumes = {k: ph.volumes[k] for k in order}
    lesion, brain = ph.labels["lesion"], ph.labels["brain"] & ~ph.labels["lesion"]
    contrast = {k: float(v.data[lesion].mean() / v.data[brain].mean()) for k, v in ph.volumes.items()}
    st = w.study(name, "brain_mr", volumes, {"lesion": lesion}, ph.volume)
    boxes = [b for i in range(len(order)) for b in _box("lesion", i, lesion)]
    truth = {"lesion": ph.truth["lesion"], "contrast_to_brain": {k: round(c, 3) for k, c in contrast.items()},
             "volume_order": order}
    names = [SEQUENCE_NAMES[k] for k in order]
    intro = f"Volume 0 is the {names[0]}, volume 1 the {names[1]} and volume 2 the {names[2]} sequence of one brain MR."
    cases = []
    ranked = sorted(contrast, key=contrast.get, reverse=True)
    if contrast[ranked[0]] >= 1.05 * contrast[ranked[1]]:  # ask only when one sequence clearly wins
        best = SEQUENCE_NAMES[ranked[0]]
        steps = [_step("segment", {"target": "lesion"}, {"nonempty": True}, volume=str(i)) for i in range(len(order))]
        cases.append(_case(st, "mr_sequence", f"{intro} On which sequence is the lesion brightest relative to the "
                           "brain?", _letter(list(SEQUENCES), best), "choice", options=list(SEQUENCES), boxes=boxes,
                           masks=["lesion"], steps=steps, truth=truth))
    side, center_x = ph.truth["lesion"]["side"], ph.truth["lesion"]["center_mm"][0]
    # ask the side only when the whole lesion lies in one hemisphere (one in-plane voxel clear of the midline)
    if abs(center_x) >= diameter / 2 + MR_SPACING[2]:
        options = ["right", "left"]
        cases.append(_case(st, "mr_lesion_side", f"{intro} On which side of the brain (the patient's) is the lesion?",
                           _letter(options, side), "choice", options=options, boxes=boxes, masks=["lesion"],
                           steps=[_step("segment", {"target": "lesion"}, {"nonempty": True, "laterality": side})],
                           truth=truth))
    return cases


def _ctr_case(st: Study, ph: Phantom, image: int, question: str, family: str) -> dict[str, Any]:
    ctr = float(ph.truth["ctr"])
    # the widths are spans between structures, not measurements of one mask: no expected value
    steps = [_step("segment", {"target": "lungs"}, {"nonempty": True}, volume=str(image)),
             _step("measure", {}, {}, volume=str(image)), _step("measure", {}, {}, volume=str(image))]
    return _case(st, family, question, f"{ctr:.3f}", "numeric", unit="ratio",
                 tolerance=TOLERANCES[family].for_value(ctr) if family in TOLERANCES else None,
                 boxes=_box("heart", image, ph.labels["heart"]) + _box("thorax", image, ph.labels["thorax"]),
                 masks=["heart", "thorax"] if image == 0 else ["heart_ct"], steps=steps,
                 truth={k: ph.truth[k] for k in ("heart_width_mm", "thorax_width_mm", "ctr")})


def _chest_xray(w: _Writer, name: str, rng: np.random.Generator, pseed: int) -> list[dict[str, Any]]:
    ph = chest_xray(seed=pseed)
    labels = {"heart": ph.labels["heart"], "thorax": ph.labels["thorax"]}
    st = w.study(name, "chest_xray", ph.volumes, labels, ph.volume)
    cases = [_ctr_case(st, ph, 0, "What is the cardiothoracic ratio on this chest radiograph?", "ctr")]
    ctr = float(ph.truth["ctr"])
    if abs(ctr - 0.5) >= CTR_MARGIN:
        case = _ctr_case(st, ph, 0, "Is there cardiomegaly (a cardiothoracic ratio above 0.5) on this chest "
                         "radiograph?", "cardiomegaly")
        cases.append(case | {"answer": "yes" if ctr > 0.5 else "no", "answer_type": "closed", "unit": None,
                             "tolerance": None})
    return cases


def _ct_xray(w: _Writer, name: str, rng: np.random.Generator, pseed: int) -> list[dict[str, Any]]:
    ct = chest_ct(seed=pseed, spacing=SPACING, nodules=[])
    xr = chest_xray(seed=pseed)
    st = w.study(name, "ct_xray", {"ct": ct.volume, "xr": xr.volume}, {"heart_ct": ct.labels["heart"]}, ct.volume)
    return [_ctr_case(st, xr, 1, "Volume 0 is a chest CT and volume 1 a radiograph projected from it. "
                      "What is the cardiothoracic ratio on the radiograph?", "ctr_from_ct")]


BUILDERS: dict[str, Callable[[_Writer, str, np.random.Generator, int], list[dict[str, Any]]]] = {
    "chest_ct": _chest_ct, "abdomen_ct": _abdomen_ct, "followup": _followup, "brain_mr": _brain_mr,
    "chest_xray": _chest_xray, "ct_xray": _ct_xray,
}


def make_synthetic(folder: Path, n: int = 200, seed: int = 0, progress: bool = False) -> Path:
    """Write ``n`` synthetic cases under ``folder``; returns the path of ``synthetic.json``.

    Study ``j`` is of kind ``KINDS[j % 6]`` and draws its parameters from
    ``numpy.random.default_rng([seed, j])``, so sets are prefixes of each other.
    """
    if n < 1:
        raise ValueError(f"n must be at least 1, got {n}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    writer = _Writer(folder)
    cases: list[dict[str, Any]] = []
    j = 0
    while len(cases) < n:
        kind = KINDS[j % len(KINDS)]
        rng = np.random.default_rng([seed, j])
        pseed = int(rng.integers(0, 2**31 - 1))
        for case in BUILDERS[kind](writer, f"s{j:04d}_{kind}", rng, pseed):
            if len(cases) < n:
                cases.append({"id": f"syn-{len(cases):04d}"} | case)
        j += 1
        if progress:
            print(f"synthetic: {len(cases)}/{n} cases ({j} studies)", file=sys.stderr, end="\r")
    if progress:
        print(file=sys.stderr)
    doc = {"format": FORMAT, "version": VERSION, "seed": seed, "n": n, "spacing": list(SPACING),
           "mr_spacing": list(MR_SPACING), "kinds": list(KINDS), "cases": cases}
    path = folder / "synthetic.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, default=float) + "\n")
    tmp.replace(path)  # written last: a folder with synthetic.json is complete
    return path
