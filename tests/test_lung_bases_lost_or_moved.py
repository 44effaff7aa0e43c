"""Lung voxels lost to the wrong label: failure classes the stress benchmark (`benchmarks.stress`)
showed, each rebuilt on the project's own phantoms (`imaging.phantoms.chest_ct`, the lung-base
builder of ``test_lung_bases_gas_and_domes`` and the touching lungs below).

* a circular reconstruction field (padding of -1024 to -3024 HU beyond it) cutting the lateral chest
  wall: the lung behind the cut reached the image border through the padding and was taken for
  outside air (a lung base lost on a stress case; here most of the right lung);
* lungs touching over a junction too thin to see were split about the trachea, which runs off the
  midline (to the right, by the aortic arch), so a strip of one lung went to the other; and a septum
  one pixel wide between them fell between the coarse grid's samples, so the split missed it;
* bowel gas joined to a lung base through the diaphragm was cut off only where its 3-voxel mean is
  gas: on thick slices the lung or tissue on the next slice lifts its edges above that, and they
  stayed in the lung, while the rim taken around the cut-off part ate lung.
"""

from __future__ import annotations

import numpy as np
import pytest

from grounding.segmenters.agreement import dice
from grounding.segmenters.chest import LEFT, RIGHT, analyze_chest
from imaging.phantoms import chest_ct
from imaging.volume import Volume
from test_lung_bases_gas_and_domes import build as lung_bases


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


def touching_lungs(trachea_x_mm: float, septum_x_mm: float | None = None, nz: int = 36, dz: float = 2.5,
                   n: int = 220, dxy: float = 1.0, noise: float = 15.0,
                   seed: int = 0) -> tuple[Volume, dict[str, np.ndarray]]:
    """An axis-aligned LPS chest CT (HU): two lungs meeting over a wide anterior junction, at the
    thoracic cavity's middle (x = 0) with no septum to see or, with ``septum_x_mm``, along a septum
    one pixel wide (-250 HU: pleura and fat in partial volume) there, and a trachea (upper half of the
    slices) centred at ``trachea_x_mm`` (negative: pushed to the patient's right, as the aortic arch
    does)."""
    rng = np.random.default_rng(seed)
    x = (np.arange(n) - n / 2 + 0.5) * dxy  # + is the patient's left
    y = (np.arange(n) - n / 2 + 0.5) * dxy  # + is posterior
    yy, xx = np.meshgrid(y, x, indexing="ij")
    body = (xx / 105.0) ** 2 + (yy / 80.0) ** 2 <= 1
    plane = np.where(body, 40.0, -1000.0).astype(np.float32)
    plane[body & ((xx / 95.0) ** 2 + (yy / 70.0) ** 2 > 1)] = -100.0  # subcutaneous fat
    junction = (np.abs(xx) < 25) & (yy > -55) & (yy < -10)  # in front of the heart
    meet = 0.0 if septum_x_mm is None else x[np.argmin(np.abs(x - septum_x_mm))]
    truth = {}
    for side, sign in (("lung_left", 1), ("lung_right", -1)):
        lung = (((xx - sign * 50) / 36) ** 2 + (yy / 58) ** 2 <= 1) & (sign * xx > 4)
        truth[side] = lung | (junction & (sign * (xx - meet) > 0))
        plane[truth[side]] = -850.0
    if septum_x_mm is not None:
        plane[junction & (xx == meet)] = -250.0
    hu = np.repeat(plane[None], nz, axis=0)
    hu[nz // 2:, (xx - trachea_x_mm) ** 2 + (yy - 35) ** 2 <= 8.0**2] = -1000.0
    hu += rng.normal(0.0, noise, hu.shape).astype(np.float32)
    volume = Volume.from_array(hu, spacing=(dz, dxy, dxy), origin=(x[0], y[0], 0.0), modality="CT",
                               metadata={"modality_source": "dicom"})
    return volume, {k: np.repeat(v[None], nz, axis=0) for k, v in truth.items()}


def test_touching_lungs_are_split_at_the_cavitys_middle_not_at_a_trachea_off_the_midline():
    volume, truth = touching_lungs(trachea_x_mm=-10.0)
    labels = analyze_chest(volume).full_labels(volume.data)
    assert dice(labels == RIGHT, truth["lung_right"]) > 0.98
    assert dice(labels == LEFT, truth["lung_left"]) > 0.98


def test_the_edges_of_bowel_gas_joined_to_a_lung_base_are_cut_off_with_it():
    volume, truth = lung_bases(gas_ml=300.0, gas_top_mm=-7.0, above_mm=30.0, dz=5.0)
    left = analyze_chest(volume).full_labels(volume.data) == LEFT
    assert np.count_nonzero(left & truth["gas"]) < 0.002 * np.count_nonzero(truth["gas"])
    assert dice(left, truth["lung_left"]) > 0.998


def test_touching_lungs_are_split_along_a_septum_one_pixel_wide():
    volume, truth = touching_lungs(trachea_x_mm=-4.0, septum_x_mm=10.5)
    labels = analyze_chest(volume).full_labels(volume.data)
    assert dice(labels == RIGHT, truth["lung_right"]) > 0.99
    assert dice(labels == LEFT, truth["lung_left"]) > 0.99


def test_air_under_the_patient_the_circle_cuts_is_not_lung_behind_a_cut_chest_wall():
    """Air under the patient (between the table and the circle) often reads denser than the air
    around them (a real NSCLC CT: -930 against -1000 HU), so the circle's slice components there
    looked like lung behind a cut chest wall; a pocket of it that a pad closes on one slice made it
    "continue into enclosed background", and 4 L of it were taken as lung. Background joined in 3-D
    to plain outside air is outside air."""
    from grounding.segmenters.chest import exposed_by_circle

    nz, n = 6, 40
    y, x = np.mgrid[0:n, 0:n]
    unreconstructed = (y - 20) ** 2 + (x - 20) ** 2 > 18**2
    coarse = np.full((nz, n, n), -1000.0)
    dense = np.zeros((nz, n, n), dtype=bool)
    ring = np.abs(np.hypot(y - 15, x - 20) - 9) < 1.5  # the body wall, lung air inside it
    dense[:, ring] = True
    coarse[:, np.hypot(y - 15, x - 20) < 7.5] = -850.0
    dense[:, 29, :] = True  # the table, cutting the circle's bottom off from the air around the body
    dense[0, 29, 15:25] = False  # ... but for a gap on one slice: there it is the outside air it is
    coarse[:, 30:, :] = -930.0
    pad = np.abs(np.maximum(np.abs(y - 33), np.abs(x - 20)) - 2) < 0.5  # a pad closing a pocket
    dense[3, pad] = True
    coarse[:, unreconstructed] = -1024.0
    dense[:, unreconstructed] = False

    exposed = exposed_by_circle(dense, coarse, unreconstructed)
    assert not exposed[:, 30:, :].any()
