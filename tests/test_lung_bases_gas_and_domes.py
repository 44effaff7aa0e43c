"""Lung bases over the upper abdomen, rebuilt analytically: two failure classes of the classical lungs.

The builder is independent of `imaging.phantoms` and of `benchmarks.stress`: an elliptic trunk
scanned from the upper abdomen to just above the diaphragm, two lung bases sitting on domes
(paraboloids, the left one lower) and, optionally, a large gas-filled bowel loop under the left
dome. Aerated lung is about -850 HU (vessels and septa), bowel gas is air (-1000 HU), like the air
outside the body. Each test pins one class:

* on a scan of the upper abdomen the bowel holds more air than a lung base: the largest air
  component on the left was taken for the left lung (a real abdominal CT: Dice 0.43, +83 %);
* a lung base wrapping around the top of a dome encloses it on axial slices, and the slice-by-slice
  hole filling put the abdomen under the dome into the lung;
* a thin slab of the lung bases cuts a lung into pieces (in front of and behind a dome), and only
  the largest piece on each side was kept; air under the skin was taken for a lung;
* a small lung base touching a large one (a sixth of their air) was not split off;
* lungs touching over a wide junction with no septum were split without saying that the boundary
  is a guess.
"""

from __future__ import annotations

import numpy as np

from grounding.segmenters.agreement import dice
from grounding.segmenters.chest import analyze_chest
from grounding.segmenters.classical import ClassicalSegmenter
from imaging.volume import Volume


def build(*, gas_ml: float = 0.0, gas_top_mm: float = -25.0, ridge: bool = False, skin_air: bool = False,
          above_mm: float = 40.0,
          below_mm: float = 110.0, dz: float = 2.5, dxy: float = 1.25, n: int = 256, noise: float = 15.0,
          seed: int = 0) -> tuple[Volume, dict[str, np.ndarray]]:
    """An axis-aligned LPS CT (HU) from ``below_mm`` under the right dome's top to ``above_mm`` over
    it, and its truth masks (``lung_left``, ``lung_right``, ``gas``, ``abdomen``: the tissue under
    the domes). ``gas_ml`` draws a bowel loop of about that volume under the left dome, its top at
    ``gas_top_mm`` (the dome's top is at -5 mm, about -9 mm over the loop: higher, the loop touches
    the lung base through a gap in the diaphragm). ``ridge`` makes the right dome a ridge running
    from side to side, 10 mm behind the lung's centre: under its top the right lung base is two
    pieces, in front of the ridge and behind it. ``skin_air`` traps a 5 mm sheet of air (-700 HU)
    under the skin of the right front (``skin_air`` truth): air under clothing or a skin fold."""
    rng = np.random.default_rng(seed)
    x = (np.arange(n) - n / 2 + 0.5) * dxy  # + is the patient's left
    y = (np.arange(n) - n / 2 + 0.5) * dxy  # + is posterior
    z = -below_mm + (np.arange(int(round((above_mm + below_mm) / dz))) + 0.5) * dz  # + is superior
    zz, yy, xx = np.meshgrid(z, y, x, indexing="ij")
    body = (xx / 150.0) ** 2 + (yy / 110.0) ** 2 <= 1
    hu = np.where(body, 40.0, -1000.0).astype(np.float32)
    hu[body & ((xx / 140.0) ** 2 + (yy / 100.0) ** 2 > 1)] = -100.0  # subcutaneous fat
    truth = {"abdomen": np.zeros(hu.shape, bool)}
    for side, sign, top in (("lung_right", -1, 0.0), ("lung_left", 1, -5.0)):
        cx, cy = sign * 75.0, 0.0
        cavity = ((xx - cx) / 55.0) ** 2 + ((yy - cy) / 80.0) ** 2 <= 1
        # a dome whose top lies inside the lung's outline: on the slices just under its top the lung
        # surrounds it (curvature radius 80 mm: 19 mm lower at the lung's lateral edge)
        dome = top - ((xx - cx) ** 2 + (yy - 10.0) ** 2) / 160.0
        if ridge and side == "lung_right":
            dome = top - (yy - 10.0) ** 2 / 160.0
        truth[side] = cavity & (zz > dome)
        truth["abdomen"] |= cavity & (zz <= dome)
        hu[truth[side]] = -850.0
    if gas_ml:
        r = (gas_ml * 1000.0 * 3.0 / (4.0 * np.pi) / (1.2 * 0.8)) ** (1.0 / 3.0)
        loop = ((xx - 60.0) / (1.2 * r)) ** 2 + ((yy + 10.0) / (0.8 * r)) ** 2 + ((zz - gas_top_mm + r) / r) ** 2 <= 1
        truth["gas"] = loop & body & (xx > 0) & ~truth["lung_left"]
        hu[truth["gas"]] = -1000.0
    if skin_air:
        shell = ((xx / 148.5) ** 2 + (yy / 108.5) ** 2 <= 1) & ((xx / 143.5) ** 2 + (yy / 103.5) ** 2 > 1)
        truth["skin_air"] = shell & (yy < -60.0) & (xx < -10.0)
        hu[truth["skin_air"]] = -700.0
    hu += rng.normal(0.0, noise, hu.shape).astype(np.float32)
    volume = Volume.from_array(hu, spacing=(dz, dxy, dxy), origin=(x[0], y[0], z[0]), modality="CT",
                               metadata={"modality_source": "dicom"})
    return volume, truth


