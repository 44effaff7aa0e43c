"""The attenuation family: the mean CT value (HU) of a lesion or an organ over its segmented mask.

The structure is found and measured as for a size question (`subject.measure_subject`), with
``measure``'s interior statistics: the mean and standard deviation over the mask, with its voxel
count, are the answer; the interior's mean (the mask less its edge layer) says whether partial
volume with the surroundings pulls the mask's mean away (a small lesion on thick slices), which is
then a caveat. Only CT has absolute units: an MR signal or a radiograph's grey level depends on the
scanner, sequence and exposure, so those questions are declined with that reason.
"""

from __future__ import annotations

import math

from mmreason.backends.rules.common import cannot
from mmreason.backends.rules.state import Result, State
from mmreason.backends.rules.subject import Measured, measure_subject
from mmreason.backends.rules.turn import Action, Finding

#: how far a CT number may be off by calibration alone: the ACR CT accreditation phantom accepts
#: water within 0 +/- 7 HU, so a mean closer than this to a value (or an option) cannot be told from it
HU_CALIBRATION = 7.0


def absolute_units(state: State) -> Action | None:
    """A refusal when the study has no absolute intensity unit (anything but CT), else None."""
    modality = state.modality() or next((v.modality for v in state.volumes), None)
    if modality == "CT":
        return None
    return cannot(f"it asks for an attenuation or mean intensity, and this is {modality or 'not a CT'}: only CT "
                  f"values are in absolute units (HU); an MR signal or a radiograph's grey level depends on the "
                  f"scanner, sequence and exposure, so its mean is no answer")


def hu_margin(meas: Result) -> float:
    """The uncertainty (HU) of a mean CT value: calibration (`HU_CALIBRATION`) plus two standard
    errors of the mean over the mask's voxels."""
    sd, n = meas.measure("std_intensity") or 0.0, meas.fact("voxels") or 1
    return HU_CALIBRATION + 2 * sd / math.sqrt(max(int(n), 1))


def partial_volume(meas: Result, name: str) -> str:
    """A caveat when the mask's edge layer pulls its mean away from its interior's by more than
    `hu_margin` (a small structure on thick slices), or it has no interior; "" otherwise."""
    mean, core = meas.measure("mean_intensity"), meas.measure("interior_mean_intensity")
    thickness = (meas.fact("spacing_mm") or [0.0])[0]
    if core is None and meas.fact("interior_voxels") == 0:
        return (f"no voxel of the {name} is clear of its edge on these {thickness:g} mm slices: every one averages "
                f"it with its surroundings (partial volume), so its mean is not its own attenuation")
    if mean is None or core is None or abs(core - mean) <= hu_margin(meas):
        return ""
    return (f"partial volume: the {name}'s interior ({meas.fact('interior_voxels')} voxels clear of its edge) has a "
            f"mean of {core:.0f} HU, against {mean:.0f} HU over the whole mask, whose edge voxels on "
            f"{thickness:g} mm slices average it with its surroundings")


def plan_attenuation(state: State) -> Action:
    """Segment the structure, measure it with its interior, answer its mean HU (CT only)."""
    if refusal := absolute_units(state):
        return refusal
    step = measure_subject(state, interior=True)
    if not isinstance(step, Measured):
        return step
    return attenuation_answer(state, step)


def attenuation_answer(state: State, subject: Measured) -> Action:
    """The mean and SD (HU) over the mask with its voxel count, from ``subject``'s measure evidence."""
    meas, found = subject.meas, subject.found
    assert found.finding is not None
    mean, sd, voxels = meas.measure("mean_intensity"), meas.measure("std_intensity"), meas.fact("voxels")
    if mean is None or sd is None or not voxels:
        return cannot("the measurement returned no mean intensity")
    dz, dy, dx = meas.fact("spacing_mm") or [1.0, 1.0, 1.0]
    cites = list(dict.fromkeys(found.finding.cites))
    text = (f"{found.answer} The mean attenuation of the {subject.name} is {mean:.1f} HU (SD {sd:.1f} HU) over the "
            f"{voxels} voxels of its mask ({dz:g} mm slices, {dy:g} x {dx:g} mm pixels) [{', '.join(cites)}].")
    caveats = (found.finding.caveat, partial_volume(meas, subject.name))
    finding = Finding(cites, mean_hu=mean, sd_hu=sd, voxels=int(voxels), tolerance=hu_margin(meas),
                      caveat="; ".join(c for c in caveats if c))
    return Action("The measurement gives the mean CT value over the mask.", answer=text, finding=finding)
