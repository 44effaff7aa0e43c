"""Round trips of `imaging.locate`: a box or point on any view, in any model's frame, to voxels and mm.

Each test puts a bright marker at a known voxel of an anisotropic LPS volume, finds where every
kind of view shows it (axial, coronal, sagittal, montage, MIP, zoomed crop), writes a point or box
there in a model's frame, and checks that locating it gives back the marker's voxel and mm.
"""

from __future__ import annotations

import functools
from types import SimpleNamespace

import numpy as np
import pytest
from qwen_vl_utils import smart_resize

from imaging.geometry import GeometryError, rescale_box, rescale_point
from imaging.locate import (
    RELATIVE_SCALE,
    RESIZE_RULES,
    ModelFrame,
    centre_to_edge,
    edge_to_centre,
    enlarge_box,
    frame_box_to_view,
    locate_box,
    locate_point,
    map_box,
    mask_footprint,
    ranges_hold,
    voxel_index,
    voxels_on_view,
)
from imaging.views import PLANES, crop_view, montage_view, projection_view, slice_view
from imaging.volume import Volume

SPACING = (4.0, 0.6, 0.85)  # (z, y, x) mm, every axis different
SHAPE = (12, 40, 30)
MARKER = (8, 13, 21)  # (z, y, x)


def marker_volume(oblique: bool = False) -> Volume:
    """A dim ramp with one bright voxel at `MARKER`, in an LPS frame with an off-zero origin;
    ``oblique``: the voxel grid turned 20 degrees about the patient's z axis."""
    z, y, x = np.meshgrid(*(np.arange(n) for n in SHAPE), indexing="ij")
    data = (z * 2.0 + y * 0.5 + x * 0.25).astype(np.float32)
    data[MARKER] = 2000.0
    vol = Volume.from_array(data, spacing=SPACING, origin=(-30.0, 55.5, -120.25), modality="CT")
    if oblique:
        c, s = np.cos(np.radians(20)), np.sin(np.radians(20))
        turn = np.eye(4)
        turn[:2, :2] = [[c, -s], [s, c]]
        vol.affine = turn @ vol.affine
    return vol


def marker_mm(vol: Volume) -> np.ndarray:
    return vol.voxel_to_world([MARKER])[0]


@functools.cache
def marker_views(oblique: bool = False) -> tuple[Volume, dict]:
    """The marker volume and every kind of view of it, each showing the marker."""
    vol = marker_volume(oblique)
    axial = slice_view(vol, "axial", MARKER[0])
    out = {plane: slice_view(vol, plane, MARKER[["axial", "coronal", "sagittal"].index(plane)]) for plane in PLANES}
    out["montage"] = montage_view(vol, "axial", indices=[2, 5, MARKER[0], 10])
    out["mip"] = projection_view(vol, "coronal")
    marker_px = centre_to_edge(axial.geometry.voxel_to_pixel([MARKER])[0])
    out["crop"] = crop_view(vol, axial, (*(marker_px - 4), *(marker_px + 4)))
    return vol, out


def marker_point(view, vol: Volume) -> np.ndarray:
    """Where ``view`` shows the marker: a point in the edge frame of its pixels (the panel of its slice)."""
    for tile in view.geometry.panels():
        g = tile.geometry
        axis = g.normal_axis()
        if g.projection_axis is not None or round(g.origin[axis]) == MARKER[axis]:
            return centre_to_edge(g.voxel_to_pixel([MARKER])[0]) + (tile.x0, tile.y0)
    raise AssertionError("the view does not show the marker")


FRAMES = {
    "identity": ModelFrame(),
    "qwen2.5-vl": ModelFrame.qwen(28, 4 * 28 * 28, 64 * 28 * 28),
    "relative": ModelFrame.relative(),
    "gemma3": ModelFrame.fixed(896, 896),
}


VIEW_KINDS = ["axial", "coronal", "sagittal", "montage", "mip", "crop"]


