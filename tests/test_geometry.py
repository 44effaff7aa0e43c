"""Round trips of the pixel <-> voxel <-> mm map on anisotropic volumes, and displayed laterality.

A wrong coordinate map silently mislocates every finding, so each test checks the map against
an independent fact: where a bright marker was put, or what scipy interpolates at a voxel.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import map_coordinates

from imaging.geometry import (
    GeometryError,
    ViewGeometry,
    check_box_in_image,
    clamp_box_to_image,
    geometry_from_dict,
    rescale_box,
    rescale_point,
)
from imaging.views import (
    PLANES,
    crop_view,
    mm_to_index,
    montage_view,
    plane_geometry,
    projection_view,
    sample_plane,
    slice_view,
)
from imaging.volume import Volume

SPACING = (5.0, 0.7, 0.9)  # (z, y, x) mm
SHAPE = (14, 48, 36)
ORIGIN = (-12.3, 40.0, -80.5)  # LPS (x, y, z) of voxel (0, 0, 0)
MARKER = (9, 11, 7)  # (z, y, x): near the patient's right, anterior, superior


def marker_volume(at: tuple[int, int, int] = MARKER, size: int = 2) -> Volume:
    """A dim ramp (so every voxel differs) with a bright cube of ``size`` voxels at ``at``."""
    z, y, x = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    data = (z * 3.0 + y * 0.5 + x * 0.25).astype(np.float32)
    k, j, i = at
    data[k : k + size, j : j + size, i : i + size] = 1000.0
    return Volume.from_array(data, spacing=SPACING, origin=ORIGIN, modality="CT")


def in_cube(zyx: np.ndarray, at: tuple[int, int, int] = MARKER, size: int = 2) -> bool:
    idx = np.round(np.asarray(zyx)).astype(int)
    return all(at[a] <= idx[a] < at[a] + size for a in range(3))


def random_pixels(geom: ViewGeometry, n: int = 50, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform([-0.5, -0.5], [geom.width - 0.5, geom.height - 0.5], size=(n, 2))


@pytest.mark.parametrize("plane", PLANES)
def test_pixel_voxel_pixel_identity_and_mm(plane):
    vol = marker_volume()
    index = {"axial": 9, "coronal": 11, "sagittal": 7}[plane]
    geom = plane_geometry(vol, plane, index)
    px = random_pixels(geom)
    vox = geom.pixel_to_voxel(px)
    assert np.allclose(geom.voxel_to_pixel(vox), px, atol=1e-9)
    assert np.allclose(vox[:, {"axial": 0, "coronal": 1, "sagittal": 2}[plane]], index)
    assert np.allclose(geom.pixel_to_mm(px), vol.voxel_to_world(vox), atol=1e-9)
    assert np.allclose(geom.mm_to_pixel(geom.pixel_to_mm(px)), px, atol=1e-9)
    # square pixels of the finer in-plane spacing, and the image spans the volume edge to edge
    sx, sy = geom.pixel_spacing_mm
    assert sx == pytest.approx(sy, rel=0.03)
    corners = geom.pixel_to_voxel([[-0.5, -0.5], [geom.width - 0.5, geom.height - 0.5]])
    spanned = [a for a in range(3) if a != {"axial": 0, "coronal": 1, "sagittal": 2}[plane]]
    for a in spanned:
        assert sorted(corners[:, a]) == pytest.approx([-0.5, SHAPE[a] - 0.5])
    # serialisation keeps the map
    again = geometry_from_dict(geom.to_dict())
    assert np.allclose(again.pixel_to_mm(px), geom.pixel_to_mm(px))


@pytest.mark.parametrize("plane", PLANES)
def test_rendered_pixels_are_the_volume_at_the_mapped_voxels(plane):
    vol = marker_volume()
    geom = plane_geometry(vol, plane, {"axial": 9, "coronal": 11, "sagittal": 7}[plane])
    sampled = sample_plane(vol.data, geom)
    ys, xs = np.mgrid[0 : geom.height, 0 : geom.width]
    vox = geom.pixel_to_voxel(np.column_stack([xs.ravel(), ys.ravel()]))
    expected = map_coordinates(vol.data, vox.T, order=1, mode="nearest").reshape(sampled.shape)
    assert np.allclose(sampled, expected, atol=1e-3)
    # the brightest rendered pixel maps back into the marker cube
    view = slice_view(vol, plane, {"axial": 9, "coronal": 11, "sagittal": 7}[plane], window="bone")
    img = np.asarray(view.image)
    row, col = np.unravel_index(np.argmax(img), img.shape)
    assert in_cube(view.geometry.pixel_to_voxel([[col, row]])[0])
    # and the cube's voxel maps to a pixel that is bright
    px = view.geometry.voxel_to_pixel([np.add(MARKER, 0.5)])[0]
    assert img[int(round(px[1])), int(round(px[0]))] == img.max()


def test_displayed_orientation_is_radiological():
    """Axial: patient right on the image left, anterior up. Coronal: superior up.
    Sagittal: anterior on the left, superior up."""
    vol = marker_volume()
    # world direction of one pixel step right (columns) and down (rows), LPS mm
    def steps(geom: ViewGeometry) -> tuple[np.ndarray, np.ndarray]:
        p0, pc, pr = geom.pixel_to_mm([[0, 0], [1, 0], [0, 1]])
        return pc - p0, pr - p0

    col, row = steps(plane_geometry(vol, "axial", 9))
    assert col[0] > 0 and row[1] > 0  # right -> patient Left (+x); down -> Posterior (+y)
    col, row = steps(plane_geometry(vol, "coronal", 11))
    assert col[0] > 0 and row[2] < 0  # down -> Inferior
    col, row = steps(plane_geometry(vol, "sagittal", 7))
    assert col[1] > 0 and row[2] < 0  # right -> Posterior; down -> Inferior

    # the marker near the patient's right, anterior and superior shows up accordingly
    for plane, index, expect in [
        ("axial", 9, ("left", "top")),      # right of patient -> image left; anterior -> top
        ("coronal", 11, ("left", "top")),   # right of patient -> image left; superior -> top
        ("sagittal", 7, ("left", "top")),   # anterior -> image left; superior -> top
    ]:
        img = np.asarray(slice_view(vol, plane, index, window="bone").image)
        row, col = np.unravel_index(np.argmax(img), img.shape)
        assert (col < img.shape[1] / 2) == (expect[0] == "left"), plane
        assert (row < img.shape[0] / 2) == (expect[1] == "top"), plane


def test_phantom_laterality_through_views():
    from imaging.phantoms import NoduleSpec, chest_ct

    ph = chest_ct(seed=0, spacing=(5.0, 1.4, 1.1), nodules=[NoduleSpec(diameter_mm=14.0, side="right")])
    nod = ph.truth["nodules"][0]
    view = slice_view(ph.volume, "axial", nod["center_voxel"][0], window="lung")
    px = view.geometry.mm_to_pixel([nod["center_mm"]])[0]
    assert px[0] < view.size[0] / 2, "a right-lung nodule is on the image left of an axial view"
    heart = ph.truth["structures"]["heart"]["centroid_mm"]
    hv = slice_view(ph.volume, "axial", mm_to_index(ph.volume, "axial", heart[2]))
    hpx = hv.geometry.mm_to_pixel([heart])[0]
    assert hpx[0] > hv.size[0] / 2 and hpx[1] < hv.size[1] / 2, "heart: image right (patient left), anterior"
    back = view.geometry.pixel_to_voxel([px])[0]
    assert back[0] == nod["center_voxel"][0]  # the slice shown; in-plane position is exact
    assert np.allclose(back[1:], nod["center_voxel_float"][1:], atol=0.02)
    assert ph.labels["nodule_1"][tuple(np.round(back).astype(int))]


def test_mm_to_index_matches_affine():
    vol = marker_volume()
    for plane, world_axis, voxel_axis in [("axial", 2, 0), ("coronal", 1, 1), ("sagittal", 0, 2)]:
        mm = vol.voxel_to_world([[4.0, 10.0, 20.0]])[0][world_axis]
        assert mm_to_index(vol, plane, mm) == pytest.approx([4.0, 10.0, 20.0][voxel_axis])


def test_crops_of_crops_keep_the_same_physical_point():
    vol = marker_volume()
    parent = slice_view(vol, "coronal", 11, window="bone")
    target = np.add(MARKER, 0.5)  # centre of the marker cube (z, y, x)
    point_mm = vol.voxel_to_world([target])[0]
    views, boxes = [parent], []
    for _ in range(3):
        g = views[-1].geometry
        cx, cy = g.mm_to_pixel([point_mm])[0]
        w, h = g.width / 3, g.height / 3
        box = (cx - w / 2 + 0.5, cy - h / 3 + 0.5, cx + w / 2 + 0.5, cy + 2 * h / 3 + 0.5)
        boxes.append(box)
        views.append(crop_view(vol, views[-1], box, margin=0.0))
    for view in views:
        g = view.geometry
        px = g.mm_to_pixel([point_mm])[0]
        assert -0.5 <= px[0] <= g.width - 0.5 and -0.5 <= px[1] <= g.height - 0.5
        assert np.allclose(g.pixel_to_voxel([px])[0][[0, 2]], target[[0, 2]], atol=1e-6)
        img = np.asarray(view.image)
        row, col = np.unravel_index(np.argmax(img), img.shape)
        assert in_cube(g.pixel_to_voxel([[col, row]])[0])
    # each level really zooms in: finer pixels in mm
    sizes = [v.geometry.pixel_spacing_mm[0] for v in views]
    assert sizes[0] > sizes[1] > sizes[2] >= sizes[3]
    # each crop maps exactly as documented in ViewGeometry.crop, relative to its parent's box
    for parent_view, child, box in zip(views, views[1:], boxes):
        gp, gc = parent_view.geometry, child.geometry
        x1, y1, x2, y2 = gp.clamp_box(box)
        sx, sy = (x2 - x1) / gc.width, (y2 - y1) / gc.height
        for i, j in [(0, 0), (3, 5), (gc.width - 1, gc.height - 1)]:
            expect = gp.pixel_to_voxel([[x1 - 0.5 + (i + 0.5) * sx, y1 - 0.5 + (j + 0.5) * sy]])[0]
            assert np.allclose(gc.pixel_to_voxel([[i, j]])[0], expect, atol=1e-9)


def test_boxes_at_and_beyond_the_borders():
    vol = marker_volume()
    geom = slice_view(vol, "axial", 9).geometry
    w, h = geom.width, geom.height
    assert geom.clamp_box((-10, -5, 10, 12)) == (0.0, 0.0, 10.0, 12.0)
    assert geom.clamp_box((w - 4, h - 4, w + 50, h + 50)) == (w - 4.0, h - 4.0, float(w), float(h))
    sl = geom.box_to_voxel_slices((-10, -10, w + 10, h + 10))
    assert sl == (slice(9, 10), slice(0, SHAPE[1]), slice(0, SHAPE[2]))
    assert vol.data[sl].shape == (1, SHAPE[1], SHAPE[2])
    for bad, msg in [
        ((w + 1, 0, w + 5, 5), "outside"),
        ((-9, -9, 0, 0), "outside"),
        ((0, h, 5, h + 3), "outside"),
        ((3, 3, 3, 8), "zero or negative area"),
        ((5, 5, 2, 8), "zero or negative area"),
        ((0, 0, float("nan"), 4), "non-finite"),
        ((1, 2, 3), "four numbers"),
    ]:
        with pytest.raises(GeometryError, match=msg):
            geom.box_to_voxel_slices(bad)
        with pytest.raises(GeometryError):
            crop_view(vol, slice_view(vol, "axial", 9), bad)


def test_box_to_voxel_slices_selects_voxel_centres_inside():
    vol = marker_volume()
    geom = plane_geometry(vol, "axial", 9)
    box = (4.0, 6.0, 17.0, 21.0)
    sl = geom.box_to_voxel_slices(box)
    x1, y1, x2, y2 = box
    lo = geom.pixel_to_voxel([[x1 - 0.5, y1 - 0.5]])[0]
    hi = geom.pixel_to_voxel([[x2 - 0.5, y2 - 0.5]])[0]
    for axis in (1, 2):
        centres = np.arange(SHAPE[axis])
        inside = centres[(centres >= lo[axis] - 1e-6) & (centres <= hi[axis] + 1e-6)]
        assert (sl[axis].start, sl[axis].stop) == (inside[0], inside[-1] + 1)
    assert sl[0] == slice(9, 10)


def test_montage_tiles_map_through_their_own_slice():
    vol = marker_volume()
    view = montage_view(vol, "axial", indices=[3, 9, 12], tile_side=64)
    mg = view.geometry
    assert [t.geometry.origin[0] for t in mg.tiles] == [3.0, 9.0, 12.0]
    assert mg.volume == "0" and montage_view(vol, "axial", indices=[3], volume_id="1").geometry.volume == "1"
    tile = mg.tiles[1]
    g = tile.geometry
    box = (tile.x0 + 2, tile.y0 + 3, tile.x0 + 10, tile.y0 + 12)
    found, local = mg.tile_for_box(box)
    assert found is tile and local == (2, 3, 10, 12)
    px = mg.pixel_to_voxel([[tile.x0 + 5, tile.y0 + 7]])[0]
    assert np.allclose(px, g.pixel_to_voxel([[5, 7]])[0]) and px[0] == 9.0
    # the marker is only on the middle panel, and maps back into the cube
    img = np.asarray(view.image)
    row, col = np.unravel_index(np.argmax(img), img.shape)
    assert tile.x0 <= col < tile.x0 + g.width and tile.y0 <= row < tile.y0 + g.height
    assert in_cube(mg.pixel_to_voxel([[col, row]])[0])
    with pytest.raises(GeometryError, match="single montage panel"):
        mg.tile_for_box((tile.x0 - 3, tile.y0 + 1, tile.x0 + 3, tile.y0 + 5))
    crop = crop_view(vol, view, box, margin=0.0)
    assert np.allclose(crop.geometry.pixel_to_voxel([[0, 0]])[0][0], 9.0)


@pytest.mark.parametrize("plane", PLANES)
def test_projection_maps_in_plane_axes(plane):
    vol = marker_volume(at=(3, 30, 25))
    view = projection_view(vol, plane, window="bone")
    g = view.geometry
    axis = {"axial": 0, "coronal": 1, "sagittal": 2}[plane]
    assert g.projection_axis == axis
    img = np.asarray(view.image)
    row, col = np.unravel_index(np.argmax(img), img.shape)
    vox = g.pixel_to_voxel([[col, row]])[0]
    keep = [a for a in range(3) if a != axis]
    assert all(3 <= round(vox[a]) - (0, 27, 22)[a] < 5 for a in keep)  # inside the cube (3/30/25 .. +2)
    # voxel -> pixel ignores the projected axis
    p1 = g.voxel_to_pixel([[3.5, 30.5, 25.5]])[0]
    moved = [3.5, 30.5, 25.5]
    moved[axis] = 0.0
    assert np.allclose(g.voxel_to_pixel([moved])[0], p1)
    sl = g.box_to_voxel_slices((col - 1, row - 1, col + 2, row + 2), depth=SHAPE[axis])
    assert sl[axis] == slice(0, SHAPE[axis])
    assert vol.data[sl].max() == 1000.0
    with pytest.raises(GeometryError, match="depth"):
        g.box_to_voxel_slices((col - 1, row - 1, col + 2, row + 2))


def test_scaled_views_keep_the_map():
    vol = marker_volume()
    small = plane_geometry(vol, "coronal", 11, max_side=20)
    assert max(small.width, small.height) == 20
    full = plane_geometry(vol, "coronal", 11)
    edges = [[-0.5, -0.5], [small.width - 0.5, small.height - 0.5]]
    full_edges = [[-0.5, -0.5], [full.width - 0.5, full.height - 0.5]]
    assert np.allclose(small.pixel_to_voxel(edges), full.pixel_to_voxel(full_edges))
    resized = full.scaled(full.width * 2, full.height * 2)
    assert np.allclose(resized.pixel_to_voxel([[-0.5, -0.5]]), full.pixel_to_voxel([[-0.5, -0.5]]))
    assert np.allclose(resized.pixel_to_voxel([[1.5, 1.5]]), full.pixel_to_voxel([[0.5, 0.5]]))


def test_boxes_rescaled_to_a_model_frame_round_trip_and_match_the_scaled_geometry():
    vol = marker_volume()
    full = plane_geometry(vol, "axial", 9)
    view = (full.width, full.height)
    model = (full.width * 3 // 2 + 1, full.height * 2 // 3 + 1)  # resized unevenly, as a processor may
    seen = full.scaled(*model)
    box = (0.1 * model[0], 0.25 * model[1], 0.8 * model[0], 0.6 * model[1])
    on_view = rescale_box(box, model, view)
    assert np.allclose(rescale_box(on_view, view, model), box)
    assert rescale_box((0, 0, *model), model, view) == (0.0, 0.0, *map(float, view))
    # the box the model drew on the resized image covers the same voxels as the rescaled box on the view
    assert np.allclose(seen.box_corners_voxel(box), full.box_corners_voxel(on_view))
    point = (0.37 * model[0], 0.71 * model[1])
    px, py = rescale_point(point, model, view)
    assert np.allclose(rescale_point((px, py), view, model), point)
    assert np.allclose(seen.pixel_to_voxel([[point[0] - 0.5, point[1] - 0.5]]), full.pixel_to_voxel([[px - 0.5, py - 0.5]]))


def test_box_checks_name_the_box_and_the_image_and_give_the_valid_range():
    assert check_box_in_image([-5, 2, 12, 40], 10, 20) == (-5.0, 2.0, 12.0, 40.0)
    assert clamp_box_to_image((-5.0, 2.0, 12.0, 40.0), 10, 20) == (0.0, 2.0, 10.0, 20.0)
    with pytest.raises(GeometryError, match=r"bbox_2d \[11, 0, 15, 5\] lies outside view V2, which is 10x20 px: "
                                            r"x must be within 0\.\.10 and y within 0\.\.20"):
        check_box_in_image([11, 0, 15, 5], 10, 20, name="bbox_2d", image="view V2")
    with pytest.raises(GeometryError, match=r"bbox_2d \[4, 4, 4, 9\] has zero or negative area.*of view V2 \(10x20\)"):
        check_box_in_image([4, 4, 4, 9], 10, 20, name="bbox_2d", image="view V2")
    with pytest.raises(GeometryError, match="bbox_2d must be four numbers"):
        check_box_in_image("1,2,3,4", 10, 20, name="bbox_2d")


def test_box_smaller_than_a_voxel_in_a_zoomed_crop_selects_the_voxel_holding_it():
    vol = marker_volume()
    crop = crop_view(vol, slice_view(vol, "axial", 9), (4.0, 6.0, 10.0, 12.0), margin=0.0)
    g = crop.geometry
    for box in [(10, 10, 12, 12), (1, 1, 3, 2), (g.width - 2, g.height - 2, g.width, g.height)]:
        centre = g.pixel_to_voxel([[(box[0] + box[2]) / 2 - 0.5, (box[1] + box[3]) / 2 - 0.5]])[0]
        corners = g.box_corners_voxel(box)
        assert np.all(np.ptp(corners[:, 1:], axis=0) < 1.0)  # the box is smaller than a voxel
        sl = g.box_to_voxel_slices(box)
        assert sl[0] == slice(9, 10)
        for axis in (1, 2):
            k = int(np.floor(centre[axis] + 0.5))
            assert sl[axis] == slice(k, k + 1), (box, axis, centre)


def test_crop_of_a_projection_keeps_the_projection():
    vol = marker_volume(at=(3, 30, 25))
    mip = projection_view(vol, "coronal", window="bone")
    px = mip.geometry.voxel_to_pixel([[4.0, 0.0, 26.0]])[0]
    crop = crop_view(vol, mip, (px[0] - 4, px[1] - 4, px[0] + 5, px[1] + 5))
    assert crop.geometry.projection_axis == 1
    img = np.asarray(crop.image)
    row, col = np.unravel_index(np.argmax(img), img.shape)
    vox = crop.geometry.pixel_to_voxel([[col, row]])[0]
    assert 3 <= round(vox[0]) < 5 and 25 <= round(vox[2]) < 27
