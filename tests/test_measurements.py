"""Measurement math on masks with known answers: spheres, discs, rectangles, both sides."""

from __future__ import annotations

import math

import numpy as np
import pytest

from grounding.measurements import (
    MeasurementError,
    body_midline_x_mm,
    component_sides,
    diameters_mm,
    laterality,
    measure_region,
)
from imaging.volume import Volume


def sphere_volume(spacing, radius_mm=12.0, center_mm=(0.0, 0.0, 0.0), fov_mm=(80.0, 120.0, 160.0),
                  inside=40.0, outside=-1000.0, modality="CT", body=False):
    """A CT-like volume with a sphere of ``radius_mm`` at LPS ``center_mm`` (x, y, z).

    The grid is centred on world (0, 0, 0) with voxel centres placed symmetrically.
    ``fov_mm`` is the (z, y, x) field of view. With ``body``, a wide slab of soft tissue fills
    the in-plane middle so the midline comes from the body rather than the volume centre.
    """
    shape = tuple(int(round(f / s)) | 1 for f, s in zip(fov_mm, spacing))  # odd: a voxel at 0 mm
    origin = tuple(-(n - 1) / 2 * s for n, s in zip(shape[::-1], spacing[::-1]))  # x, y, z
    vol = Volume.from_array(np.full(shape, outside, np.float32), spacing=spacing, origin=origin,
                            modality=modality)
    zz, yy, xx = np.meshgrid(*[np.arange(n) for n in shape], indexing="ij")
    world = vol.voxel_to_world(np.column_stack([zz.ravel(), yy.ravel(), xx.ravel()])).reshape(*shape, 3)
    mask = np.linalg.norm(world - np.asarray(center_mm), axis=-1) <= radius_mm
    if body:
        vol.data[:, :, :] = np.where(np.abs(world[..., 0]) <= 70, 0.0, outside)
    vol.data[mask] = inside
    return vol, mask


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (5.0, 0.7, 0.7), (2.5, 0.8, 0.6)])
def test_sphere_volume_and_diameter(spacing):
    r = 12.0
    vol, mask = sphere_volume(spacing, radius_mm=r)
    m = measure_region(vol, mask)
    true_v = 4 / 3 * math.pi * r**3
    assert m.dims == 3 and m.area_mm2 is None
    assert abs(m.volume_mm3 - true_v) / true_v < 0.05
    assert m.volume_ml == pytest.approx(m.volume_mm3 / 1000)
    # the sphere's centre lies on a voxel centre: the largest axial slice is the equator
    one_voxel = max(spacing[1:]) + 1e-6
    assert abs(m.longest_diameter_mm - 2 * r) <= one_voxel
    assert abs(m.perpendicular_diameter_mm - 2 * r) <= one_voxel
    assert m.diameter_plane == "axial"
    assert np.allclose(m.centroid_mm, (0, 0, 0), atol=0.1)
    assert m.spacing_mm == spacing
    assert m.intensity_unit == "HU" and m.intensity["mean"] == pytest.approx(40.0)
    assert m.intensity["std"] == pytest.approx(0.0, abs=1e-6)
    endpoints = np.asarray(m.diameter_endpoints_mm)
    assert np.linalg.norm(endpoints[0] - endpoints[1]) == pytest.approx(m.longest_diameter_mm, abs=1e-3)
    assert np.allclose(endpoints[:, 2], 0.0)  # on the equator's plane, in patient mm


def test_isotropic_and_anisotropic_agree():
    center = (10.3, -7.9, 0.0)
    iso = measure_region(*sphere_volume((1.0, 1.0, 1.0), 15.0, center))
    aniso = measure_region(*sphere_volume((5.0, 0.7, 0.7), 15.0, center))
    assert aniso.volume_mm3 == pytest.approx(iso.volume_mm3, rel=0.04)
    assert aniso.longest_diameter_mm == pytest.approx(iso.longest_diameter_mm, abs=1.0)
    assert aniso.perpendicular_diameter_mm == pytest.approx(iso.perpendicular_diameter_mm, abs=1.0)
    assert np.allclose(aniso.centroid_mm, iso.centroid_mm, atol=0.5)
    assert np.allclose(iso.centroid_mm, center, atol=0.3)


