"""Failure classes of the classical abdominal organs where one structure takes another's place, each
reproduced by a construction in the test: an arterial aorta pressed against the vertebral body (it
joined the spine's bone, the aorta was read in front of it and the scan taken for plain)."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from grounding.segmenters import ClassicalSegmenter
from tests.helpers.abdomen import synthetic_abdomen
from tests.test_organ_priors_and_stripped_flair import _world, dice


def test_arterial_aorta_touching_the_spine_is_read_as_arterial():
    """The aorta (300 HU) pressed against the vertebral body: after the coarse grid's smoothing both
    are one bone component; the scan is still read as arterial and the enhanced spleen found."""
    case = synthetic_abdomen(2, "arterial")
    data = case.volume.data
    x, y, _ = _world(case.volume)
    cortex, _ = ndimage.label(data[data.shape[0] // 2] > 450)
    ring = cortex == np.argmax(np.bincount(cortex.ravel())[1:]) + 1  # the vertebral body's cortex
    xs, front = float(x[0, 0][ring.any(axis=0)].mean()), float(y[0, :, 0][ring.any(axis=1)].min())
    kidneys = case.labels["kidney_left"] | case.labels["kidney_right"]
    data[(data > 200) & (np.abs(x - xs) < 40) & (y < front) & (y > front - 60) & ~kidneys] = -90.0  # old aorta
    aorta = np.broadcast_to((x - xs - 14.0) ** 2 + (y - front + 11.0) ** 2 <= 12.0**2, data.shape)
    data[aorta & (data > -200) & (data < 450)] = 300.0
    organs = ClassicalSegmenter().organs(case.volume)
    assert organs.statistics.phase == "arterial"
    assert dice(organs.mask("spleen"), case.labels["spleen"]) >= 0.8
