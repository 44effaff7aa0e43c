"""Lung voxels lost to the wrong label, on the project's chest phantom: failure classes the stress
benchmark (`benchmarks.stress`) showed, each rebuilt here.

* a circular reconstruction field (padding of -1024 to -3024 HU beyond it) cutting the lateral chest
  wall: the lung behind the cut reached the image border through the padding and was taken for
  outside air (a lung base lost on a stress case; here most of the right lung).
"""

from __future__ import annotations

import numpy as np
import pytest

from grounding.segmenters.chest import LEFT, RIGHT, analyze_chest
from imaging.phantoms import chest_ct


def dice(a: np.ndarray, b: np.ndarray) -> float:
    return 2.0 * float(np.count_nonzero(a & b)) / max(float(a.sum() + b.sum()), 1.0)


@pytest.mark.parametrize("padding", [-1024.0, -3024.0])
def test_a_lung_the_reconstruction_circle_cuts_open_is_not_outside_air(padding):
    phantom = chest_ct(seed=0, spacing=(3.0, 2.0, 2.0), nodules=[])
    volume = phantom.volumes["ct"]
    _, ny, nx = volume.shape
    y, x = np.mgrid[0:ny, 0:nx]
    # a 140 mm circle 30 mm to the patient's left of the centre: it cuts the right chest wall (and the
    # table under the body) on every slice
    beyond = (y - ny / 2) ** 2 + (x - nx / 2 - 15) ** 2 > 70**2
    volume.data[:, beyond] = padding
    truth = {side: phantom.labels[f"lung_{side}"] & ~beyond for side in ("left", "right")}
    assert np.count_nonzero(truth["right"] & np.roll(beyond, 1, axis=1)) > 0  # the lung reaches the circle

    chest = analyze_chest(volume)
    labels = chest.full_labels(volume.data)
    assert dice(labels == RIGHT, truth["right"]) > 0.97
    assert dice(labels == LEFT, truth["left"]) > 0.97
    # the table the circle cuts stays outside the body
    body = chest.full_body(volume.data)
    assert dice(body, phantom.labels["body"] & ~beyond) > 0.97