@pytest.mark.parametrize("x_mm, side", [(-40.0, "right"), (40.0, "left"), (1.0, "midline")])
def test_laterality_from_body_midline(x_mm, side):
    # LPS: world x grows towards the patient's left
    vol, mask = sphere_volume((2.0, 1.0, 1.0), 8.0, (x_mm, 0.0, 0.0), body=True)
    m = measure_region(vol, mask)
    assert m.laterality == side
    assert m.midline_source == "body"
    assert m.midline_x_mm == pytest.approx(0.0, abs=1.0)
    assert m.fraction_left == pytest.approx({"right": 0.0, "left": 1.0, "midline": 0.5}[side], abs=0.15)


def test_midline_uses_body_not_volume_centre():
    vol, _ = sphere_volume((2.0, 1.0, 1.0), 5.0, body=True)
    # shift the body 10 mm to the patient's left: the volume centre stays, the midline moves
    vol.data[:] = np.roll(vol.data, 10, axis=2)
    x, source = body_midline_x_mm(vol, vol.shape[0] // 2)
    assert source == "body" and x == pytest.approx(10.0, abs=1.0)
    # MR: the head or body against the dark background, whatever the intensity scale
    mr = Volume(data=(vol.data + 1000.0) * 0.3, spacing=vol.spacing, affine=vol.affine, modality="MR")
    x, source = body_midline_x_mm(mr, vol.shape[0] // 2)
    assert source == "body" and x == pytest.approx(10.0, abs=1.0)
    empty = Volume(data=np.zeros_like(vol.data), spacing=vol.spacing, affine=vol.affine, modality="MR")
    x, source = body_midline_x_mm(empty, 0)
    assert source == "volume_center" and x == pytest.approx(0.0, abs=1e-6)


def test_2d_disc_area_and_diameters_with_non_square_pixels():
    # a 2-D image (X-ray-like) with 0.5 x 0.8 mm pixels and an ellipse that is a 30 mm disc in mm
    ny, nx = 200, 120
    vol = Volume.from_array(np.zeros((ny, nx), np.float32), spacing=(1.0, 0.5, 0.8), modality="XR")
    yy, xx = np.mgrid[0:ny, 0:nx]
    mask = ((yy - 100) * 0.5) ** 2 + ((xx - 60) * 0.8) ** 2 <= 15.0**2
    vol.data[0][mask] = 100.0
    m = measure_region(vol, mask[None])
    assert m.dims == 2 and m.volume_mm3 is None and m.volume_ml is None
    assert m.area_mm2 == pytest.approx(math.pi * 15**2, rel=0.03)
    assert m.longest_diameter_mm == pytest.approx(30.0, abs=0.8)
    assert m.perpendicular_diameter_mm == pytest.approx(30.0, abs=0.8)
    assert m.intensity_unit == "a.u." and m.intensity["mean"] == pytest.approx(100.0)
    names = m.numbers()
    assert "area_mm2" in names and "volume_mm3" not in names
    assert names["mean_intensity"][1] == "a.u."


def test_rectangle_diameters_and_perpendicular():
    pts = np.array([[0, 0, 0], [40, 0, 0], [40, 30, 0], [0, 30, 0], [20, 15, 0]], float)
    longest, perp, ends = diameters_mm(pts)
    assert longest == pytest.approx(50.0)
    # the extent orthogonal to the diagonal of a 40 x 30 rectangle: 2 * 40 * 30 / 50
    assert perp == pytest.approx(48.0)
    assert {tuple(e) for e in ends} in ({(0, 0, 0), (40, 30, 0)}, {(40, 0, 0), (0, 30, 0)})


def test_degenerate_regions():
    vol = Volume.from_array(np.zeros((5, 20, 20), np.float32), spacing=(2.0, 1.0, 1.0), modality="CT")
    one = np.zeros(vol.shape, bool)
    one[2, 10, 10] = True
    m = measure_region(vol, one)
    assert m.volume_mm3 == pytest.approx(2.0)
    assert 0.5 <= m.longest_diameter_mm <= 1.5
    line = np.zeros(vol.shape, bool)
    line[2, 10, 5:15] = True
    m = measure_region(vol, line, plane_axis=0)
    assert m.area_mm2 == pytest.approx(10.0)
    assert m.longest_diameter_mm == pytest.approx(9.0, abs=1.1)
    with pytest.raises(MeasurementError, match="empty"):
        measure_region(vol, np.zeros(vol.shape, bool))
    with pytest.raises(MeasurementError, match="does not match"):
        measure_region(vol, np.ones((5, 20, 21), bool))


def test_coronal_plane_region():
    vol, mask = sphere_volume((2.0, 1.0, 1.0), 10.0)
    k = vol.shape[1] // 2
    plane = np.zeros_like(mask)
    plane[:, k, :] = mask[:, k, :]
    m = measure_region(vol, plane, plane_axis=1)
    assert m.diameter_plane == "coronal" and m.diameter_slice == k
    assert m.area_mm2 == pytest.approx(math.pi * 10**2, rel=0.08)
    assert m.longest_diameter_mm == pytest.approx(20.0, abs=2.0)


def test_volume_and_area_on_a_sheared_grid_use_the_true_voxel_size():
    # a gantry-tilted grid: slices 2.0 mm apart along z, each shifted 1.0 mm in y (26.6 degrees);
    # the slice column is 2.24 mm long but a voxel holds 2 x 1 x 1 mm3
    affine = np.eye(4)
    affine[:3, 0] = [0.0, 1.0, 2.0]
    affine[:3, 1] = [0.0, 1.0, 0.0]
    affine[:3, 2] = [1.0, 0.0, 0.0]
    vol = Volume(data=np.zeros((20, 20, 20), np.float32), spacing=(2.0, 1.0, 1.0), affine=affine, modality="CT")
    mask = np.zeros(vol.shape, bool)
    mask[5:15, 5:15, 5:15] = True
    assert measure_region(vol, mask).volume_mm3 == pytest.approx(1000 * 2.0)
    axial = np.zeros_like(mask)
    axial[7, 5:15, 5:15] = True
    assert measure_region(vol, axial, plane_axis=0).area_mm2 == pytest.approx(100 * 1.0)
    # the plane of voxel axes z and x is tilted: its faces are (0, 1, 2) x (1, 0, 0) parallelograms
    tilted = np.zeros_like(mask)
    tilted[5:15, 7, 5:15] = True
    assert measure_region(vol, tilted, plane_axis=1).area_mm2 == pytest.approx(100 * math.sqrt(5.0))


def test_component_sides_gives_each_lesion_its_side_largest_first():
    vol = Volume.from_array(np.zeros((10, 20, 40), dtype=np.float32), spacing=(2.0, 1.0, 1.0),
                            origin=(-20.0, 0.0, 0.0), modality="MR")  # x (mm) = column - 20: midline at column 20
    mask = np.zeros(vol.shape, dtype=bool)
    mask[2:6, 5:10, 2:8] = True     # right (x < 0), 120 voxels
    mask[2:4, 12:15, 30:34] = True  # left, 24 voxels
    mask[7:9, 5:9, 17:23] = True    # across the midline, 48 voxels
    assert component_sides(mask, vol, 0.0) == [("right", 120), ("midline", 48), ("left", 24)]
    # the combined region reads as one side only: what the per-component sides are for
    assert laterality(mask, vol, 0.0, float(vol.voxel_to_world([np.argwhere(mask).mean(axis=0)])[0][0]))[0] == "right"