@pytest.fixture(params=[(k, f, False) for k in VIEW_KINDS for f in sorted(FRAMES)]
                + [(k, "identity", True) for k in VIEW_KINDS],
                ids=lambda p: f"{p[0]}-{p[1]}" + ("-oblique" if p[2] else ""))
def seen(request):
    """(volume, a view of each kind, the frame a model of each family sees it in, where it shows the marker)."""
    kind, frame_name, oblique = request.param
    vol, all_views = marker_views(oblique)
    view = all_views[kind]
    return vol, view, FRAMES[frame_name](*view.size), marker_point(view, vol)


def test_point_in_a_model_frame_finds_the_marker_voxel_and_mm(seen):
    vol, view, frame, marker = seen
    point = rescale_point(tuple(marker), view.size, frame)
    located = locate_point(view.geometry, point, frame_size=frame)
    zyx = located.on_volume(vol.data)  # on the MIP: the depth of the maximum the pixel shows
    assert np.allclose(zyx, MARKER, atol=1e-6)
    assert np.allclose(located.geometry.voxel_to_mm(zyx)[0], marker_mm(vol), atol=1e-6)
    # and back: mm -> the panel's pixel -> the model's frame -> the point written
    back = centre_to_edge(located.geometry.mm_to_pixel([marker_mm(vol)])[0]) + located.offset
    assert np.allclose(rescale_point(tuple(back), view.size, frame), point, atol=1e-6)


def test_box_in_a_model_frame_holds_the_marker_in_voxels_and_mm(seen):
    vol, view, frame, (x, y) = seen
    on_view = (x - 1.5, y - 1.5, x + 1.5, y + 1.5)
    located = locate_box(view.geometry, rescale_box(on_view, view.size, frame), frame_size=frame, shape=vol.shape)
    assert np.allclose(located.pixels, on_view, atol=1e-6)
    assert ranges_hold(located.ranges, MARKER)
    mm, want = located.mm(), marker_mm(vol)
    lo, hi = np.asarray(mm["min_mm"]), np.asarray(mm["max_mm"])
    if located.geometry.projection_axis is None:  # a box on a MIP has no depth in mm
        assert np.all(lo <= want + 1e-3) and np.all(want <= hi + 1e-3)
    if view.plane == "projection":  # the projected axis is spanned whole, and only when its depth is known
        axis = located.geometry.projection_axis
        assert located.ranges[axis] == [0, SHAPE[axis]]
        assert locate_box(view.geometry, on_view).voxels is None
    else:  # a slice: one voxel thick along its normal
        axis = located.geometry.normal_axis()
        assert located.ranges[axis] == [MARKER[axis], MARKER[axis] + 1]


def test_half_pixel_rule_one_pixel_box_is_one_voxel():
    # a 2-D image whose pixels are its voxels: the edge box [i, j, i+1, j+1] is voxel (0, j, i)
    vol = Volume.from_array(np.zeros((1, 6, 9)), spacing=(1.0, 0.5, 0.5))
    geom = slice_view(vol, "axial", 0).geometry
    assert (geom.width, geom.height) == (9, 6)
    located = locate_box(geom, [4, 2, 5, 3])
    assert located.ranges == [[0, 1], [2, 3], [4, 5]]
    point = locate_point(geom, [4.5, 2.5])
    assert point.index() == [0, 2, 4] and np.allclose(point.voxel, [0, 2, 4])
    assert edge_to_centre(centre_to_edge(3.25)) == 3.25
    for v in np.linspace(-0.49, 5.49, 61):
        k = voxel_index(v)
        assert ranges_hold([[k, k + 1]], [v]) and abs(v - k) <= 0.5


