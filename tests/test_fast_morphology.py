"""The speed mechanics of the classical segmenters give the same answers as the scipy calls they
replace, and the perf scripts' timing, plotting and peer pipelines work."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from grounding.segmenters import morphology
from grounding.segmenters.morphology import (
    CONN6,
    CONN26,
    PLANAR4,
    CoarseGrid,
    border_connected,
    bounding_box,
    centroid,
    component_sizes,
    dilate,
    ellipsoid,
    erode,
    fill_holes_slicewise,
    label_components,
    linear_above,
    voxel_bounds,
)

SHAPES = [(7, 9, 8), (1, 6, 5), (2, 2, 3), (12, 13, 11)]
ELEMENTS = [CONN6, CONN26, PLANAR4, ellipsoid(3.0, (1.0, 1.0, 1.0), planar=True), ellipsoid(2.0, (1.0, 1.0, 1.0))]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("fill", [0.2, 0.7])
def test_erode_dilate_and_label_match_scipy(shape, fill):
    mask = np.random.default_rng(sum(shape)).random(shape) < fill
    for element in ELEMENTS:
        for border in (False, True):
            np.testing.assert_array_equal(erode(mask, element, border),
                                          ndimage.binary_erosion(mask, element, border_value=int(border)))
        np.testing.assert_array_equal(dilate(mask, element), ndimage.binary_dilation(mask, element))
    for structure in (CONN6, CONN26, PLANAR4):
        labels, n = label_components(mask, structure)
        expected, m = ndimage.label(mask, structure)
        assert n == m
        np.testing.assert_array_equal(labels, expected)  # same numbering, so ties break the same way


@pytest.mark.parametrize("shape", [(1, 1, 7), (7, 1, 1), (1, 7, 1)])
def test_lines_of_voxels_are_labelled(shape):
    """cc3d's 26-connected pass raised "maximum length exception" on a line with three runs."""
    mask = np.array([1, 0, 1, 1, 0, 0, 1], bool).reshape(shape)
    for structure in (CONN6, CONN26):
        labels, n = label_components(mask, structure)
        expected, m = ndimage.label(mask, structure)
        assert n == m == 3
        np.testing.assert_array_equal(labels, expected)


def test_bounding_boxes_centroid_and_sizes_match_their_slow_forms(monkeypatch):
    mask = np.random.default_rng(3).random((9, 14, 12)) < 0.35
    labels, n = ndimage.label(mask, PLANAR4)
    def boxes(lo: np.ndarray, hi: np.ndarray) -> list[tuple[slice, ...]]:
        return [tuple(map(slice, a, b)) for a, b in zip(lo[1:].tolist(), hi[1:].tolist())]

    coords = np.nonzero(labels)
    assert boxes(*voxel_bounds(labels[coords], coords, n)) == ndimage.find_objects(labels)
    keep = np.arange(n + 1) % 3 == 0
    coords = np.nonzero(keep[labels])
    lo, hi = voxel_bounds(labels[coords], coords, n)
    assert all((box == ref) if keep[i + 1] else box == (slice(0, 0),) * 3
               for i, (box, ref) in enumerate(zip(boxes(lo, hi), ndimage.find_objects(labels))))
    for part in (mask, labels == 5, np.zeros_like(mask)):
        assert bounding_box(part) == (ndimage.find_objects(part.astype(np.uint8)) or [None])[0]
    np.testing.assert_allclose(centroid(mask), np.argwhere(mask).mean(axis=0))
    few, k = ndimage.label(mask[:2, :4, :4], CONN6)  # the one-comparison-per-label count
    assert 1 < k <= morphology.FEW_LABELS
    np.testing.assert_array_equal(component_sizes(few, k), np.bincount(few.ravel(), minlength=k + 1))
    monkeypatch.setattr(morphology, "COUNT_CHUNK", 100)  # several chunks
    np.testing.assert_array_equal(component_sizes(labels, n), np.bincount(labels.ravel(), minlength=n + 1))
    planar, m = label_components(mask, PLANAR4)  # a view into the stacked slices' labels
    np.testing.assert_array_equal(component_sizes(planar, m), np.bincount(labels.ravel(), minlength=n + 1))


