"""Spacing-aware morphology on boolean (z, y, x) masks, and a coarse grid for fast analysis.

Radii are in millimetres and turned into voxel radii with the volume's spacing, so the same
operation means the same anatomy on 0.6 mm and 5 mm grids. "Planar" operations act within each
slice (z-extent zero), which is also what keeps them meaningful on single-slice (2-D) inputs.

Speed: `label_components` uses connected-components-3d (cc3d) for face- and corner-connected 3-D labelling
(several times faster than `scipy.ndimage.label`, same numbering), and for in-plane labelling
(`label_planar`: the slices stacked into one tall 2-D image, a blank row between them);
`fill_holes_slicewise` and `border_connected` flood from the slice borders the same way, in one
cc3d pass per slab of slices; `erode` and `dilate` combine shifted views of the mask, one pass per
structuring-element offset, instead of scipy's per-voxel loop (7-20x faster for the small
elements used here, same results). `bounding_box`, `centroid` and `component_sizes` avoid
`scipy.ndimage.find_objects`, axis-wise `np.count_nonzero` and, for a few labels,
`np.bincount`'s int64 copy: each costs more than a whole labelling on a small volume. Passes over
a full-resolution volume run slab by slab (`CoarseGrid.slabs`, `SLAB_VOXELS`): whole-volume
temporaries are fresh memory on every call, which the operating system maps and zeroes page by
page (on the 150 x 256 x 256 lung benchmark that was about a seventh of the time), while a slab's
temporaries stay in the cache and their memory is reused.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache

import cc3d
import numpy as np
from scipy import ndimage

#: 6-connectivity in 3-D (faces); used to keep thin junctions from merging structures
CONN6 = ndimage.generate_binary_structure(3, 1)
#: 26-connectivity in 3-D
CONN26 = ndimage.generate_binary_structure(3, 3)
#: 4-connectivity within each slice: labelling with it labels every slice separately
PLANAR4 = np.zeros((3, 3, 3), dtype=bool)
PLANAR4[1] = ndimage.generate_binary_structure(2, 1)


def label_components(mask: np.ndarray, structure: np.ndarray = CONN6) -> tuple[np.ndarray, int]:
    """Connected components of a boolean mask: ``(labels, n)`` numbered as `scipy.ndimage.label`
    numbers them (scan order), through cc3d where the connectivity is 3-D faces or corners or
    in-plane faces (`PLANAR4`)."""
    if mask.ndim == 3 and structure.shape == (3, 3, 3):
        if np.array_equal(structure, PLANAR4):
            return label_planar(mask)
        for connectivity, known in ((6, CONN6), (26, CONN26)):
            if np.array_equal(structure, known):
                if sorted(mask.shape)[1] == 1:
                    # a line of voxels has no corner neighbours, and cc3d's 26-connected pass
                    # overflows its label table on one with three or more runs
                    connectivity = 6
                labels, n = cc3d.connected_components(mask, connectivity=connectivity, return_N=True)
                return labels, int(n)
    labels, n = ndimage.label(mask, structure=structure)
    return labels, int(n)


def label_planar(mask: np.ndarray) -> tuple[np.ndarray, int]:
    """Each slice's 4-connected components, numbered on from slice to slice in scan order (as
    `scipy.ndimage.label` with `PLANAR4`): one cc3d pass over the slices stacked into a tall 2-D
    image with a blank row after each. The labels are a (z, y, x) view into that image."""
    nz, ny, nx = mask.shape
    tall = np.zeros((nz, ny + 1, nx), dtype=bool)
    tall[:, :ny] = mask
    labels, n = cc3d.connected_components(tall.reshape(nz * (ny + 1), nx), connectivity=4, return_N=True)
    return labels.reshape(nz, ny + 1, nx)[:, :ny], int(n)


def border_connected(background: np.ndarray, frame: np.ndarray | None = None) -> np.ndarray:
    """Per slice, the voxels of ``background`` 4-connected to the slice's border.

    ``frame`` (nz, ny + 2, nx + 2), optional: which voxels of a one-voxel frame around each slice
    are open (default all; its inner part is ignored): a closed frame voxel keeps the background
    beside it from reaching the border there. One cc3d pass per slab of slices (about
    `SLAB_VOXELS` each): the framed slices are stacked into a tall 2-D image, each below an open
    link row and all between two open link columns, so every open frame voxel and everything
    reaching one is a single component, the image's first.
    """
    nz, ny, nx = background.shape
    out = np.empty(background.shape, dtype=bool)
    step = max(1, SLAB_VOXELS // ((ny + 3) * (nx + 4)))
    for z0 in range(0, nz, step):
        z1 = min(z0 + step, nz)
        flat = np.ones(((z1 - z0) * (ny + 3) + 1, nx + 4), dtype=bool)  # a last link row closes the last slice
        tall = flat[:-1].reshape(z1 - z0, ny + 3, nx + 4)
        if frame is not None:  # its one-voxel ring (the background fills the rest)
            tall[:, 1, 1:-1], tall[:, -1, 1:-1] = frame[z0:z1, 0], frame[z0:z1, -1]
            tall[:, 2:-1, 1], tall[:, 2:-1, -2] = frame[z0:z1, 1:-1, 0], frame[z0:z1, 1:-1, -1]
        tall[:, 2:-1, 2:-2] = background[z0:z1]
        labels = cc3d.connected_components(flat, connectivity=4)
        np.equal(labels[:-1].reshape(z1 - z0, ny + 3, nx + 4)[:, 2:-1, 2:-2], labels[0, 0], out=out[z0:z1])
    return out


def bounding_box(mask: np.ndarray) -> tuple[slice, ...] | None:
    """``scipy.ndimage.find_objects(mask)[0]`` (None for an empty mask) from the mask's projections:
    each slice's ``any`` over its contiguous row, then the z range's slices OR-ed as bytes into one
    plane for the in-plane ones (find_objects visits every voxel with a per-voxel loop, and numpy's
    ``any`` over several axes is several times slower)."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    along_z = np.flatnonzero(mask.reshape(mask.shape[0], -1).any(axis=1))
    if along_z.size == 0:
        return None
    z0, z1 = int(along_z[0]), int(along_z[-1]) + 1
    box = [slice(z0, z1)]
    if mask.ndim == 1:
        return tuple(box)
    plane = np.bitwise_or.reduce(mask[z0:z1].view(np.uint8), axis=0).view(bool)
    for axis in range(plane.ndim):
        profile = np.flatnonzero(plane.any(axis=tuple(a for a in range(plane.ndim) if a != axis)))
        box.append(slice(int(profile[0]), int(profile[-1]) + 1))
    return tuple(box)