def test_clamp_and_enlarge_happen_in_the_frame_written():
    # a 100x50 view seen at 200x100: the box is clamped and grown to 28 px there, then halved
    framed = frame_box_to_view([-20, 30, 4, 34], (100, 50), (200, 100), min_side=28)
    assert framed.was_clamped and framed.was_enlarged
    assert framed.clamped == (0.0, 30.0, 4.0, 34.0)
    assert framed.framed == (0.0, 18.0, 28.0, 46.0)
    assert framed.pixels == (0.0, 9.0, 14.0, 23.0)
    assert enlarge_box((0.0, 0.0, 5.0, 5.0), 28, 10, 40) == (0.0, 0.0, 10.0, 28.0)  # at most the image side
    with pytest.raises(GeometryError, match=r"lies outside V3, which is 200x100 px"):
        frame_box_to_view([210, 0, 220, 10], (100, 50), (200, 100), image="V3")
    with pytest.raises(GeometryError, match=r"point_2d \[250, 10\] lies outside V3, which is 200x100"):
        locate_point(slice_view(marker_volume(), "axial").geometry, [250, 10], frame_size=(200, 100), image="V3")


def test_montage_box_across_panels_and_footprint_per_panel():
    montage = marker_views()[1]["montage"]
    a, b = montage.geometry.tiles[:2]
    with pytest.raises(GeometryError, match=r"single montage panel.*\(V1\)"):
        locate_box(montage.geometry, [b.x0 - 3, 2, b.x0 + 3, 8], image="V1")
    mask = np.zeros(SHAPE, dtype=bool)
    mask[MARKER[0], 10:20, 5:25] = True
    footprint = mask_footprint(mask, montage.geometry)
    marked = next(t for t in montage.geometry.tiles if round(t.geometry.origin[0]) == MARKER[0])
    g = marked.geometry
    inside = footprint[marked.y0:marked.y0 + g.height, marked.x0:marked.x0 + g.width]
    assert inside.sum() == footprint.sum() > 0  # only the panel of the marked slice
    assert np.array_equal(inside, mask_footprint(mask, g))
    # each footprint pixel's centre lies in the mask, give or take the one voxel of linear sampling
    ys, xs = np.nonzero(inside)
    zyx = g.pixel_to_voxel(np.column_stack([xs, ys]))
    assert np.all(np.abs(zyx[:, 0] - MARKER[0]) < 1e-6)
    assert np.all((zyx[:, 1] >= 9) & (zyx[:, 1] <= 20) & (zyx[:, 2] >= 4) & (zyx[:, 2] <= 25))
    centre = np.round(centre_to_edge(g.voxel_to_pixel([[MARKER[0], 15, 15]])[0]) - 0.5).astype(int)
    assert inside[centre[1], centre[0]]


def test_crop_lies_where_map_box_says_in_its_parent():
    vol = marker_volume()
    axial = slice_view(vol, "axial", MARKER[0])
    crop = crop_view(vol, axial, (10.0, 12.0, 30.0, 25.0), margin=0.0)
    shown = map_box((0.0, 0.0, crop.geometry.width, crop.geometry.height), crop.geometry, axial.geometry)
    assert np.allclose(shown, (10.0, 12.0, 30.0, 25.0), atol=1e-6)
    # and a box on the parent lands on the same voxels through the crop
    on_crop = map_box((15.0, 15.0, 20.0, 20.0), axial.geometry, crop.geometry)
    assert locate_box(crop.geometry, on_crop).ranges == locate_box(axial.geometry, (15.0, 15.0, 20.0, 20.0)).ranges


# -- model frames of each family ----------------------------------------------------------------
def qwen_processor(patch: int, merge: int, min_pixels: int, max_pixels: int) -> SimpleNamespace:
    return SimpleNamespace(image_processor=SimpleNamespace(
        patch_size=patch, merge_size=merge, size={"shortest_edge": min_pixels, "longest_edge": max_pixels}))