@pytest.mark.parametrize("fill", [0.3, 0.6, 0.85])
def test_border_floods_match_scipy_labelling(fill):
    rng = np.random.default_rng(int(fill * 100))
    for shape in SHAPES:
        background = rng.random(shape) < fill
        np.testing.assert_array_equal(
            fill_holes_slicewise(~background), np.stack([ndimage.binary_fill_holes(p) for p in ~background]))
        # a frame closed in places: background reaches the border only through its open voxels
        frame = rng.random((shape[0], shape[1] + 2, shape[2] + 2)) < 0.6
        padded = frame.copy()
        padded[:, 1:-1, 1:-1] = background
        labels, _ = ndimage.label(padded, PLANAR4)
        rim = np.zeros(labels.max() + 1, dtype=bool)
        for edge in (labels[:, 0, :], labels[:, -1, :], labels[:, :, 0], labels[:, :, -1]):
            rim[edge] = True
        rim[0] = False
        np.testing.assert_array_equal(border_connected(background, frame), rim[labels[:, 1:-1, 1:-1]])


def test_linear_above_is_the_voxelwise_comparison():
    shape = (6, 7, 9)
    row = np.array([0.31, -0.23, 0.97])

    def world_x(zyx: np.ndarray) -> np.ndarray:
        return np.asarray(zyx) @ row + 4.9

    points = np.argwhere(np.ones(shape, dtype=bool))
    values = world_x(points)
    threshold = 8.123  # no voxel lies exactly on it
    assert np.abs(values - threshold).min() > 1e-6
    np.testing.assert_array_equal(linear_above(shape, world_x, threshold).ravel(), values > threshold)


