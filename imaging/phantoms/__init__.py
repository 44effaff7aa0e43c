"""Synthetic phantoms with exact ground truth: chest/abdomen CT, brain MR, chest X-ray, follow-up.

Anatomy is analytic in LPS millimetres (origin at the centre of the field of view) and sampled
on any voxel spacing, so measured sizes agree across spacings within sampling error. Each
builder returns a `Phantom` (volumes, boolean label masks on the same grid, JSON truth). The
seed fixes the patient, organ sizes included (the heart's in `chest_ct` and `chest_xray`, liver,
spleen and kidneys in `abdomen_ct`); ``heart_scale`` / ``organ_scales`` set them explicitly.

>>> from imaging.phantoms import chest_ct, NoduleSpec
>>> ph = chest_ct(seed=1, nodules=[NoduleSpec(diameter_mm=12.0, side="right")])
>>> ph.truth["nodules"][0]["side"]
'right'
"""

from imaging.phantoms.abdomen import OrganScales, abdomen_ct
from imaging.phantoms.brain import brain_mr
from imaging.phantoms.chest import NoduleSpec, chest_ct
from imaging.phantoms.followup import followup_pair
from imaging.phantoms.phantom import Phantom
from imaging.phantoms.shapes import PhantomError
from imaging.phantoms.xray import chest_xray

__all__ = [
    "NoduleSpec",
    "OrganScales",
    "Phantom",
    "PhantomError",
    "abdomen_ct",
    "brain_mr",
    "chest_ct",
    "chest_xray",
    "followup_pair",
]
