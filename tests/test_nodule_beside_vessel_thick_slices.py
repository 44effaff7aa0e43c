"""A nodule beside a vessel as thick as itself on thick slices (`grounding.segmenters.lesions.lung_nodules`).

On 4-5 mm slices a 6-10 mm juxtavascular nodule was the largest miss class of the CT nodule search
(held-out stress: 8 of 11 missed). It holds no ball as wide as two slices, which the opening path asks
there (the haze of vessels crossing thick slices obliquely leaves narrower balls at every junction),
and no wider than the vessel it touches, it fails the widening test too (stress tuning seeds 24, 168,
183 forced to 4-5 mm slices: 9-10 mm nodules on 5-7 mm vessels). It is a bulge on a tube: its centre
lies off the vessel's axis and the vessel passes it by, a little narrower than it. It is found now, with
a doubt; a vessel alone crossing the slices obliquely, two vessels crossing and a branching are not.
"""

from __future__ import annotations

from test_nodule_caps_and_enhanced_vessels import SOFT_HU, _enhanced

from grounding.segmenters.lesions import lung_nodules

SPACING = (5.0, 0.8, 0.8)
SHAPE = (9, 64, 64)
CENTRE = (22.5, 25.6, 25.6)
DOUBT = "told from it by lying off the vessel's axis"


def _search(vessels, nodule=None):
    hu, lungs, truth = _enhanced(vessels, nodule, vessel_hu=SOFT_HU, spacing=SPACING, shape=SHAPE)
    return lung_nodules(hu, lungs, SPACING), truth


def test_a_nodule_beside_a_vessel_as_thick_as_itself_on_thick_slices_is_found_and_hedged():
    """A 9 mm nodule beside a 6 mm vessel, as the stress generator places it (its centre its radius and
    half the vessel's off the vessel's axis), on 5 mm slices."""
    radius, diameter = 3.0, 9.0
    beside = (CENTRE[0] + 1.5, CENTRE[1] + diameter / 2 + 0.5 * radius, CENTRE[2])
    found, truth = _search([(CENTRE, (0.0, 0.0, 1.0), radius)], (beside, diameter))
    assert (found.mask & truth).sum() >= 0.5 * truth.sum()
    assert found.mask.sum() <= 1.5 * truth.sum()  # the nodule, not the vessel
    assert any(DOUBT in d for d in found.doubts)


def test_a_vessel_crossing_thick_slices_obliquely_is_no_nodule():
    for direction in ((0.5, 0.2, 1.0), (1.0, 0.2, 0.6), (0.3, 0.0, 1.0)):
        found, _ = _search([(CENTRE, direction, 3.0)])
        assert not found.mask.any(), direction


def test_vessels_crossing_or_branching_on_thick_slices_are_no_nodule():
    crossing = [(CENTRE, (0.0, 0.0, 1.0), 3.0), (CENTRE, (0.3, 1.0, 0.2), 2.5)]
    branching = [(CENTRE, (0.0, 0.0, 1.0), 3.0), ((CENTRE[0], CENTRE[1], CENTRE[2] + 10.0), (0.2, 1.0, 1.0), 2.5)]
    for vessels in (crossing, branching):
        found, _ = _search(vessels)
        assert not found.mask.any()