def grown_box(box: tuple[slice, ...], margin: int | Sequence[int], shape: tuple[int, ...]) -> tuple[slice, ...]:
    """``box`` grown by ``margin`` voxels on each side (one margin for every axis, or one per axis),
    clipped to an array of ``shape``."""
    margins = [margin] * len(box) if isinstance(margin, (int, np.integer)) else margin
    return tuple(slice(max(s.start - m, 0), min(s.stop + m, n)) for s, m, n in zip(box, margins, shape))


def voxel_bounds(owner: np.ndarray, coords: tuple[np.ndarray, ...], n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per label 0..n, the lowest index and one past the highest along each axis of some of its
    voxels (``owner``: the label of each, ``coords``: their indices as `np.nonzero` gives them):
    two (n + 1, ndim) int64 arrays, zeros for a label with none there. Vectorised: on the
    thousands of small air pockets of a noisy scan a per-label loop outweighs the analysis."""
    lo = np.zeros((n + 1, len(coords)), dtype=np.int64)
    hi = np.zeros((n + 1, len(coords)), dtype=np.int64)
    if owner.size:
        # the voxels grouped by label (a stable sort), each group's extremes by one reduceat per axis
        # and bound (``np.minimum.at`` and ``np.maximum.at`` cost several times as much)
        order = np.argsort(owner, kind="stable")
        grouped = owner[order]
        starts = np.flatnonzero(np.concatenate(([True], grouped[1:] != grouped[:-1])))
        present = grouped[starts]
        for axis, c in enumerate(coords):
            values = c[order]
            lo[present, axis] = np.minimum.reduceat(values, starts)
            hi[present, axis] = np.maximum.reduceat(values, starts) + 1
    return lo, hi


def centroid(mask: np.ndarray, origin: tuple[int, ...] | None = None) -> np.ndarray:
    """Mean (z, y, x) index of a non-empty mask, from its axis profiles (``np.argwhere`` would hold
    24 bytes per voxel of the mask): per-slice counts, and the slices summed as bytes into one
    plane for the in-plane ones (axis-wise ``np.count_nonzero`` is several times slower).

    ``origin``: the index of ``mask``'s first voxel in a larger array (a box cut from it), whose
    indices are returned; the sums are of integers, so this is exactly the larger array's centroid."""
    mask = np.ascontiguousarray(mask, dtype=bool)
    nz = mask.shape[0]
    origin = origin or (0,) * mask.ndim
    if mask.ndim == 1:
        return np.array([(np.flatnonzero(mask) + origin[0]).mean()])
    # counts in the narrowest integers that cannot overflow: the reduction's cost is its output's writes
    per_slice = mask.view(np.uint8).reshape(nz, -1).sum(axis=1, dtype=np.int32 if mask[0].size < 2**31 else np.int64)
    per_slice = per_slice.astype(np.float64)
    n = per_slice.sum()
    plane = np.add.reduce(mask.view(np.uint8), axis=0,
                          dtype=np.uint16 if nz < 2**16 else np.int32 if nz < 2**31 else np.int64)
    out = [float(per_slice @ np.arange(origin[0], origin[0] + nz)) / n]
    for k in range(plane.ndim):
        profile = plane.sum(axis=tuple(a for a in range(plane.ndim) if a != k), dtype=np.float64)
        out.append(float(profile @ np.arange(origin[k + 1], origin[k + 1] + plane.shape[k])) / n)
    return np.array(out)


def linear_above(shape: tuple[int, int, int], f: Callable[[np.ndarray], np.ndarray], threshold: float) -> np.ndarray:
    """Boolean (z, y, x) array of the voxels where ``f``, a linear function of (N, 3) indices such as
    a world coordinate, exceeds ``threshold``; one in-plane ramp from ``f``'s coefficients compared
    with each slice's level, so no per-voxel coordinate list is made."""
    base = float(f(np.zeros((1, 3)))[0])
    dz, dy, dx = (float(f(np.eye(3)[k][None])[0]) - base for k in range(3))
    plane = np.arange(shape[1])[:, None] * dy + np.arange(shape[2])[None, :] * dx
    levels = threshold - base - np.arange(shape[0]) * dz
    return plane[None] > levels[:, None, None]


@lru_cache(maxsize=4096)
def _shifted(offset: tuple[int, ...], shape: tuple[int, ...]) -> tuple[tuple[slice, ...], tuple[slice, ...], tuple]:
    """Slices pairing each voxel ``x`` (destination) with ``x + offset`` (source) where both lie in
    the grid, and per axis the destination slice whose source falls outside it. Cached: on a small
    grid building the slices costs as much as the shifted operation itself."""
    dst, src, outside = [], [], []
    for axis, (o, n) in enumerate(zip(offset, shape)):
        if o >= 0:
            dst.append(slice(0, max(n - o, 0)))
            src.append(slice(min(o, n), n))
            outside.append((axis, slice(max(n - o, 0), n)))
        else:
            dst.append(slice(min(-o, n), n))
            src.append(slice(0, max(n + o, 0)))
            outside.append((axis, slice(0, min(-o, n))))
    return tuple(dst), tuple(src), tuple(outside)


def _offsets(structure: np.ndarray) -> tuple[tuple[int, ...], ...]:
    """The structuring element's offsets from its centre, but the centre itself."""
    return _element_offsets(np.asarray(structure, dtype=bool).tobytes(), structure.shape)


@lru_cache(maxsize=256)
def _element_offsets(cells: bytes, shape: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """`_offsets` of the element with these boolean ``cells``, once per element (on a small grid
    listing them costs as much as a shift)."""
    structure = np.frombuffer(cells, dtype=bool).reshape(shape)
    centre = np.array(shape) // 2
    return tuple(tuple(o) for o in (np.argwhere(structure) - centre).tolist() if any(o))


def erode(mask: np.ndarray, structure: np.ndarray = CONN6, border_value: bool = False) -> np.ndarray:
    """`scipy.ndimage.binary_erosion` by a symmetric structuring element, as shifted ANDs.

    ``border_value``: what lies beyond the array (True: the border does not erode).
    """
    out = np.array(mask, dtype=bool, copy=True)
    source = mask if mask.dtype == bool and mask.flags.c_contiguous else out.copy()
    for offset in _offsets(structure):
        dst, src, outside = _shifted(offset, mask.shape)
        if border_value:
            out[dst] &= source[src]
            continue
        # one shift of the flat views (`flat_pair`); the voxels it pairs with a wrapped source
        # lie in the border bands cleared below
        flat_dst, flat_src = flat_pair(offset, mask.shape)
        out.reshape(-1)[flat_dst] &= source.reshape(-1)[flat_src]
        for axis, band in outside:
            index = [slice(None)] * mask.ndim
            index[axis] = band
            out[tuple(index)] = False
    return out


def dilate(mask: np.ndarray, structure: np.ndarray = CONN6) -> np.ndarray:
    """`scipy.ndimage.binary_dilation` by a symmetric structuring element, as shifted ORs (one shift
    of the flat views each, `flat_pair`, the border bands it wraps into kept as they were)."""
    out = np.array(mask, dtype=bool, copy=True)
    source = mask if mask.dtype == bool and mask.flags.c_contiguous else out.copy()
    for offset in _offsets(structure):
        _, _, outside = _shifted(offset, mask.shape)
        kept = []
        for axis, band in outside[1:]:
            if offset[axis]:
                index = [slice(None)] * mask.ndim
                index[axis] = band
                kept.append((tuple(index), out[tuple(index)].copy()))
        flat_dst, flat_src = flat_pair(offset, mask.shape)
        out.reshape(-1)[flat_dst] |= source.reshape(-1)[flat_src]
        for index, values in kept:
            out[index] = values
    return out


@lru_cache(maxsize=4096)
def flat_pair(offset: tuple[int, ...], shape: tuple[int, ...]) -> tuple[slice, slice]:
    """Slices of the flat view of a C-ordered grid of ``shape`` pairing each voxel (destination) with
    the voxel ``offset`` away (source) wherever that lies in the grid: one shift over the flat view
    instead of one per row (numpy is several times slower along a short last axis). It also pairs
    voxels whose source lies beyond the grid along an axis but the first, wrapped into the next row
    or slice: those lie in that axis' border band (`_shifted`), which the caller clears or restores."""
    size = int(np.prod(shape))
    flat = sum(o * int(np.prod(shape[axis + 1:])) for axis, o in enumerate(offset))
    if abs(flat) >= size:
        return slice(0, 0), slice(0, 0)
    if flat >= 0:
        return slice(0, size - flat), slice(flat, size)
    return slice(-flat, size), slice(0, size + flat)


def ellipsoid(radius_mm: float, spacing: tuple[float, float, float], planar: bool = False) -> np.ndarray:
    """A boolean ellipsoid of ``radius_mm`` on a grid of ``spacing`` (z, y, x) mm.

    Axes whose spacing exceeds the radius get extent zero (a 5 mm slice is not eroded by a 2 mm
    ball); ``planar`` forces the z extent to zero. Always at least the centre voxel.
    """
    return _ellipsoid(float(radius_mm), tuple(float(s) for s in spacing), bool(planar)).copy()


@lru_cache(maxsize=256)
def _ellipsoid(radius_mm: float, spacing: tuple[float, ...], planar: bool) -> np.ndarray:
    """`ellipsoid`, built once per argument set (on a small grid building it costs as much as using it)."""
    radii = [0 if (planar and axis == 0) else int(radius_mm / s + 1e-6) for axis, s in enumerate(spacing)]
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in radii)]
    level = sum((g / r) ** 2 if r else np.zeros_like(g, dtype=float) for g, r in zip(grids, radii))
    return np.asarray(level <= 1.0)