def test_bowel_gas_under_a_lung_base_is_not_lung():
    """The loop holds more air than the left lung base in the field of view."""
    volume, truth = build(gas_ml=600.0, above_mm=0.0)
    assert truth["gas"].sum() > 1.5 * truth["lung_left"].sum()
    seg = ClassicalSegmenter()
    left, right = seg.segment(volume, "lung_left"), seg.segment(volume, "lung_right")
    assert not ((left | right) & truth["gas"]).any()
    assert dice(left, truth["lung_left"]) >= 0.9
    assert dice(right, truth["lung_right"]) >= 0.9


def test_gas_touching_a_lung_base_through_the_diaphragm_is_cut_off():
    """The loop's top reaches the lung base: lung and gas are one air component."""
    volume, truth = build(gas_ml=300.0, gas_top_mm=-7.0, above_mm=30.0)
    seg = ClassicalSegmenter()
    left = seg.segment(volume, "lung_left")
    assert np.count_nonzero(left & truth["gas"]) < 0.1 * np.count_nonzero(truth["gas"])
    assert abs(np.count_nonzero(left) / np.count_nonzero(truth["lung_left"]) - 1.0) < 0.05


def test_bowel_gas_alone_is_not_taken_for_lungs():
    """A scan of the abdomen below the lungs: the gas is no lung, and the analysis says why."""
    volume, truth = build(gas_ml=600.0, above_mm=-70.0)
    assert not (truth["lung_left"].any() or truth["lung_right"].any())
    chest = analyze_chest(volume)
    assert chest.lung_error is not None and "gas" in chest.lung_error


def test_the_abdomen_under_a_dome_is_not_filled_into_the_lung():
    volume, truth = build()
    seg = ClassicalSegmenter()
    for side in ("lung_left", "lung_right"):
        mask = seg.segment(volume, side)
        assert np.count_nonzero(mask & truth["abdomen"]) < 0.02 * np.count_nonzero(truth[side])
        assert abs(np.count_nonzero(mask) / np.count_nonzero(truth[side]) - 1.0) < 0.05
        assert dice(mask, truth[side]) >= 0.95


def test_a_lung_base_in_two_pieces_keeps_both():
    volume, truth = build(ridge=True, above_mm=-8.0)
    right = ClassicalSegmenter().segment(volume, "lung_right")
    assert dice(right, truth["lung_right"]) >= 0.9
    assert abs(np.count_nonzero(right) / np.count_nonzero(truth["lung_right"]) - 1.0) < 0.05


def test_air_under_the_skin_is_not_a_lung():
    """The sheet is larger than either piece of the right lung base."""
    volume, truth = build(ridge=True, skin_air=True, above_mm=-8.0)
    assert truth["skin_air"].sum() > 0.2 * truth["lung_right"].sum()
    right = ClassicalSegmenter().segment(volume, "lung_right")
    # where the sheet passes within a few mm of the lung, the lung's edge may take a few of its voxels
    assert np.count_nonzero(right & truth["skin_air"]) < 0.01 * np.count_nonzero(truth["skin_air"])
    assert dice(right, truth["lung_right"]) >= 0.9