def test_upsample_inverts_the_block_layout():
    grid = CoarseGrid((7, 10, 11), (2, 3, 4))
    fine = np.arange(7 * 10 * 11).reshape(7, 10, 11)
    coarse = grid.sample(fine)
    up = grid.upsample(coarse)
    # fine voxel i of an axis belongs to block i // stride, the last block absorbing the remainder
    owners = [np.minimum(np.arange(n) // s, c - 1) for n, s, c in zip(grid.shape, grid.strides, coarse.shape)]
    np.testing.assert_array_equal(up, coarse[np.ix_(*owners)])
    for box in [(slice(1, 3), slice(0, 2), slice(2, 3)), (slice(0, 3), slice(2, 3), slice(1, 3))]:
        np.testing.assert_array_equal(grid.upsample(coarse[box], box), up[grid.fine_box(box)])


def test_round_robin_timing_and_scaling_plot(tmp_path):
    from benchmarks.core.plots import scaling_plot
    from benchmarks.core.timing import ratio_line, time_round_robin

    calls: list[str] = []
    timings = time_round_robin({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, repeats=3)
    assert calls == ["a", "b"] * 4  # a warm-up each, then interleaved
    assert len(timings["a"].seconds) == 3 and timings["a"].low <= timings["a"].median <= timings["a"].high
    assert ratio_line(timings, "a", "b").startswith("a / b: ")
    path = scaling_plot({"a": [(10, 1.0, 0.9, 1.1), (100, 2.0, 1.8, 2.4)]}, tmp_path / "p" / "s.png", "t")
    assert path.exists() and path.stat().st_size > 1000


def test_peer_lung_pipelines_find_both_lungs():
    from benchmarks.perf_segment import cc3d_lungs, classical_lungs, scipy_lungs
    from grounding.segmenters.agreement import dice
    from imaging.phantoms import chest_ct

    phantom = chest_ct(seed=0, spacing=(6.0, 6.0, 6.0), vessels=False)
    for run in (classical_lungs, cc3d_lungs, scipy_lungs):
        left, right = run(phantom.volume)
        assert dice(left, phantom.labels["lung_left"]) > 0.9, run.__name__
        assert dice(right, phantom.labels["lung_right"]) > 0.9, run.__name__


@pytest.mark.parametrize("shape, strides", [((5, 12, 16), (1, 2, 4)), ((4, 9, 10), (2, 3, 2)), ((3, 7, 13), (1, 2, 3)),
                                            ((2, 8, 24), (2, 4, 8))])
def test_block_maximum_matches_the_blockwise_or(shape, strides):
    grid = CoarseGrid(shape, strides)
    data = np.random.default_rng(sum(shape)).random(shape)
    expected = np.zeros(grid.sample(data).shape, dtype=bool)
    owners = [np.minimum(np.arange(n) // s, c - 1) for n, s, c in zip(shape, strides, expected.shape)]
    np.logical_or.at(expected, np.ix_(*owners), data > 0.9)
    coarse, above = grid.sample_and_any_above(data, 0.9)
    np.testing.assert_array_equal(above, expected)
    np.testing.assert_array_equal(coarse, grid.sample(data))


def test_coarse_grid_reaches_its_block_size_only_where_it_costs_little_resolution():
    strides = lambda shape, spacing: CoarseGrid.for_spacing(shape, spacing, 2.5, min_block=8).strides  # noqa: E731
    # 1.875 mm slices under 2.5 mm pixels merged (3.75 mm), and the pixels paired: 8 voxels a block
    assert strides((128, 128, 128), (1.875, 2.5, 2.5)) == (2, 2, 2)
    assert CoarseGrid.for_spacing((128, 128, 128), (1.875, 2.5, 2.5), 2.5).strides == (1, 1, 1)
    assert strides((300, 512, 512), (0.8, 0.625, 0.625)) == (3, 4, 4)  # already 48 voxels a block
    # slices thicker than the pixels stay (merging 1.5 mm slices under 1 mm pixels costs nodules and
    # kidneys on the stress cases), and 1-1.25 mm pixels keep their 2-2.5 mm grid
    assert strides((150, 256, 256), (1.6, 1.25, 1.25)) == (1, 2, 2)
    assert strides((100, 300, 300), (1.5, 1.0, 1.0)) == (1, 2, 2)
    # no coarser grid when it cannot reach the block size: a 3 x 2 x 2 mm or 8 mm scan keeps its own
    assert strides((80, 170, 170), (3.0, 2.0, 2.0)) == (1, 1, 1)
    assert strides((30, 42, 42), (8.0, 8.0, 8.0)) == (1, 1, 1)


def test_chest_shortcuts_match_their_whole_array_forms():
    from grounding.segmenters.chest import _mean3_below, border_opening

    rng = np.random.default_rng(5)
    for _ in range(60):
        shape = tuple(int(v) for v in rng.integers(1, 12, 3))
        hu = rng.normal(-850.0, 60.0, shape).astype(np.float32)
        hu[rng.random(shape) < rng.choice([0.0, 0.02, 0.4])] = -1000.0  # sparse and dense air
        within = rng.random(shape) < 0.8
        np.testing.assert_array_equal(_mean3_below(hu, hu < -950.0, -950.0, within),
                                      within & (ndimage.uniform_filter(hu, 3) < -950.0))
        mask = rng.random(shape) < 0.7
        se = ellipsoid(float(rng.uniform(1.0, 8.0)), (2.5, float(rng.uniform(1.0, 3.0)), 1.5), planar=True)
        opened, seal = dilate(erode(mask, se), se), border_opening(mask, se)
        every = slice(None)
        for line in ((every, 0), (every, -1), (every, every, 0), (every, every, -1)):  # the border lines
            np.testing.assert_array_equal(seal[line], opened[line])