def fill_holes_slicewise(mask: np.ndarray) -> np.ndarray:
    """Fill, slice by slice, the background regions not connected to the slice border.

    Done by one in-plane flood of the background from the borders (`border_connected`, linear
    time), not by the iterative dilation of `scipy.ndimage.binary_fill_holes`, which is slow on large slices.
    """
    if not mask.any():
        return mask.copy()
    return ~border_connected(~mask)


def span_last_axis(lines: np.ndarray) -> np.ndarray:
    """Along the last axis: True from the first to the last True of each line (filled spans)."""
    forward = np.maximum.accumulate(lines, axis=-1)
    backward = np.maximum.accumulate(lines[..., ::-1], axis=-1)[..., ::-1]
    return forward & backward


#: full-resolution passes over a volume run on slabs of about this many voxels (`CoarseGrid.slabs`)
SLAB_VOXELS = 1 << 19
#: `component_sizes` counts this many voxels at a time: `np.bincount` converts its input to int64,
#: which for a whole volume's labels would be a temporary of twice a float32 volume
COUNT_CHUNK = 1 << 20
#: up to this many labels are counted one comparison at a time (a byte mask each), which beats
#: the int64 conversion of `np.bincount`
FEW_LABELS = 8


def component_sizes(labels: np.ndarray, n: int) -> np.ndarray:
    """Voxel count of each label 0..n (index 0 is the background)."""
    sizes = np.zeros(n + 1, dtype=np.int64)
    if n <= FEW_LABELS:
        for value in range(1, n + 1):
            sizes[value] = np.count_nonzero(labels == value)
        sizes[0] = labels.size - sizes[1:].sum()
        return sizes
    # chunks of whole slices: ``labels`` may be a view (`label_planar`), which would not flatten
    step = max(1, COUNT_CHUNK // max(1, labels[0].size))
    for start in range(0, labels.shape[0], step):
        sizes += np.bincount(labels[start:start + step].ravel(), minlength=n + 1)
    return sizes


def largest_component(mask: np.ndarray, structure: np.ndarray = CONN6) -> np.ndarray:
    """The largest connected component of ``mask`` (empty in, empty out)."""
    labels, n = label_components(mask, structure)
    if n <= 1:
        return np.array(mask, dtype=bool)
    if n > FEW_LABELS:
        sizes = component_sizes(labels, n)
        sizes[0] = 0
        return labels == int(np.argmax(sizes))
    # a few labels: each one's mask once (the largest is returned as it is), the last one's size what
    # the others leave of the mask's count
    best, best_size, rest = None, -1, np.count_nonzero(mask)
    for value in range(1, n):
        own = labels == value
        size = np.count_nonzero(own)
        rest -= size
        if size > best_size:
            best, best_size = own, size
    return labels == n if rest > best_size else best


def nearest_component(
    mask: np.ndarray, point: tuple[int, int, int], spacing: tuple[float, float, float],
    structure: np.ndarray = CONN26,
) -> np.ndarray:
    """The connected component of ``mask`` containing ``point``, or the one nearest to it (mm).

    Searches growing windows around the point, so a huge mask is never turned into coordinate
    lists. Returns an empty mask when ``mask`` is empty.
    """
    if not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    seed = point if mask[point] else _nearest_voxel(mask, point, spacing)
    labels, _ = label_components(mask, structure)
    return labels == labels[seed]


def restrict_to_prompt(
    mask: np.ndarray,
    region: tuple[slice, slice, slice] | None,
    point: tuple[int, int, int] | None,
    spacing: tuple[float, float, float],
    drawn: tuple[slice, slice, slice] | None = None,
) -> np.ndarray:
    """Apply prompts to a structure mask: clip it to the box, keep the component at the point.

    ``drawn``, the box as drawn on a slice when ``region`` is the 3-D slab searched around it,
    keeps only the parts of the clipped mask that the drawn box cuts.
    """
    if region is not None:
        clipped = np.zeros(mask.shape, dtype=bool)
        clipped[region] = mask[region]
        mask = clipped
        if drawn is not None and drawn != region:
            labels, _ = label_components(mask[region], CONN26)
            inner = tuple(slice(d.start - r.start, d.stop - r.start) for d, r in zip(drawn, region))
            hit = np.unique(labels[inner])
            mask[region] = np.isin(labels, hit[hit > 0])
    if point is not None:
        mask = nearest_component(mask, point, spacing)
    return mask


def _nearest_voxel(
    mask: np.ndarray, point: tuple[int, int, int], spacing: tuple[float, float, float]
) -> tuple[int, int, int]:
    sp = np.asarray(spacing)
    half = 8
    while True:
        lo = [max(p - half, 0) for p in point]
        hi = [min(p + half + 1, n) for p, n in zip(point, mask.shape)]
        window = mask[tuple(slice(a, b) for a, b in zip(lo, hi))]
        covers_all = all(a == 0 for a in lo) and all(b == n for b, n in zip(hi, mask.shape))
        if window.any():
            idx = np.argwhere(window) + lo
            dist = np.sqrt((((idx - point) * sp) ** 2).sum(axis=1))
            best = int(np.argmin(dist))
            # anything outside the window is at least `half` voxels away along some axis
            if covers_all or dist[best] <= half * sp.min():
                return tuple(int(v) for v in idx[best])  # type: ignore[return-value]
        elif covers_all:
            raise ValueError("empty mask")
        half *= 2


@dataclass(frozen=True)
class CoarseGrid:
    """Every ``strides``-th voxel of a grid, sampled at block centres, and the way back.

    Coarse voxel ``b`` along an axis stands for the fine block ``[b*s, (b+1)*s)`` (the last
    block absorbs the remainder) and takes its value from the block's centre voxel ``b*s + s//2``.
    """

    shape: tuple[int, int, int]
    strides: tuple[int, int, int]

    @classmethod
    def for_spacing(
        cls, shape: tuple[int, int, int], spacing: tuple[float, float, float], coarse_mm: float,
        min_block: int = 1,
    ) -> "CoarseGrid":
        """Strides that make coarse voxels about ``coarse_mm`` (never finer than the input); when a
        coarse voxel then holds fewer than ``min_block`` fine voxels, a coarser grid that costs little
        resolution, if it reaches ``min_block``: slices thinner than the input's pixels merged while
        the coarse slice spacing stays within 1.5 ``coarse_mm``, then in-plane pixels of about
        ``coarse_mm`` (stride 1, no coarser) paired (stride 2)."""
        strides = [max(1, min(n, int(coarse_mm / s + 1e-6))) for n, s in zip(shape, spacing)]
        if int(np.prod(strides)) < min_block:
            grown = list(strides)
            while (int(np.prod(grown)) < min_block and grown[0] < shape[0] and spacing[0] < min(spacing[1:])
                   and (grown[0] + 1) * spacing[0] <= 1.5 * coarse_mm + 1e-6):
                grown[0] += 1
            if int(np.prod(grown)) < min_block:
                grown[1:] = [min(2, n) if s == 1 and mm <= coarse_mm + 1e-6 else s
                             for s, n, mm in zip(grown[1:], shape[1:], spacing[1:])]
            if int(np.prod(grown)) >= min_block:
                strides = grown
        return cls(tuple(shape), tuple(strides))  # type: ignore[arg-type]

    @property
    def is_identity(self) -> bool:
        return self.strides == (1, 1, 1)

    def coarse_spacing(self, spacing: tuple[float, float, float]) -> tuple[float, float, float]:
        return tuple(sp * s for sp, s in zip(spacing, self.strides))  # type: ignore[return-value]

    def sample(self, data: np.ndarray) -> np.ndarray:
        """The coarse copy of a fine array (block-centre samples, contiguous)."""
        return np.ascontiguousarray(data[tuple(slice(s // 2, None, s) for s in self.strides)])

    def slabs(self, box: tuple[slice, ...] | None = None, voxels: int = SLAB_VOXELS) -> Iterator[tuple[slice, ...]]:
        """The coarse box ``box`` (default the whole grid; slices with explicit starts and stops) cut
        along z into sub-boxes of whole coarse slices, each holding about ``voxels`` fine voxels (at
        least one coarse slice): a full-resolution pass run slab by slab keeps its temporaries in
        the cache and reuses their memory, where whole-volume temporaries are fresh memory each
        time (on a small volume mapping and zeroing it costs as much as the pass itself)."""
        box = box or tuple(slice(0, len(range(s // 2, n, s))) for n, s in zip(self.shape, self.strides))
        fine_slice = int(np.prod([(sl.stop - sl.start) * s for sl, s in zip(box[1:], self.strides[1:])]))
        step = max(1, voxels // max(1, fine_slice * self.strides[0]))
        for start in range(box[0].start, box[0].stop, step):
            yield (slice(start, min(start + step, box[0].stop)),) + tuple(box[1:])

    def sample_and_any_above(self, data: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
        """`sample` of ``data`` and the coarse mask of the blocks holding any fine voxel above
        ``threshold``, in one pass over ``data``, slab by slab (`slabs`): the sample is taken from the
        slab the threshold has just read into the cache (on a large volume reading it twice from
        memory costs more than both operations).

        A block maximum rather than the centre sample: a structure thinner than a block (a thin
        chest wall) is kept wherever it passes.
        """
        shape = tuple(len(range(s // 2, n, s)) for n, s in zip(self.shape, self.strides))
        coarse, above = np.empty(shape, dtype=data.dtype), np.empty(shape, dtype=bool)
        centres = tuple(slice(s // 2, None, s) for s in self.strides)
        for sub in self.slabs():
            slab = data[self.fine_box(sub)]
            part = slab > threshold
            for axis in (2, 1, 0):  # the last axis first: it shrinks the array the most cheaply
                if self.strides[axis] > 1:
                    part = _block_any(part, axis, self.strides[axis])
            above[sub[0]] = part
            coarse[sub[0]] = slab[centres]
        return coarse, above

    def mean(self, data: np.ndarray) -> np.ndarray:
        """The coarse copy of a fine array as block means (float32): less noise than `sample`."""
        out = np.asarray(data, dtype=np.float32)
        for axis, s in enumerate(self.strides):
            if s == 1:
                continue
            count = len(range(s // 2, self.shape[axis], s))
            starts = np.arange(count) * s
            sizes = np.diff(np.append(starts, self.shape[axis])).astype(np.float32)
            shape = [1, 1, 1]
            shape[axis] = count
            out = np.add.reduceat(out, starts, axis=axis) / sizes.reshape(shape)
        return np.ascontiguousarray(out)

    def to_fine(self, zyx: np.ndarray) -> np.ndarray:
        """Coarse (continuous) indices -> fine indices of the block centres."""
        return np.asarray(zyx, dtype=np.float64) * self.strides + np.array(self.strides) // 2

    def fine_box(self, box: tuple[slice, ...]) -> tuple[slice, ...]:
        """The fine voxels of the coarse box ``box`` (slices with explicit starts and stops; the
        last block along an axis absorbs the remainder)."""
        out = []
        for sl, n, s in zip(box, self.shape, self.strides):
            count = len(range(s // 2, n, s))
            out.append(slice(sl.start * s, n if sl.stop >= count else sl.stop * s))
        return tuple(out)

    def upsample(self, coarse: np.ndarray, box: tuple[slice, ...] | None = None) -> np.ndarray:
        """Nearest-block upsampling of a coarse array to the fine shape, or of the coarse box
        ``box`` (``coarse`` is then that box's part) to `fine_box`.

        The last axis first, while the array is small: repeating along it copies single elements,
        along the first axes whole rows or slices. Bytes repeated 2, 4 or 8 times along the last
        axis are one multiplication (a byte times 0x0101... is that byte repeated), as `_block_any`
        reads such blocks.
        """
        box = box or tuple(slice(0, c) for c in coarse.shape)
        out = coarse
        for axis in reversed(range(coarse.ndim)):
            s, n, sl = self.strides[axis], self.shape[axis], box[axis]
            if s == 1:
                continue
            repeats = np.full(coarse.shape[axis], s)
            if sl.stop >= len(range(s // 2, n, s)):  # the box holds the last block
                repeats[-1] = n - (sl.stop - 1) * s
            if axis == coarse.ndim - 1 and s in (2, 4, 8) and out.itemsize == 1 and repeats[-1] == s:
                ones = np.array(int.from_bytes(b"\x01" * s, "little"), dtype=f"u{s}")
                out = (np.ascontiguousarray(out).view(np.uint8).astype(ones.dtype) * ones).view(out.dtype)
            else:
                out = np.repeat(out, repeats, axis=axis)
        return out


def _block_any(mask: np.ndarray, axis: int, stride: int) -> np.ndarray:
    """OR of each block of ``stride`` along ``axis`` (as many blocks as `CoarseGrid.sample` keeps,
    the last absorbing the remainder), by OR-ing the strided slices: numpy's ``any`` over a short
    reshaped axis is several times slower. Along a contiguous last axis whose length the stride
    divides, a block of 2, 4 or 8 bytes is read as one unsigned integer instead (strided byte
    access does not vectorise)."""
    n = mask.shape[axis]
    if axis == mask.ndim - 1 and stride in (2, 4, 8) and n % stride == 0 and mask.flags.c_contiguous:
        return mask.view(f"u{stride}") != 0
    m = len(range(stride // 2, n, stride))
    full = min(n, m * stride)
    first: np.ndarray | None = None
    out: np.ndarray | None = None
    for j in range(stride):  # stride >= 2: the first two offsets OR-ed into a new array, the rest into it
        index: list[slice] = [slice(None)] * 3
        index[axis] = slice(j, full, stride)
        part = mask[tuple(index)]
        if part.shape[axis] < m:  # the last block is short of this offset
            pad = [(0, 0)] * 3
            pad[axis] = (0, m - part.shape[axis])
            part = np.pad(part, pad)
        if first is None:
            first = part
        else:
            out = np.logical_or(first, part) if out is None else np.logical_or(out, part, out=out)
    assert out is not None
    if n > full:
        index = [slice(None)] * 3
        index[axis] = slice(full, n)
        last: list[slice] = [slice(None)] * 3
        last[axis] = slice(m - 1, m)
        out[tuple(last)] |= mask[tuple(index)].any(axis=axis, keepdims=True)
    return out