def test_an_enclosed_nodule_is_still_filled_into_the_lung():
    """The dome's hole opens onto the abdomen; a nodule inside the lung opens onto nothing."""
    volume, truth = build(above_mm=60.0)
    zz, yy, xx = np.meshgrid(*(np.arange(s) for s in volume.shape), indexing="ij")
    centre = np.array([volume.shape[0] - 10, volume.shape[1] // 2, volume.shape[2] // 2 - 60])  # right lung
    ball = ((zz - centre[0]) * 2.5) ** 2 + ((yy - centre[1]) * 1.25) ** 2 + ((xx - centre[2]) * 1.25) ** 2 <= 10.0**2
    assert truth["lung_right"][ball].all()
    data = volume.data.copy()
    data[ball] = 30.0
    nodular = Volume.from_array(data, spacing=volume.spacing, origin=tuple(volume.affine[:3, 3]), modality="CT",
                                metadata={"modality_source": "dicom"})
    mask = ClassicalSegmenter().segment(nodular, "lung_right")
    assert mask[ball].mean() > 0.95


def touching_lungs(gap_mm: float = 0.0, left_mm: tuple[float, float] = (30.0, 90.0),
                   right_mm: tuple[float, float] = (30.0, 90.0)) -> tuple[Volume, dict[str, np.ndarray]]:
    """Two box-shaped lungs either side of the midline, ``gap_mm`` apart (0: touching with no septum),
    ``left_mm`` and ``right_mm`` wide and deep, over 40 slices of 2.5 mm."""
    n, dxy, dz = 160, 1.25, 2.5
    x = (np.arange(n) - n / 2 + 0.5) * dxy
    yy, xx = np.meshgrid(x, x, indexing="ij")
    plane = np.where((xx / 95.0) ** 2 + (yy / 75.0) ** 2 <= 1, 40.0, -1000.0).astype(np.float32)
    left = (xx >= gap_mm / 2) & (xx < left_mm[0]) & (np.abs(yy) < left_mm[1] / 2)
    right = (xx <= -gap_mm / 2) & (xx > -right_mm[0]) & (np.abs(yy) < right_mm[1] / 2)
    plane[left | right] = -850.0
    hu = np.repeat(plane[None], 40, axis=0) + np.random.default_rng(0).normal(0, 10, (40, n, n)).astype(np.float32)
    volume = Volume.from_array(hu, spacing=(dz, dxy, dxy), origin=(x[0], x[0], 0.0), modality="CT",
                               metadata={"modality_source": "dicom"})
    return volume, {"lung_left": np.repeat(left[None], 40, axis=0), "lung_right": np.repeat(right[None], 40, axis=0)}


def test_lungs_touching_over_a_wide_junction_make_the_split_doubtful():
    """Two narrow lungs meeting over their whole height and depth without a septum: where the
    junction lies is a guess, and the lung evidence says so; lungs apart are not doubted."""
    from grounding.tool import ToolContext
    from grounding.tools import default_registry

    evidence = {}
    for gap in (0.0, 8.0):
        volume, _ = touching_lungs(gap)
        context = ToolContext(volumes={"0": volume})
        evidence[gap] = [default_registry().run(context, "segment", {"target": side})
                         for side in ("lung_left", "lung_right")]
    for ev in evidence[0.0]:
        assert ev.quality.level in ("doubtful", "implausible")
        assert any("touch over" in reason for reason in ev.quality.reasons)
    for ev in evidence[8.0]:
        assert not any("touch over" in reason for reason in ev.quality.reasons)


def test_a_small_lung_touching_a_large_one_is_split_off():
    """The right lung (a lung base cut by the field of view) holds a sixth of the air they form
    together: still two lungs, not one left lung reaching across the midline."""
    volume, truth = touching_lungs(left_mm=(60.0, 80.0), right_mm=(60.0, 16.0))
    assert truth["lung_right"].sum() < 0.2 * (truth["lung_left"].sum() + truth["lung_right"].sum())
    seg = ClassicalSegmenter()
    assert dice(seg.segment(volume, "lung_right"), truth["lung_right"]) >= 0.9
    assert dice(seg.segment(volume, "lung_left"), truth["lung_left"]) >= 0.9