def test_model_frame_from_each_family_processor():
    qwen25 = qwen_processor(14, 2, 4 * 28 * 28, 1280 * 28 * 28)
    frame = ModelFrame.from_processor(qwen25)
    assert frame == ModelFrame.qwen(28, 4 * 28 * 28, 1280 * 28 * 28)
    assert frame(1000, 700) == tuple(reversed(smart_resize(700, 1000, 28, 4 * 28 * 28, 1280 * 28 * 28)))
    qwen3 = qwen_processor(16, 2, 64 * 32 * 32, 16384 * 32 * 32)
    assert ModelFrame.from_processor(qwen3, relative=True)(1000, 700) == (RELATIVE_SCALE, RELATIVE_SCALE)
    gemma = SimpleNamespace(image_processor=SimpleNamespace(do_resize=True, size={"height": 896, "width": 896}))
    assert ModelFrame.from_processor(gemma)(636, 420) == (896, 896)
    internvl = SimpleNamespace(image_processor=SimpleNamespace(
        do_resize=True, size={"height": 448, "width": 448}, crop_to_patches=True, min_patches=1, max_patches=12))
    tiles = ModelFrame.from_processor(internvl)
    w, h = tiles(1000, 500)
    assert tiles.rule == "tiles" and w % 448 == 0 and h % 448 == 0 and w > h
    assert ModelFrame.from_processor(SimpleNamespace())(636, 420) == (636, 420)
    with pytest.raises(GeometryError, match="unknown model frame rule 'square'"):
        ModelFrame("square")


def test_model_frame_from_a_served_resize_rule():
    assert ModelFrame.from_resize_rule(None)(636, 420) == (636, 420)
    assert ModelFrame.from_resize_rule("gemma3")(636, 420) == (896, 896)
    assert ModelFrame.from_resize_rule("internvl", relative=True)(636, 420) == (1000, 1000)
    assert ModelFrame.from_resize_rule("qwen3_vl", relative=True) == ModelFrame.relative()
    small = ModelFrame.from_resize_rule("qwen2_5_vl", max_pixels=256 * 28 * 28)
    assert small == ModelFrame.qwen(28, RESIZE_RULES["qwen2_5_vl"].min_pixels, 256 * 28 * 28)
    assert small(1000, 700) == tuple(reversed(smart_resize(700, 1000, 28, 3136, 256 * 28 * 28)))


@pytest.mark.parametrize("rule", sorted(RESIZE_RULES) + ["relative"])
def test_every_frame_maps_a_point_back_to_the_same_voxel(rule):
    vol = marker_volume()
    view = slice_view(vol, "coronal", MARKER[1])
    frame = (ModelFrame.relative() if rule == "relative" else RESIZE_RULES[rule])(*view.size)
    point = rescale_point(tuple(marker_point(view, vol)), view.size, frame)
    assert np.allclose(locate_point(view.geometry, point, frame_size=frame).voxel, MARKER, atol=1e-6)


@pytest.mark.parametrize("kind", VIEW_KINDS)
@pytest.mark.parametrize("oblique", [False, True])
def test_voxels_on_view_is_the_inverse_of_locate_point(kind, oblique):
    # the rules planner names a voxel of a mask's component on a view through this: the point must
    # land on that voxel through the road a model's point takes, in the model's frame
    vol, views = marker_views(oblique)
    geometry, frame = views[kind].geometry, (1000, 1000)
    point = voxels_on_view(geometry, [MARKER], frame_size=frame)[0]
    np.testing.assert_allclose(point, rescale_point(marker_point(views[kind], vol), (geometry.width,
                                                                                     geometry.height), frame))
    located = locate_point(geometry, point, frame_size=frame)
    shown_axes = [a for a in range(3) if a != located.projection_axis]  # a projection has no depth
    assert [located.index()[a] for a in shown_axes] == [MARKER[a] for a in shown_axes]


def test_voxels_on_view_is_nan_where_the_view_does_not_show_the_voxel():
    vol, views = marker_views()
    off_slice = (MARKER[0] + 1, MARKER[1], MARKER[2])  # the next axial slice
    beside = (MARKER[0], MARKER[1], MARKER[2] + 20)   # outside the crop around the marker
    assert np.isnan(voxels_on_view(views["axial"].geometry, [off_slice])).all()
    assert np.isnan(voxels_on_view(views["crop"].geometry, [beside])).all()
    assert np.isfinite(voxels_on_view(views["montage"].geometry, [(5, 3, 3)])).all()  # panel of slice 5
    assert np.isfinite(voxels_on_view(views["mip"].geometry, [off_slice])).all()  # a projection shows every depth
