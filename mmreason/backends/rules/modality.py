"""The modality/plane family: one view, and the study's modality and plane."""

from __future__ import annotations

import re

from mmreason.backends.rules.common import cannot, failed
from mmreason.backends.rules.state import State
from mmreason.backends.rules.turn import Action, Finding


#: how a question names each modality
_NAMED = {"CT": re.compile(r"\bct\b|computed tomograph", re.I), "MR": re.compile(r"\bmri?\b|magnetic resonance", re.I),
          "XR": re.compile(r"x-?ray|radiograph", re.I)}


def plan_modality(state: State) -> Action:
    r = state.results
    vol = state.volumes[0]
    if state.q.plane and not state.q.modality and not vol.is_2d and vol.orientation_assumed:
        return cannot("the volume's orientation is assumed (no trusted header), so the plane its slices were "
                      "taken in is not known")
    if not r:
        args = {} if not vol.is_2d else {"plane": "axial", "mode": "slice"}
        return Action("I will open the image to check its type and plane.", "view", args)
    if stop := failed(state):
        return stop
    names = {"CT": "a CT scan", "MR": "an MRI", "XR": "an X-ray (radiograph)", "US": "an ultrasound image",
             "PT": "a PET scan"}
    what = names.get(vol.modality, f"a {vol.modality} image")
    view = vol.view
    if vol.is_2d:
        plane = {"lateral": f"a lateral or oblique projection ({vol.view_source})",
                 "decubitus": f"a decubitus projection, the patient lying on one side ({vol.view_source})",
                 "frontal": f"a frontal (coronal-plane) projection ({vol.view_source})",
                 }.get(view or "", "a frontal (coronal-plane) projection, as chest films usually are: no view "
                                   "position is recorded" if vol.modality == "XR" else "a single 2-D image")
        kind = "2-D"
    else:
        plane = "axial (the volume is shown in axial, coronal and sagittal planes)"
        kind = "3-D volume"
    text = f"This is {what}, {kind}; plane: {plane} [{r[0].evidence_id}]."
    modality_word = {"CT": "ct", "MR": "mri", "XR": "x-ray"}.get(vol.modality, vol.modality.lower())
    plane_word = "axial" if not vol.is_2d else "lateral" if view == "lateral" else "frontal"
    asks_plane = state.q.plane and not state.q.modality
    label = f"{plane_word} plane" if asks_plane else what[what.index(" ") + 1:]
    return Action("The study header and the view give modality and plane.", answer=text,
                  finding=Finding([r[0].evidence_id] if r[0].evidence_id else [], label=label,
                                  present=_is_named(state.question, vol.modality),
                                  words=[modality_word, vol.modality.lower(),
                                         "axial" if not vol.is_2d else "lateral" if view == "lateral" else "pa"]))



def _is_named(question: str, modality: str) -> bool | None:
    """Whether the one modality ``question`` names ("Is this an MRI?") is ``modality``; None when it
    names none or several ("CT or MRI?")."""
    named = [m for m, rx in _NAMED.items() if rx.search(question)]
    return named[0] == modality if len(named) == 1 else None
