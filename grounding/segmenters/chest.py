"""Classical CT analysis of the body, outside air, airways and the left and right lungs.

Everything that needs connectivity runs on a coarse copy of the volume (block-centre samples,
about `COARSE_MM` per voxel, and at least `COARSE_MIN_BLOCK` fine voxels each where that costs
little resolution: on an input already about that coarse the analysis would otherwise cost
several labellings of the whole volume) and the result is brought back to full resolution by
deciding only the voxels near each coarse boundary with the full-resolution HU threshold. Rules
whose precondition cannot hold are skipped on a count (no gas pocket without enough air-valued
voxels, no distance transform when a box erosion already shows the lung deep enough). Each step works in
the bounding box of what it looks at (the body in the dense tissue's box, airways and lungs in
the inside air's, the refinement in the labels'), with cc3d labelling slices and volumes alike:
on a small grid a pass over the whole field of view costs as much as the analysis. The pipeline:

1. **body**: voxels above `HU_BODY`; an in-plane opening of radius `TABLE_OPENING_MM` cuts the
   thin table and blankets off, the largest 3-D component is the patient, and the opening is
   undone within that component.
2. **outside air**: per slice, background connected to the image border. Where the body itself
   touches a border line (field of view cutting the patient), the border is sealed between the
   body's first and last voxel on that line, so a lung cut by the field of view is not taken for
   outside air; only tissue that survives the table opening seals, so the foam of a table running
   off the image's sides stays outside. Beyond a circular reconstruction field (the corners hold
   one exact padding value on every slice, `reconstruction_padding`) the image border is the
   circle: background it cuts open is lung, not outside air, when it is denser than air and
   continues into air the body encloses on another slice (`exposed_by_circle`). The body mask is
   everything that is not outside air.
3. **airways**: per slice, compact air components of tracheal size near the midline are linked
   across slices; the longest vertical chain (at least `TRACHEA_MIN_LENGTH_MM`) centred above the
   lungs' centre that does not open into a lung above and has lungs on both sides is the trachea
   (`_is_trachea`), then it is followed downwards, slice by slice, through components that
   overlap it and stay smaller than `AIRWAY_MAX_AREA_MM2` (main bronchi) until they open into
   the lung.
4. **lungs**: air below `HU_AIR` inside the body minus the airways; 3-D components. Components
   whose interior median lies within `GAS_MARGIN_HU` of the scan's own outside air are gas (bowel,
   stomach: lung is denser through its vessels and septa) and no candidates (`_is_gas`). When the
   largest one lies on both sides of the midline (lungs touching at the anterior/posterior
   junction) and no second lung-sized component lies on the other side, it is split by a
   watershed grown from its parts well left and right of their joint extent's middle towards it
   (`split_touching`);
   else each side's largest component lying deeper than the chest wall (`LUNG_MIN_DEPTH_MM`: air
   under clothing or in a skin fold is not lung) is its lung. Further pieces of a lung (a thin
   slab of the lung bases cuts its recesses apart) join it (`_add_lung_pieces`). Left and right
   are assigned by world ``x`` (LPS: +x is the patient's left). Gas pockets a lung merely touches
   (stomach gas behind a thin diaphragm) are cut off (`_drop_gas_pockets`). Holes are filled slice
   by slice in each lung, so nodules and vessels are inside the lung masks, except holes opening
   onto the tissue beyond the lung through the slice above or below (`HOLE_OPEN_MM2`): the dome
   of the diaphragm a lung base wraps around, with the abdomen under it (`_fill_label_holes`).
5. **split doubt**: where split lungs touch, no septum shows where the junction lies; when the
   contact area times `SPLIT_OFFSET_MM` reaches `SPLIT_DOUBT_FRACTION` of the smaller lung,
   `ChestLabels.split_doubt` says so and the lung evidence is doubtful (`split_doubt`).

Assumptions and limits: CT in Hounsfield units; consolidated or collapsed lung (denser than
`HU_AIR`) is not lung; a nodule touching the pleura is only partly inside the lung mask; the
midline (for laterality) is the trachea's centroid when found, else the body's; touching lungs are
split about the middle of their joint extent, so a junction lying off it with no septum to see is
missed by up to its offset (the split doubt says when that matters); gas inside a lung (a large
bulla, a pneumothorax) is cut off when less than a quarter of its shell is lung, and a very
emphysematous lung (median within 50 HU of air) would be taken for gas; a lung the circle of a
circular reconstruction field cuts open on every one of its slices is taken for outside air.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from scipy import ndimage

from grounding.segmenters.base import SegmentationError
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
    flat_pair,
    grown_box,
    label_components,
    label_planar,
    largest_component,
    linear_above,
    span_last_axis,
    voxel_bounds,
)
from imaging.volume import Volume

#: CT voxels above this (HU) are body; air is about -1000, fat -100
HU_BODY = -500.0
#: lung and airway air lies below this (HU); aerated lung is about -850
HU_AIR = -400.0
#: bone lies at or above this (HU)
HU_BONE = 200.0
#: coarse voxel size (mm) for connectivity analysis
COARSE_MM = 2.5
#: ... and, where it costs little resolution (`CoarseGrid.for_spacing`: slices thinner than the
#: input's pixels, pixels already about `COARSE_MM`), at least this many fine voxels per coarse
#: voxel: the analysis passes over its grid many times, so on a grid as fine as the input it would
#: cost several full-resolution labellings (the refinement still decides every boundary voxel at
#: full resolution). Merging slices thicker than the pixels (1.5 mm slices under 1 mm pixels) was
#: measured to cost nodules and kidneys on stress cases, so those keep their grid
COARSE_MIN_BLOCK = 8
#: radius (mm) of the in-plane opening that separates the table from the body
TABLE_OPENING_MM = 4.0
#: a trachea cross-section lies between these areas (mm2): adults are 150-500 mm2
TRACHEA_AREA_MM2 = (25.0, 800.0)
#: a trachea centroid lies within this fraction of the body width from the midline (or 15 mm)
TRACHEA_MIDLINE_FRACTION = 0.12
#: a trachea is followed over at least this length (mm) or the scan's height: a shorter chain is
#: a main bronchus entering the field of view, too far from the midline to stand for it
TRACHEA_MIN_LENGTH_MM = 20.0
#: followed airway components must stay below this area (mm2); larger ones are lung
AIRWAY_MAX_AREA_MM2 = 1200.0
#: lungs smaller than this fraction of the body are taken for bowel gas or noise, not lungs
LUNG_MIN_BODY_FRACTION = 0.005
#: and at least this large (mm3 in 3-D, mm2 on a single slice): air pockets between the body and
#: a head rest or blanket are not lungs
LUNG_MIN_SIZE = {False: 20_000.0, True: 400.0}
#: lungs are "touching" when the largest air component has this fraction on each side (a lung base
#: cut by the field of view may hold a sixth of their air)
MERGED_SIDE_FRACTION = 0.1
#: ... unless another component of at least this fraction of its size lies on the other side
PAIRED_SIZE_FRACTION = 0.25
#: lung pieces (each lung's largest, and further pieces of it) hold at least this fraction of the
#: largest air component
LUNG_PIECE_FRACTION = 0.05
#: a lung (or a piece of one) lies, by its median voxel, at least this deep (mm) inside the body: the
#: chest wall (skin, fat, muscle, ribs) is thicker; air trapped under clothing or in a skin fold is not
LUNG_MIN_DEPTH_MM = 12.0
#: touching lungs are split from markers this far (mm) either side of the midline
SPLIT_MARKER_MM = 20.0
#: ... flooding towards the midline, where 100 HU of pleural septum weigh as much as this many mm
SPLIT_HU_PER_MM = 10.0
#: where split lungs touch with no septum to see, the junction may lie this far (mm) from where the
#: split put it (the midline); the split is doubtful when that much of the contact could move this
#: fraction of the smaller lung to the other side
SPLIT_OFFSET_MM = 8.0
SPLIT_DOUBT_FRACTION = 0.2
#: an air component whose interior median lies within this many HU of the scan's own outside air is
#: gas (bowel, stomach, a pneumothorax): aerated lung, even emphysematous, is at least about 80 HU
#: denser through its vessels and septa (healthy about -850 HU, severe emphysema about -920)
GAS_MARGIN_HU = 50.0
#: the scan's outside air is the median of the coarse voxels outside the body below this (HU; the
#: foam of a table is denser); with fewer than `AIR_MIN_VOXELS` of them air is taken as -1000 HU
AIR_REFERENCE_BELOW_HU = -900.0
AIR_MIN_VOXELS = 50
#: at most this many outside-air voxels are sampled for the scan's air value
AIR_SAMPLE = 200_000
#: a scanner writes this value or lower (-1024, -2048, -3024 HU) outside its circular reconstruction
#: field: the corners of every slice hold exactly the same value there, which noisy air never does
PADDING_BELOW_HU = -1010.0
#: gas joined to a lung is cut off when it forms a pocket of at least this volume (mL) whose outer
#: shell is less than this fraction lung (a bulla lies within lung; stomach gas behind a thin
#: diaphragm touches it only through a narrow leak)
GAS_POCKET_MIN_ML = 5.0
GAS_POCKET_LUNG_SHELL = 0.25
#: ... its shell taken beyond a rim of this many coarse voxels (the partial volume of its wall)
GAS_POCKET_RIM = 2
#: a lung's slice-by-slice hole opening onto more than this much tissue (mm2) through the slice above
#: or below is the abdomen under a diaphragm dome the lung base wraps around, and stays unfilled; a
#: vessel crossing the slices opens onto its own section (a 20 mm vessel is about 310 mm2), and a
#: nodule enclosed by lung onto none
HOLE_OPEN_MM2 = 400.0

LEFT, RIGHT, AIRWAY = 1, 2, 3


@dataclass
class ChestLabels:
    """The coarse analysis of one CT volume.

    Attributes:
        grid: the coarse grid the masks below live on.
        body: coarse boolean body mask (filled; no table, no outside air).
        labels: coarse uint8 labels: 0 none, `LEFT`, `RIGHT`, `AIRWAY`.
        midline_x_mm: world x (LPS mm) of the midline used for laterality.
        lung_error: why no lungs were found (``None`` when they were).
        split_doubt: why the boundary between the left and right lung may be wrong (``None``
            when the lungs do not touch or touch over too little to matter; see `split_doubt`).
    """

    grid: CoarseGrid
    body: np.ndarray
    labels: np.ndarray
    midline_x_mm: float
    lung_error: str | None = None
    split_doubt: str | None = None
    _full: dict[str, Any] = field(default_factory=dict, repr=False)  # full-resolution masks and labels

    def full_labels(self, data: np.ndarray) -> np.ndarray:
        """Full-resolution uint8 labels (`LEFT`, `RIGHT`, `AIRWAY`), computed once."""
        if "labels" not in self._full:
            full = np.zeros(self.grid.shape, dtype=np.uint8)
            refined = self._refined(data)
            if refined is not None:
                full[refined[0]] = refined[1]
            self._full["labels"] = full
        return self._full["labels"]

    def _refined(self, data: np.ndarray) -> tuple[tuple[slice, ...], np.ndarray] | None:
        """The full-resolution labels in their fine box alone (`refine_in_box`), computed once: a lung
        mask is compared there, without a whole-volume label array."""
        if "refined" not in self._full:
            self._full["refined"] = refine_in_box(self.labels, self.grid, lambda box: data[box] < HU_AIR, ~self.body)
        return self._full["refined"]

    def full_mask(self, data: np.ndarray, *values: int) -> np.ndarray:
        """A new full-resolution boolean mask of the voxels labelled one of ``values``, compared in
        the labels' fine box alone (the rest of a small volume's grid costs as much as the box)."""
        out = np.zeros(self.grid.shape, dtype=bool)
        refined = self._refined(data)
        if refined is None:
            return out
        box, local = refined
        inside = out[box]
        np.equal(local, values[0], out=inside)
        for value in values[1:]:
            inside |= local == value
        return out

    def pleural_pockets(self, data: np.ndarray, radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
        """Full-resolution concavities of the lung surface: each lung's in-plane closing (on the
        coarse grid, one lung at a time so the mediastinum between them is never bridged) minus
        the lungs, inside the body, plus the dense fine voxels of the lungs' own coarse edge band
        but its outer layer. Nodules sitting on the pleura or on a vessel lie there. Computed once."""
        if "pockets" not in self._full:
            closed = np.zeros(self.labels.shape, dtype=bool)
            for side in (LEFT, RIGHT):
                closed |= planar_closing(self.labels == side, radius_mm, self.grid.coarse_spacing(spacing))
            lungs = np.isin(self.labels, (LEFT, RIGHT))
            labels = self.full_labels(data)

            outside = self.grid.upsample(closed & self.body & ~lungs & (self.labels != AIRWAY)) & (labels == 0)
            # the dense fine voxels of the lungs' coarse edge band (refined away from the lungs)
            # hold the parts of nodules and vessels lying there; their outer layer is the chest
            # wall's partial-volume rim, which would join every juxtapleural nodule into one sheet
            band = self.grid.upsample(lungs) & (labels == 0)
            band &= erode(band | outside | (labels == LEFT) | (labels == RIGHT), CONN6)
            self._full["pockets"] = outside | band
        return self._full["pockets"]

    def full_body(self, data: np.ndarray) -> np.ndarray:
        """Full-resolution boolean body mask, computed once."""
        if "body" not in self._full:
            self._full["body"] = refine_labels(
                self.body.astype(np.uint8), self.grid, lambda box: data[box] > HU_BODY, None
            ).astype(bool)
        return self._full["body"]


def planar_closing(mask: np.ndarray, radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """In-plane closing of ``mask`` by a disc of ``radius_mm``, through two distance transforms in
    the mask's bounding box (a large structuring element would cost seconds). Each slice is closed
    on its own, by two-dimensional transforms: a slice-axis pass would only be thrown away, and it
    cost as much again."""
    out = np.zeros(mask.shape, dtype=bool)
    box = bounding_box(mask)
    if box is None:
        return out
    pad = [int(np.ceil(radius_mm / s)) + 1 for s in spacing[1:]]
    inner = (slice(pad[0], -pad[0]), slice(pad[1], -pad[1]))
    for z in range(box[0].start, box[0].stop):
        section = mask[z, box[1], box[2]]
        if not section.any():
            continue
        local = np.pad(section, [(pad[0], pad[0]), (pad[1], pad[1])])
        grown = ndimage.distance_transform_edt(~local, sampling=spacing[1:]) <= radius_mm
        closed = ndimage.distance_transform_edt(grown, sampling=spacing[1:]) > radius_mm
        out[z, box[1], box[2]] = closed[inner] | section
    return out


def require_ct(volume: Volume, target: str) -> None:
    """Raise unless ``volume`` is CT (the thresholds here are Hounsfield units)."""
    if volume.modality != "CT":
        raise SegmentationError(
            f"classical '{target}' segmentation uses Hounsfield-unit thresholds and needs CT, got "
            f"{volume.modality}; use a model-based segmenter (sam, medsam) or a box prompt"
        )


def analyze_chest(volume: Volume, coarse_mm: float = COARSE_MM) -> ChestLabels:
    """Body, airways and lungs of a CT volume on a coarse grid (see the module docstring).

    Raises:
        SegmentationError: the volume is not CT or holds no body. Missing lungs are not an
            error here but recorded in ``lung_error``.
    """
    require_ct(volume, "lungs")
    grid = CoarseGrid.for_spacing(volume.shape, volume.spacing, coarse_mm, COARSE_MIN_BLOCK)
    spacing = grid.coarse_spacing(volume.spacing)
    coarse, dense = grid.sample_and_any_above(volume.data, HU_BODY)

    # world x of coarse indices through the affine's x row alone (`world_x` runs on every lung voxel)
    x_row = volume.affine[0, :3] * np.array(grid.strides)
    x_origin = float(volume.affine[0, :3] @ (np.array(grid.strides) // 2) + volume.affine[0, 3])
    world_x = _linear(x_row, x_origin)

    unreconstructed = reconstruction_padding(coarse)
    if unreconstructed is not None:  # the lung the reconstruction circle exposes is no outside air
        dense |= exposed_by_circle(dense, coarse, unreconstructed)
    body = body_core(dense, spacing)
    del dense
    inside_air = coarse < HU_AIR
    inside_air &= body
    superior_step = 1 if volume.affine[2, 0] >= 0 else -1
    air_box = bounding_box(inside_air)  # airways and lungs lie in it
    airway, trachea = find_airways(inside_air, body, spacing, superior_step, air_box)
    if trachea.any():
        own = bounding_box(trachea)  # its centroid in its own box: the rest of the grid adds nothing
        midline = float(world_x(centroid(trachea[own], tuple(sl.start for sl in own))[None])[0])
    else:
        midline = float(world_x(centroid(body)[None])[0])
    del trachea  # a quarter of the volume on a full-resolution grid; only the midline needed it
    lung_error = None
    # the lungs lie in the inside air's bounding box: on a small grid the passes over the whole
    # field of view would cost more than the analysis (one voxel wider for the airways' dilation, the
    # gas pockets' rim and the slice beyond a lung's holes, from even indices as `_middle_x` samples
    # every second voxel; the depth of air under the skin is measured in the whole body)
    box = _grown_box(inside_air, margin=1, align=2, own=air_box)
    box_x = _linear(x_row, x_origin + float(np.array([sl.start for sl in box]) @ x_row))
    labels = np.zeros(coarse.shape, dtype=np.uint8)
    try:
        labels[box] = find_lungs(inside_air[box], airway[box], coarse[box], box_x, midline, volume.is_2d,
                                 gas_below_hu=outside_air_hu(coarse, body, unreconstructed) + GAS_MARGIN_HU,
                                 spacing=spacing, superior_step=superior_step, body=body,
                                 body_origin=tuple(sl.start for sl in box),
                                 densest=lambda local: block_max(volume.data, grid, _shifted_box(local, box)))
        found = np.count_nonzero(labels[box])
        unit = spacing[1] * spacing[2] if volume.is_2d else float(np.prod(spacing))
        if found < LUNG_MIN_BODY_FRACTION * np.count_nonzero(body) or found * unit < LUNG_MIN_SIZE[volume.is_2d]:
            raise SegmentationError(
                "the air inside the body is too little to be lung (under "
                f"{LUNG_MIN_BODY_FRACTION:.1%} of the body); is the chest in the field of view?"
            )
    except SegmentationError as err:  # body and airways stand without lungs
        labels, lung_error = np.zeros(coarse.shape, dtype=np.uint8), str(err)
    doubt = split_doubt(labels[box], spacing) if not volume.is_2d else None  # the lungs lie in the box
    airway_box = None if air_box is None else bounding_box(airway[air_box])
    if airway_box is not None:
        airway_box = tuple(slice(a.start + b.start, a.stop + b.start) for a, b in zip(airway_box, air_box))
    if airway_box is not None:
        near = labels[airway_box]
        near[airway[airway_box] & (near == 0)] = AIRWAY
    return ChestLabels(grid=grid, body=body, labels=labels, midline_x_mm=midline, lung_error=lung_error,
                       split_doubt=doubt)


def split_doubt(labels: np.ndarray, spacing: tuple[float, float, float]) -> str | None:
    """Why the left/right boundary of coarse lung ``labels`` may be wrong, or None.

    Lungs that are separate components never touch; split ones touch where no septum shows, and
    there the boundary was put near the midline. If the true junction lies `SPLIT_OFFSET_MM` away,
    the contact area times that distance moves to the wrong lung; at `SPLIT_DOUBT_FRACTION` of the
    smaller lung or more the split is doubtful.
    """
    # the columns (x) holding each lung, from one pass over the labels (`LEFT` and `RIGHT` are
    # distinct bits): faces are counted only where both lungs lie within a column of each other,
    # which separate lungs never do
    present = np.bitwise_or.reduce(np.bitwise_or.reduce(labels, axis=0), axis=0)
    near = [dilate(present & side > 0, np.ones(3, dtype=bool)) for side in (LEFT, RIGHT)]
    columns = np.flatnonzero(near[0] & near[1])
    if columns.size == 0:
        return None
    span = labels[:, :, columns[0]:columns[-1] + 1]
    left, right = span == LEFT, span == RIGHT
    contact_mm2 = 0.0
    for axis in (1, 2):
        ahead, behind = [slice(None)] * 3, [slice(None)] * 3
        ahead[axis], behind[axis] = slice(1, None), slice(None, -1)
        faces = np.count_nonzero(left[tuple(ahead)] & right[tuple(behind)])
        faces += np.count_nonzero(right[tuple(ahead)] & left[tuple(behind)])
        contact_mm2 += faces * spacing[0] * spacing[3 - axis]
    if contact_mm2 == 0.0:
        return None
    left, right = labels == LEFT, labels == RIGHT
    voxel_ml = float(np.prod(spacing)) / 1000.0
    smaller_ml = min(np.count_nonzero(left), np.count_nonzero(right)) * voxel_ml
    at_stake_ml = contact_mm2 * SPLIT_OFFSET_MM / 1000.0
    if at_stake_ml < SPLIT_DOUBT_FRACTION * smaller_ml:
        return None
    return (f"the left and right lungs touch over {contact_mm2 / 100.0:.0f} cm2 with no pleural septum to see; "
            f"the boundary there was placed near the midline, and a junction {SPLIT_OFFSET_MM:.0f} mm away would "
            f"move about {at_stake_ml:.0f} mL ({at_stake_ml / max(smaller_ml, 1e-6):.0%} of the smaller lung) "
            f"to the other side")


def block_max(data: np.ndarray, grid: CoarseGrid, box: tuple[slice, ...]) -> np.ndarray:
    """The maximum of ``data`` (full resolution) over each block of ``grid`` in its coarse ``box``."""
    part = data[grid.fine_box(box)]
    for axis, (sl, stride) in enumerate(zip(box, grid.strides)):
        if stride > 1:
            part = np.maximum.reduceat(part, np.arange(sl.stop - sl.start) * stride, axis=axis)
    return part


def _shifted_box(box: tuple[slice, ...], origin: tuple[slice, ...]) -> tuple[slice, ...]:
    """``box`` of an array cut out at ``origin`` (a box) as a box of the whole array."""
    return tuple(slice(sl.start + o.start, sl.stop + o.start) for sl, o in zip(box, origin))


def _linear(row: np.ndarray, offset: float) -> Callable[[np.ndarray], np.ndarray]:
    """The linear function ``zyx @ row + offset`` of (N, 3) indices (a world coordinate)."""
    return lambda zyx: np.asarray(zyx) @ row + offset


def _grown_box(mask: np.ndarray, margin: int, align: int = 1,
               own: tuple[slice, ...] | None = None) -> tuple[slice, ...]:
    """``mask``'s bounding box (``own`` when already known) grown by ``margin`` voxels within the
    array, starting at multiples of ``align`` (all of the array when the mask is empty)."""
    box = own or bounding_box(mask)
    if box is None:
        return tuple(slice(0, n) for n in mask.shape)
    return tuple(slice(sl.start - sl.start % align, sl.stop) for sl in grown_box(box, margin, mask.shape))


def body_core(dense: np.ndarray, spacing: tuple[float, float, float]) -> np.ndarray:
    """The patient: everything enclosed by dense tissue, without the table.

    ``dense`` marks coarse voxels holding any tissue above `HU_BODY` (a block maximum, so a chest
    wall thinner than a coarse voxel still closes the body). The enclosed region is filled first
    (outside air is background reached from the border), and only then is the table cut off by an
    in-plane opening: opening the dense tissue itself would also cut a thin lateral chest wall,
    letting the lung behind it count as outside air.
    """
    if not dense.any():
        raise SegmentationError("no body found: no CT voxel above -500 HU; is this CT in Hounsfield units?")
    # the work runs in the dense tissue's box with a margin of one background voxel: beyond it all
    # is outside air, which the margin reaches as it reaches the border (no seal, no tissue there)
    box = _grown_box(dense, margin=1)
    body = np.zeros(dense.shape, dtype=bool)
    dense = dense[box]
    se = ellipsoid(TABLE_OPENING_MM, spacing, planar=True)
    if se.size == 1:
        body[box] = largest_component(~outside_air(dense))
        return body
    # a table running off the image's sides has thin shells around its foam: only tissue that
    # survives the opening (a patient cut by the field of view) seals the image border
    filled = ~outside_air(dense, border_opening(dense, se))
    opened = dilate(erode(filled, se), se)
    core = largest_component(opened if opened.any() else filled)
    body[box] = dilate(core, se) & filled
    return body


def reconstruction_padding(coarse: np.ndarray) -> np.ndarray | None:
    """The in-plane region outside a circular reconstruction field, or None without one: the voxels
    connected to the image corners that hold, on every slice, exactly the corners' value, at most
    `PADDING_BELOW_HU` (noise-free air of -1000 HU is no padding)."""
    value = coarse[0, 0, 0]
    corners = coarse[:, [0, 0, -1, -1], [0, -1, 0, -1]]
    if value > PADDING_BELOW_HU or not np.all(corners == value):
        return None
    plane = np.logical_and.reduce(coarse == value, axis=0)
    return border_connected(plane[None])[0]


def exposed_by_circle(dense: np.ndarray, coarse: np.ndarray, unreconstructed: np.ndarray) -> np.ndarray:
    """The background that a circular reconstruction field (``unreconstructed``: the in-plane region
    beyond it) cuts open and that is not outside air: lung behind a chest wall the circle cuts, which
    would otherwise reach the image border through the padding.

    A slice's background component touching the circle is such lung when its median HU lies
    `GAS_MARGIN_HU` or more above the air all of them hold (their voxels below
    `AIR_REFERENCE_BELOW_HU`: outside air is most of those; aerated lung is denser, as gas is told
    from lung in `_is_gas`) and it continues, in 3-D, into background that the body encloses on
    another slice (the lung above the cut): the foam of a table the circle cuts on every slice is as
    dense as lung, but nothing encloses it. Background that joins, in 3-D, a slice's outside air (a
    component on the circle no denser than air, or one open to the image border) is outside air: the
    air under a patient reads denser than the air around them (a real chest CT: -930 against -1000 HU)
    and a pad under the table may close a pocket of it on a slice."""
    background = ~dense
    background[:, unreconstructed] = False
    exposed = np.zeros(dense.shape, dtype=bool)
    labels, n = label_planar(background)
    rim = np.zeros(dense.shape, dtype=bool)
    rim[:, dilate(unreconstructed[None], PLANAR4)[0]] = True
    touching = np.unique(labels[rim & background])
    touching = touching[touching > 0]
    if touching.size == 0:
        return exposed
    open_to = np.zeros(n + 1, dtype=bool)
    open_to[touching] = True
    inside = open_to[labels]
    owners, values = labels[inside], coarse[inside]
    air = values[values < AIR_REFERENCE_BELOW_HU]
    air_hu = _median(air) if air.size >= AIR_MIN_VOXELS else -1000.0
    # a median at or above the level: at least half the voxels are (counts, not a sort per component)
    denser = np.bincount(owners[values >= air_hu + GAS_MARGIN_HU], minlength=n + 1)
    lung = np.zeros(n + 1, dtype=bool)
    lung[touching] = 2 * denser[touching] >= np.bincount(owners, minlength=n + 1)[touching]
    if not lung.any():
        return exposed
    # the background the body encloses on its slice: neither cut by the circle nor at the border
    at_border = np.unique(labels[border_connected(background)])
    open_to[at_border] = True
    enclosed = background & ~open_to[labels]
    volumes, _ = label_components(background, CONN6)
    continued = np.zeros(int(volumes.max()) + 1, dtype=bool)
    continued[np.unique(volumes[enclosed])] = True
    # background joined to outside air in 3-D is outside, however dense the air under the patient
    outside_air = open_to & ~lung
    outside_air[at_border] = True
    outside_air[0] = False
    continued[np.unique(volumes[outside_air[labels]])] = False
    continued[0] = False
    candidates = lung[labels]
    exposed[candidates] = continued[volumes[candidates]]
    return exposed


def border_opening(mask: np.ndarray, se: np.ndarray) -> np.ndarray:
    """``dilate(erode(mask, se), se)`` (an in-plane ``se``) on the four in-plane border lines of each
    slice alone, False elsewhere: all `outside_air` reads of its seal. A border line's opening
    depends only on the mask within the element's diameter of it, so each is opened in that slab
    (with the slab's thin axis in the middle: numpy is slow along a short last axis)."""
    out = np.zeros(mask.shape, dtype=bool)
    for axis in (1, 2):
        reach = 2 * (se.shape[axis] // 2) + 1
        if reach >= mask.shape[axis]:  # the slabs would cover the mask: open it whole
            return dilate(erode(mask, se), se)
        turned, element = np.swapaxes(mask, 1, axis), np.swapaxes(se, 1, axis)
        for edge, slab in ((0, slice(0, reach)), (-1, slice(mask.shape[axis] - reach, None))):
            opened = dilate(erode(np.ascontiguousarray(turned[:, slab]), element), element)
            np.swapaxes(out, 1, axis)[:, edge] = opened[:, edge]
    return out


def outside_air_hu(coarse: np.ndarray, body: np.ndarray, unreconstructed: np.ndarray | None = None) -> float:
    """The scan's own air value (HU): the median of the coarse voxels outside ``body`` below
    `AIR_REFERENCE_BELOW_HU`, or -1000 when the field of view holds too little outside air. The
    padding beyond a circular reconstruction field (``unreconstructed``, in-plane) is no air: at
    -1024 HU it would put the air 24 HU low, and gas 24 HU denser than it would pass for lung."""
    outside = coarse < AIR_REFERENCE_BELOW_HU
    np.greater(outside, body, out=outside)  # and not body
    if unreconstructed is not None:
        outside[:, unreconstructed] = False
    air = coarse[outside]
    if air.size < AIR_MIN_VOXELS:
        return -1000.0
    # a regular sample of at most AIR_SAMPLE voxels: a large field's outside air is millions of
    # voxels, and its median moves by well under 1 HU
    return _median(air[:: max(1, air.size // AIR_SAMPLE)])


def _median(values: np.ndarray) -> float:
    """``np.median`` of a 1-D array: the sample median of a small regular sample when the two middle
    values both equal it (integer Hounsfield units tie by the thousand: two counts), else the two
    middle values found among those between two quantiles of the sample when those hold them (a
    partial sort of a tenth of the values instead of all of them), else by ``np.median`` itself."""
    n = values.size
    middle = [(n - 1) // 2, n // 2]
    if n >= 4096:
        sample = values[::32]
        ranks = [int(0.45 * sample.size), sample.size // 2, int(0.55 * sample.size)]
        lo, typical, hi = np.partition(sample, ranks)[ranks]
        if np.count_nonzero(values < typical) <= middle[0] and middle[1] < np.count_nonzero(values <= typical):
            return float(typical)
        below = np.count_nonzero(values < lo)
        # `np.compress`: boolean indexing is several times slower on a mask as scattered as this one
        between = np.compress((values >= lo) & (values <= hi), values)
        if below <= middle[0] and middle[1] < below + between.size:
            part = np.partition(between, [k - below for k in middle])
            return float(np.mean(part[[k - below for k in middle]]))
    return float(np.median(values))


def outside_air(body: np.ndarray, seal: np.ndarray | None = None) -> np.ndarray:
    """Per slice, the background connected to the image border where the body does not touch it.

    Each border line is sealed between the first and last voxel of ``seal`` (default ``body``)
    on it, so the inside of a body cut by the field of view is not taken for outside air.
    """
    seal = body if seal is None else seal
    nz, ny, nx = body.shape
    frame = np.ones((nz, ny + 2, nx + 2), dtype=bool)
    frame[:, 0, 1:-1] = ~span_last_axis(seal[:, 0, :])
    frame[:, -1, 1:-1] = ~span_last_axis(seal[:, -1, :])
    frame[:, 1:-1, 0] = ~span_last_axis(seal[:, :, 0])
    frame[:, 1:-1, -1] = ~span_last_axis(seal[:, :, -1])
    return border_connected(~body, frame)


def find_airways(
    inside_air: np.ndarray, body: np.ndarray, spacing: tuple[float, float, float], superior_step: int,
    air_box: tuple[slice, ...] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Trachea and main bronchi on the coarse grid: ``(airways, trachea)`` boolean masks.

    The work runs in the bounding box of ``inside_air`` (lungs and airways are a fraction of the
    field of view), and the planar labels are looked up per voxel only where the few
    tracheal-sized pockets lie: on a small grid each whole-grid pass costs as much as a labelling.
    ``air_box``: that box when already known.
    """
    airways, trachea = np.zeros(inside_air.shape, dtype=bool), np.zeros(inside_air.shape, dtype=bool)
    box = air_box or bounding_box(inside_air)
    if box is None:
        return airways, trachea
    # per-slice midline and width of the body, in x voxels of the box
    cols = np.bitwise_or.reduce(body[box[0]].view(np.uint8), axis=1).view(bool)  # numpy's any along y is slow
    has_body = cols.any(axis=1)
    first = np.argmax(cols, axis=1)
    last = cols.shape[1] - 1 - np.argmax(cols[:, ::-1], axis=1)
    centre, width = (first + last) / 2.0 - box[2].start, (last - first + 1).astype(float)
    # contiguous: its voxels are listed, looked up and copied several times
    found = _find_airways(np.ascontiguousarray(inside_air[box]), has_body, centre, width, spacing, superior_step)
    if found is not None:
        airways[box], trachea[box] = found
    return airways, trachea


def _find_airways(
    inside_air: np.ndarray, has_body: np.ndarray, centre: np.ndarray, width: np.ndarray,
    spacing: tuple[float, float, float], superior_step: int
) -> tuple[np.ndarray, np.ndarray] | None:
    """`find_airways` in the box of the inside air, given the body's per-slice presence, centre
    (x index in the box) and width; None when no trachea is found."""
    labels, n = label_planar(inside_air)
    pixel_mm2 = spacing[1] * spacing[2]
    # the labels of the air voxels alone, in scan order: counted and sifted without the rest
    where = np.flatnonzero(inside_air)
    owner = air_labels = labels[inside_air]
    area = np.bincount(owner, minlength=n + 1) * pixel_mm2
    sized = (area >= TRACHEA_AREA_MM2[0]) & (area <= TRACHEA_AREA_MM2[1])
    sized[0] = False
    # planar labels number the slices in turn (a slice's labels all above those of the slices before
    # it): a label's slice is the first whose last label reaches it, and the last label up to each
    # slice is the running maximum of each slice's own largest (its air voxels are one run of ``owner``)
    ends = np.searchsorted(where, np.arange(1, inside_air.shape[0] + 1) * inside_air[0].size)
    starts = np.concatenate(([0], ends[:-1]))
    filled = ends > starts
    largest = np.zeros(ends.size, dtype=owner.dtype)
    if owner.size:
        largest[filled] = np.maximum.reduceat(owner, starts[filled])
    last = np.maximum.accumulate(largest)
    slice_of = np.searchsorted(last, np.arange(n + 1))
    # coordinates of the tracheal-sized pockets only: the lungs' own voxels would cost 24 bytes each
    picked = sized[owner]
    coords = np.unravel_index(where[picked], inside_air.shape)
    owner = owner[picked]
    del picked
    cx = np.bincount(owner, weights=coords[2], minlength=n + 1) / np.maximum(area / pixel_mm2, 1)
    lo, hi = voxel_bounds(owner, coords, n)

    # every pocket of tracheal size at once: on a coarse grid each noise speck is one
    z = lo[:, 0]
    h_mm, w_mm = (hi[:, 1] - lo[:, 1]) * spacing[1], (hi[:, 2] - lo[:, 2]) * spacing[2]
    tolerance = np.maximum(15.0 / spacing[2], TRACHEA_MIDLINE_FRACTION * width[z])
    round_enough = (np.maximum(h_mm, w_mm) <= 2.5 * np.minimum(h_mm, w_mm)) & (area >= 0.4 * h_mm * w_mm)
    candidate = sized & has_body[z] & round_enough & (np.abs(cx - centre[z]) <= tolerance)
    if not candidate.any():
        return None

    # the chains are labelled within the candidates' bounding box (the same numbering as in the
    # whole box, at a fraction of its memory)
    picked = candidate[owner]
    chain_coords = tuple(c[picked] for c in coords)
    box = tuple(slice(int(c.min()), int(c.max()) + 1) for c in chain_coords)
    in_chain = np.zeros(tuple(sl.stop - sl.start for sl in box), dtype=bool)
    in_chain[tuple(c - sl.start for c, sl in zip(chain_coords, box))] = True
    chain_labels, chain_of = label_components(in_chain, CONN26)
    coords = np.nonzero(in_chain)
    chain_ids = chain_labels[coords]
    # the slices each chain spans: its distinct (chain, slice) pairs, coded as one integer each
    pairs = np.unique(chain_ids.astype(np.int64) * in_chain.shape[0] + coords[0])
    spans = np.bincount(pairs // in_chain.shape[0], minlength=chain_of + 1)
    spans[0] = 0
    shortest = min(max(2, int(np.ceil(TRACHEA_MIN_LENGTH_MM / spacing[0]))), inside_air.shape[0])
    lung_sized = area > AIRWAY_MAX_AREA_MM2
    lung_sized[0] = False  # label 0 is everything that is not air
    profile = np.bincount(slice_of[lung_sized], weights=area[lung_sized] / pixel_mm2, minlength=labels.shape[0])
    lung_z = float(profile @ np.arange(profile.size) / max(int(profile.sum()), 1))
    # the longest chain that passes the trachea tests (each tested chain's box from its voxels: the
    # many specks of a noisy scan would make `ndimage.find_objects` cost more than the tests)
    best = 0
    for chain in np.argsort(spans)[::-1].tolist():
        if spans[chain] < shortest:
            break
        own = chain_ids == chain
        local = tuple(slice(int(c[own].min()), int(c[own].max()) + 1) for c in coords)
        obj = tuple(slice(sl.start + b.start, sl.stop + b.start) for sl, b in zip(local, box))
        if _is_trachea(chain_labels[local] == chain, obj, labels, lung_sized, pixel_mm2, superior_step, lung_z):
            best = chain
            break
    if best == 0:
        return None
    trachea = np.zeros(inside_air.shape, dtype=bool)
    trachea[box] = chain_labels == best

    keep = np.zeros(n + 1, dtype=bool)
    keep[labels[box][trachea[box]]] = True
    max_area = min(max(1.5 * area[keep].max(), 300.0), AIRWAY_MAX_AREA_MM2)
    z_slices = np.flatnonzero(trachea.any(axis=(1, 2)))
    z = int(z_slices.min() if superior_step > 0 else z_slices.max())
    previous = trachea[z]
    while 0 <= z - superior_step < inside_air.shape[0]:
        z -= superior_step
        touching = np.unique(labels[z][previous])
        touching = touching[(touching > 0) & (area[touching] <= max_area)]
        if touching.size == 0:
            break
        keep[touching] = True
        previous = np.isin(labels[z], touching)
    keep[0] = False
    airways = np.zeros(inside_air.shape, dtype=bool)
    airways.ravel()[where[keep[air_labels]]] = True  # looked up on the air voxels alone
    return airways, trachea


def _is_trachea(chain: np.ndarray, obj: tuple[slice, ...], labels: np.ndarray, lung_sized: np.ndarray,
                pixel_mm2: float, superior_step: int, lung_z: float) -> bool:
    """Whether a vertical chain of compact air sections (``chain``: its mask in the box ``obj`` of
    the planar ``labels``; ``lung_sized`` marks the labels larger than an airway) is the trachea
    rather than a lung tip, a recess of a lung base or bowel gas.

    The trachea runs up out of the lungs: its centre lies above the centre ``lung_z`` (slice
    index) of the lung-sized air, at its superior end it does not open into a lung-sized section
    (a lung base cut by the dome or a wedge beside the heart does), and on at least one of its
    slices lung-sized air lies on both sides of it (bowel gas under the diaphragm has none).
    """
    z_local = np.flatnonzero(chain.any(axis=(1, 2)))
    if (obj[0].start + float(z_local.mean()) - lung_z) * superior_step < 0:
        return False
    top = int(z_local.max() if superior_step > 0 else z_local.min())
    above = obj[0].start + top + superior_step
    if 0 <= above < labels.shape[0] and np.any(lung_sized[labels[above][obj[1:]][chain[top]]]):
        return False
    x = int(round(float(np.mean(np.nonzero(chain)[2])))) + obj[2].start
    for k in z_local:
        big = lung_sized[labels[obj[0].start + k]]
        left, right = np.count_nonzero(big[:, :x]) * pixel_mm2, np.count_nonzero(big[:, x + 1:]) * pixel_mm2
        if min(left, right) >= AIRWAY_MAX_AREA_MM2:
            return True
    return False


def find_lungs(
    inside_air: np.ndarray,
    airway: np.ndarray,
    coarse: np.ndarray,
    world_x: Callable[[np.ndarray], np.ndarray],
    midline_x_mm: float,
    is_2d: bool,
    gas_below_hu: float = -1000.0 + GAS_MARGIN_HU,
    spacing: tuple[float, float, float] = (COARSE_MM, COARSE_MM, COARSE_MM),
    superior_step: int = 1,
    body: np.ndarray | None = None,
    body_origin: tuple[int, int, int] = (0, 0, 0),
    densest: Callable[[tuple[slice, ...]], np.ndarray] | None = None,
) -> np.ndarray:
    """Coarse uint8 labels `LEFT` / `RIGHT` of the lungs (holes filled slice by slice).

    ``world_x`` maps coarse (N, 3) indices to world x (LPS mm); ``coarse`` is the HU grid. Touching
    lungs are split about the middle of their joint extent, not about ``midline_x_mm``: the body's
    centre is pulled aside by an arm or a field-of-view cut, and the trachea runs off the midline
    (the aortic arch pushes it to the right) while the junction lines lie near the thoracic
    cavity's middle (on the stress cases the trachea put the split 6.5 mm from the junction on
    average, the lungs' middle 3.8 mm). Air
    components whose interior median is below ``gas_below_hu`` are gas, not lung (`_is_gas`):
    on a scan of the upper abdomen the colon or stomach can hold more air than the lung bases;
    gas joined to a lung through a thin diaphragm is cut off (`_drop_gas_pockets`). ``spacing``
    is the coarse grid's (mm); ``superior_step`` the index step (+1 or -1) towards the head;
    ``body`` the body mask: a lung lies at least `LUNG_MIN_DEPTH_MM` inside it (`_deep_enough`); it
    may reach beyond the other arrays, whose first voxel is ``body_origin`` in it. Further sizeable
    pieces of a lung join it (`_add_lung_pieces`). ``densest(box)``, when given, is the block
    maximum of the full-resolution HU in a box of the coarse grid, for `split_touching`.
    """

    candidates = inside_air.copy()
    near = _grown_box(airway, margin=1) if airway.any() else None
    if near is not None:  # the airways and the air beside them are no lung (dilated in their own box)
        candidates[near] &= ~dilate(airway[near], CONN6)
    labels, n = label_components(candidates, CONN6)
    if n == 0:
        raise SegmentationError(
            "no air-filled lung found inside the body (no voxel below -400 HU); "
            "is the chest in the field of view?"
        )
    sizes = np.bincount(labels[candidates], minlength=n + 1)  # counted on the air voxels alone
    del candidates
    order = np.argsort(sizes)[::-1]
    # each component's mask, bounding box and world x (of its centroid), once: the tests below ask again
    masks: dict[int, np.ndarray] = {}
    own_boxes: dict[int, tuple[slice, ...]] = {}
    xs: dict[int, float] = {}

    def component(label: int) -> np.ndarray:
        if label not in masks:
            masks[label] = labels == label
        return masks[label]

    def box_of(label: int) -> tuple[slice, ...]:
        if label not in own_boxes:
            own_boxes[label] = bounding_box(component(label))
        return own_boxes[label]

    def x_of(label: int) -> float:
        if label not in xs:
            box = box_of(label)  # in the component's own box: the rest of the grid adds nothing
            xs[label] = float(world_x(centroid(component(label)[box], tuple(sl.start for sl in box))[None])[0])
        return xs[label]

    kept, boxes, largest_lung = 0, None, 0
    # the 12 largest that are not gas are all `find_lungs` looks at, and none smaller than the
    # least fraction of the largest it uses (the many small pockets of a noisy scan are not tested)
    least = min(LUNG_PIECE_FRACTION, PAIRED_SIZE_FRACTION)
    for rank, label in enumerate(order[:n]):
        if kept == 12 or sizes[label] == 0 or sizes[label] < least * largest_lung:
            break
        # two lungs and an airway remnant are usually all there is to look at: their boxes from the
        # mask's projections; beyond that (noisy scans: many small pockets) one pass for all boxes
        if rank < 3:
            box = box_of(label)
            own = component(label)[box]
        else:
            boxes = ndimage.find_objects(labels) if boxes is None else boxes
            box = boxes[label - 1]
            own = labels[box] == label
        if _is_gas(own, coarse[box], gas_below_hu):
            sizes[label] = 0
        else:
            kept += 1
            largest_lung = max(largest_lung, int(sizes[label]))
    if not sizes.any():
        raise SegmentationError(
            "the air inside the body is gas (bowel, stomach) without the texture of lung "
            "parenchyma; is the chest in the field of view?"
        )
    order = np.argsort(sizes)[::-1]
    largest = component(int(order[0]))
    largest_left = linear_above(largest.shape, world_x, midline_x_mm)  # left of the midline...
    largest_left &= largest  # ...and in the largest component
    left_fraction = np.count_nonzero(largest_left) / sizes[order[0]]
    del largest_left
    x_largest = x_of(int(order[0]))
    # a second lung-sized component on the far side of the largest one's centre: the lungs are
    # apart, and the largest straddles the midline only because the midline is off
    paired = n > 1 and sizes[order[1]] >= PAIRED_SIZE_FRACTION * sizes[order[0]] and (
        (x_of(int(order[1])) > midline_x_mm) != (x_largest > midline_x_mm))

    parts: list[np.ndarray] = []
    centroids: list[float] = []
    used = {int(order[0])}
    if min(left_fraction, 1 - left_fraction) > MERGED_SIDE_FRACTION and not paired:
        parts = split_touching(largest, coarse, world_x, _middle_x(largest, world_x), densest)
        centroids = [float(world_x(centroid(p)[None])[0]) for p in parts]
    if len(parts) < 2:
        # one lung per side: the largest component on each side (2-D: every sizeable piece)
        parts, centroids, sides = [], [], set()
        for label in order[: min(n, 12)].tolist():
            if sizes[label] < LUNG_PIECE_FRACTION * sizes[order[0]]:
                break
            side = LEFT if x_of(label) > midline_x_mm else RIGHT
            if is_2d or side not in sides and _deep_enough(component(label), body, spacing, box_of(label),
                                                           body_origin):
                parts.append(component(label))
                centroids.append(x_of(label))
                sides.add(side)
                used.add(label)

    del largest
    if len(parts) == 2 and not is_2d:
        sides_of = [LEFT, RIGHT] if centroids[0] > centroids[1] else [RIGHT, LEFT]
    else:
        sides_of = [LEFT if c > midline_x_mm else RIGHT for c in centroids]
    out = np.zeros(inside_air.shape, dtype=np.uint8)
    for part, side in zip(parts, sides_of):
        out[part] = side
    del parts
    if not is_2d:
        _add_lung_pieces(out, sides_of, sizes, order[: min(n, 12)].tolist(), used, component, x_of, midline_x_mm,
                         superior_step, body, spacing, body_origin)
    del labels, masks
    for side in (LEFT, RIGHT):
        own = _drop_gas_pockets(out, side, coarse, gas_below_hu, float(np.prod(spacing)))
        _fill_label_holes(out, side, spacing[1] * spacing[2], own)
    return out


def _add_lung_pieces(out: np.ndarray, sides_of: list[int], sizes: np.ndarray, candidates: list[int], used: set[int],
                     component: Callable[[int], np.ndarray], x_of: Callable[[int], float], midline_x_mm: float,
                     superior_step: int, body: np.ndarray | None, spacing: tuple[float, float, float],
                     body_origin: tuple[int, int, int] = (0, 0, 0)) -> None:
    """Join to the lungs in ``out`` (in place; the sides present ``sides_of``) the further pieces of a
    lung: components (``component(label)``: its mask, ``x_of(label)``: its centroid's world x) among
    ``candidates`` (largest first; not ``used``, not gas: size 0) of at least `LUNG_PIECE_FRACTION` of
    the largest, each to the lung on its side of the midline, when it reaches up into the upper
    half of that lung's height and lies deep enough inside ``body`` (`_deep_enough`; ``out``'s first
    voxel is ``body_origin`` in it). A thin slab
    of the lung bases cuts a lung's recesses into separate pieces; gas in bowel hangs below the
    lungs (and is no candidate anyway), and air trapped under clothing or a skin fold lies at the
    body's surface, outside the chest wall."""
    heights: dict[int, tuple[int, int]] = {}
    for label in candidates:
        if sizes[label] < LUNG_PIECE_FRACTION * sizes[candidates[0]]:
            break
        if label in used:
            continue
        side = LEFT if x_of(label) > midline_x_mm else RIGHT
        if side not in sides_of:
            continue
        piece = component(label)
        if side not in heights:
            heights[side] = _z_extent(bounding_box(out == side), superior_step)
        low, high = heights[side]
        z_piece = _z_extent(bounding_box(piece), superior_step)
        if z_piece[1] >= (low + high) / 2.0 and _deep_enough(piece, body, spacing, origin=body_origin):
            out[piece] = side
            heights[side] = (min(low, z_piece[0]), max(high, z_piece[1]))


def _z_extent(box: tuple[slice, ...], superior_step: int) -> tuple[int, int]:
    """The lowest and highest slice index of ``box`` times ``superior_step`` (towards the head)."""
    ends = (box[0].start * superior_step, (box[0].stop - 1) * superior_step)
    return min(ends), max(ends)


def _deep_enough(mask: np.ndarray, body: np.ndarray | None, spacing: tuple[float, float, float],
                 own_box: tuple[slice, ...] | None = None, origin: tuple[int, int, int] = (0, 0, 0)) -> bool:
    """Whether ``mask``'s median voxel lies at least `LUNG_MIN_DEPTH_MM` inside ``body`` (always, without
    a body), measured in ``mask``'s bounding box (``own_box`` when known) grown by that much within
    ``body``, which may be larger than ``mask``: ``origin`` is the index of ``mask``'s first voxel in it."""
    if body is None:
        return True
    grow = [int(np.ceil(LUNG_MIN_DEPTH_MM / s)) + 1 for s in spacing]
    own = own_box or bounding_box(mask)
    box = tuple(slice(max(sl.start + o - g, 0), min(sl.stop + o + g, n))
                for sl, o, g, n in zip(own, origin, grow, body.shape))
    inside = body[box]
    if inside.all():
        return True
    # on every second voxel of the grown box along each axis: a few mm of error do not matter against
    # the chest wall, and a lung's box is most of the grid
    step = 2 if min(inside.shape) > 4 else 1
    inside = np.ascontiguousarray(inside[::step, ::step, ::step])
    # the sampled voxels within the mask's own box (it is empty beyond), and their place in ``inside``
    first = [-(-(sl.start + o - b.start) // step) for sl, o, b in zip(own, origin, box)]
    last = [-(-(sl.stop + o - b.start) // step) for sl, o, b in zip(own, origin, box)]
    sample = mask[tuple(slice(b.start + step * k - o, sl.stop, step) for b, k, o, sl in zip(box, first, origin, own))]
    placed = tuple(slice(k, m) for k, m in zip(first, last))
    count = np.count_nonzero(sample)
    if count == 0:
        return True
    # the median is at least the depth when at least half the voxels are (a count, not a sort); first
    # a cheap bound: a voxel whose surrounding box reaching `LUNG_MIN_DEPTH_MM` along each axis is all
    # body lies at least that deep (beyond the array counts as body, as for the distance transform)
    sampling = [step * s for s in spacing]
    reach = [2 * (int(np.ceil(LUNG_MIN_DEPTH_MM / h - 1e-9)) - 1) + 1 for h in sampling]
    # (that box erosion, with body beyond the array, is the complement of the box dilation of the voxels
    # outside the body, one line at a time: `scipy.ndimage.minimum_filter` costs several times as much)
    shallow = ~inside
    for axis, size in enumerate(reach):
        shallow = dilate(shallow, np.ones(tuple(size if a == axis else 1 for a in range(3)), dtype=bool))
    if 2 * np.count_nonzero(sample & ~shallow[placed]) >= count:
        return True
    depth = ndimage.distance_transform_edt(inside, sampling=sampling)
    return 2 * np.count_nonzero(depth[placed][sample] >= LUNG_MIN_DEPTH_MM) >= count


def _drop_gas_pockets(labels: np.ndarray, value: int, coarse: np.ndarray, gas_below_hu: float,
                      voxel_mm3: float) -> tuple[slice, ...] | None:
    """Remove from lung ``value`` of ``labels`` (in place) the pockets of gas it merely touches:
    regions of at least `GAS_POCKET_MIN_ML` whose locally averaged HU (3-voxel mean) is below
    ``gas_below_hu`` and whose outer shell, beyond a rim of `GAS_POCKET_RIM` voxels, is less than
    `GAS_POCKET_LUNG_SHELL` lung (stomach or
    bowel gas behind a diaphragm too thin to keep them apart, a pneumothorax, an airway that was
    not tracked). A bulla or emphysematous region is gas too but lies within lung.

    Returns the lung's bounding box when nothing was removed (for `_fill_label_holes`), else None."""
    mask = labels == value
    own = bounding_box(mask)
    if own is None:
        return None
    bbox = grown_box(own, 1, mask.shape)
    lung = mask[bbox]
    # each voxel of a pocket has a voxel below the level among its 27 neighbours, so a pocket of
    # the least size needs a 27th of that many such voxels: without them there is nothing to filter
    least = GAS_POCKET_MIN_ML * 1000.0 / voxel_mm3
    hu = coarse[bbox]
    low = hu < gas_below_hu
    if 27 * np.count_nonzero(lung & low) < least:
        return own
    gas = _mean3_below(hu, low, gas_below_hu, lung)
    if np.count_nonzero(gas) < least:  # not enough gas for one pocket
        return own
    pockets, n = label_components(gas, CONN6)
    if n == 0:
        return own
    sizes = component_sizes(pockets, n)
    crop = labels[bbox]
    for label in np.flatnonzero(sizes * voxel_mm3 >= GAS_POCKET_MIN_ML * 1000.0):
        if label == 0:
            continue
        pocket = pockets == label
        if _within_lung(pocket, lung):
            continue
        # with the gas voxels joined to it whose 3-voxel mean the lung or tissue on the next (thick)
        # slice lifts above the level (the pocket's edges: left behind, they stayed lung), and the
        # one voxel of partial volume around them
        pocket = ndimage.binary_propagation(pocket, structure=CONN6, mask=pocket | (lung & low))
        crop[pocket | (dilate(pocket, CONN6) & lung)] = 0
        own = None
    return own


def _within_lung(pocket: np.ndarray, lung: np.ndarray) -> bool:
    """Whether gas ``pocket`` lies within ``lung`` (a bulla): its outer shell, beyond its own
    partial-volume rim of `GAS_POCKET_RIM` voxels (air, not lung), is at least
    `GAS_POCKET_LUNG_SHELL` lung."""
    pocket = pocket.copy()
    for _ in range(GAS_POCKET_RIM):
        pocket |= dilate(pocket, CONN6) & lung
    shell = dilate(pocket, CONN6) & ~pocket
    return np.count_nonzero(shell & lung) >= GAS_POCKET_LUNG_SHELL * np.count_nonzero(shell)


def _mean3_below(hu: np.ndarray, low: np.ndarray, level: float, within: np.ndarray) -> np.ndarray:
    """The voxels of ``within`` where the 3 x 3 x 3 mean of ``hu`` (`scipy.ndimage.uniform_filter`,
    reflected at the edges) is below ``level``, given ``low = hu < level``. Such a voxel has a low one
    among its 27 neighbours; when those are few (aerated lung holds a few noise voxels at air values),
    the means are taken there alone, from the 27 neighbours' values, instead of filtering the whole
    array."""
    near = low
    for line in ((3, 1, 1), (1, 3, 1), (1, 1, 3)):  # the 27-neighbourhood, one axis at a time
        near = dilate(near, np.ones(line, dtype=bool))
    near &= within
    where = np.flatnonzero(near)  # flat indices: `np.nonzero` of a 3-D array is several times slower
    if 9 * where.size >= hu.size:
        return within & (ndimage.uniform_filter(hu, 3) < level)
    # flat offsets of the neighbours along each axis; beyond an edge the filter reflects: the edge
    # voxel itself
    strides = np.cumprod((1,) + hu.shape[:0:-1])[::-1]
    coords = [where // strides[0], where // strides[1] % hu.shape[1], where % hu.shape[2]]
    steps = [[np.maximum(c - 1, 0) * stride, c * stride, np.minimum(c + 1, n - 1) * stride]
             for c, n, stride in zip(coords, hu.shape, strides)]  # `np.clip` costs several times more
    flat = np.ascontiguousarray(hu).ravel()
    total = np.zeros(where.size, dtype=np.float64)
    for z in steps[0]:
        for y in steps[1]:
            zy = z + y
            for x in steps[2]:
                total += flat[zy + x]
    near.ravel()[where] = total / 27.0 < level
    return near


def _is_gas(mask: np.ndarray, hu: np.ndarray, gas_below_hu: float) -> bool:
    """Whether an air component (``mask`` and its HU ``hu``, one bounding box) is gas, not lung:
    the median of its in-plane interior (its whole self when that is empty: the partial-volume rim
    would pull a gas pocket towards lung values) is below ``gas_below_hu``."""
    interior = erode(mask, PLANAR4)
    values = interior if interior.any() else mask
    # the median is below the level when more than half the values are (a count, not a sort, and
    # of a mask, not of the gathered values)
    return 2 * np.count_nonzero(values & (hu < gas_below_hu)) > np.count_nonzero(values)


def _middle_x(mask: np.ndarray, world_x: Callable[[np.ndarray], np.ndarray]) -> float:
    """World x (mm) halfway between the 1st and 99th percentile of ``mask``'s x (every second
    voxel along each axis: the coordinate list of a pair of lungs is large)."""
    points = np.argwhere(mask[::2, ::2, ::2]) * 2
    return float(np.mean(np.percentile(world_x(points), [1.0, 99.0])))


def _fill_label_holes(labels: np.ndarray, value: int, pixel_mm2: float, bbox: tuple[slice, ...] | None = None) -> None:
    """Fill the slice-by-slice holes of lung ``value`` in ``labels`` (in place), but not the holes
    that open, through the slice above or below, onto more than `HOLE_OPEN_MM2` of tissue outside
    the lung: those are a diaphragm dome the lung base wraps around (the abdomen under it), not a
    vessel or nodule enclosed by lung. ``pixel_mm2`` is the area of one in-plane voxel; ``bbox`` the
    lung's bounding box when known."""
    bbox = bbox or bounding_box(labels == value)
    if bbox is None:
        return
    # one slice beyond the lung's either way, where the scan has it: a hole in the lung's first or
    # last slice opens onto what lies there (beyond the scan nothing is known)
    z = slice(max(bbox[0].start - 1, 0), min(bbox[0].stop + 1, labels.shape[0]))
    crop = labels[z, bbox[1], bbox[2]]
    lung = crop == value
    holes = fill_holes_slicewise(lung) & (crop == 0)
    if not holes.any():
        return
    outside = ~(lung | holes)
    below, above = outside[:-1] & holes[1:], outside[1:] & holes[:-1]  # tissue in the slice below, above
    if (np.count_nonzero(below) + np.count_nonzero(above)) * pixel_mm2 <= HOLE_OPEN_MM2:
        crop[holes] = value  # all of them together open onto too little: each is enclosed
        return
    pieces, n = label_components(holes, CONN6)
    contact = np.bincount(pieces[1:][below], minlength=n + 1) + np.bincount(pieces[:-1][above], minlength=n + 1)
    opens = contact * pixel_mm2 > HOLE_OPEN_MM2
    holes[holes] = ~opens[pieces[holes]]  # the enclosed ones (looked up on the hole voxels alone)
    crop[holes] = value


def split_touching(
    mask: np.ndarray, coarse: np.ndarray, world_x: Callable[[np.ndarray], np.ndarray], midline_x_mm: float,
    densest: Callable[[tuple[slice, ...]], np.ndarray] | None = None,
) -> list[np.ndarray]:
    """Split two touching lungs by a watershed grown from their lateral parts towards the midline.

    The markers are the parts of ``mask`` more than `SPLIT_MARKER_MM` either side of the midline
    (each lung's lateral bulk); the flooding runs from far to near the midline (HU divided by
    `SPLIT_HU_PER_MM` is added, so a visible pleural septum still holds the boundary: the HU are
    ``densest(box)``, the block maximum at full resolution, when given, else ``coarse``, whose
    samples a septum a pixel or two wide falls between), so the two floods meet
    at the midline wherever the lungs touch (an anterior or posterior junction line too thin to
    see) and follow each lung's own connectivity elsewhere: a lung reaching across the midline
    without touching the other keeps its part there. Erosion into two cores, the older way,
    separates lungs touching along a long junction at the wrong place and needs many passes.

    Returns the two parts (full-shape masks), or ``[mask]`` when one side has no marker.
    """
    from skimage.segmentation import watershed

    bbox = bounding_box(mask)
    region = mask[bbox]
    offset = np.array([sl.start for sl in bbox], dtype=float)
    # world x is linear in the indices: built from its coefficients, not a per-voxel coordinate list
    base = float(world_x(offset[None])[0])
    step = [float(world_x((offset + np.eye(3)[k])[None])[0]) - base for k in range(3)]
    distance = (base - midline_x_mm + step[0] * np.arange(region.shape[0], dtype=np.float32)[:, None, None]
                + step[1] * np.arange(region.shape[1], dtype=np.float32)[None, :, None]
                + step[2] * np.arange(region.shape[2], dtype=np.float32)[None, None, :]).astype(np.float32)
    markers = ((distance > SPLIT_MARKER_MM) & region).astype(np.int32)
    markers[(distance < -SPLIT_MARKER_MM) & region] = 2
    if not ((markers == 1).any() and (markers == 2).any()):
        return [mask]
    # a septum a pixel or two thin falls between the coarse grid's samples: the block maximum
    # (``densest``) keeps it
    hu = coarse[bbox] if densest is None else densest(bbox)
    elevation = hu / np.float32(SPLIT_HU_PER_MM) - np.abs(distance)
    grown = watershed(elevation, markers, mask=region)
    parts = []
    for value in (1, 2):
        part = np.zeros(mask.shape, dtype=bool)
        part[bbox] = grown == value
        parts.append(part)
    return parts


def refine_labels(
    labels: np.ndarray, grid: CoarseGrid, band_keep: Callable[[tuple[slice, ...]], np.ndarray],
    exclude: np.ndarray | None
) -> np.ndarray:
    """Bring coarse labels to full resolution, deciding boundary voxels at full resolution.

    Each label's coarse interior (one face-connected erosion; the image border does not erode)
    is kept whole; its boundary band (one dilation minus the interior, not in ``exclude`` or
    another label) keeps the fine voxels where ``band_keep(box)`` (a new full-resolution boolean
    array of the fine voxels in ``box``; it is overwritten) is True. Only the labels' bounding box is brought to
    full resolution (lungs and airways fill a fraction of the field of view): `refine_in_box`.
    """
    full = np.zeros(grid.shape, dtype=np.uint8)
    refined = refine_in_box(labels, grid, band_keep, exclude)
    if refined is not None:
        full[refined[0]] = refined[1]
    return full


def refine_in_box(
    labels: np.ndarray, grid: CoarseGrid, band_keep: Callable[[tuple[slice, ...]], np.ndarray],
    exclude: np.ndarray | None
) -> tuple[tuple[slice, ...], np.ndarray] | None:
    """`refine_labels` within the fine box of the labels' coarse bounding box grown by one voxel
    (the band reaches one voxel out), beyond which all is 0: ``(fine box, its uint8 labels)``, or
    None without labels."""
    box = bounding_box(labels > 0)
    if box is None:
        return None
    box = grown_box(box, 1, labels.shape)
    if grid.is_identity:
        return box, labels[box].copy()
    labels = np.ascontiguousarray(labels[box], dtype=np.uint8)
    # all labels at once, from their six face neighbours (beyond the array: the same label): a voxel
    # is interior when they all share its label, else it is its label's band; a background voxel
    # beside labels is the band of the lowest of them (`LEFT` before `AIRWAY`)
    labelled = labels > 0
    inner = labelled.copy()
    lowest = labels - np.uint8(1)  # background wraps to 255: no label
    nearest = np.full(labels.shape, 255, dtype=np.uint8)
    flat = [a.reshape(-1) for a in (labels, inner, lowest, nearest)]
    for axis in range(labels.ndim):
        for step in (-1, 1):
            # one shift of the flat views (`flat_pair`); along any axis but the first it wraps, at the
            # array's edge, into the next row or slice: the edge is kept as it was
            dst, src = flat_pair(tuple(step if a == axis else 0 for a in range(labels.ndim)), labels.shape)
            edge = tuple(slice(0, 1) if a == axis and step < 0 else slice(-1, None) if a == axis else slice(None)
                         for a in range(labels.ndim))
            kept = (inner[edge].copy(), nearest[edge].copy()) if axis else None
            flat[1][dst] &= flat[0][dst] == flat[0][src]
            np.minimum(flat[3][dst], flat[2][src], out=flat[3][dst])
            if kept is not None:
                inner[edge], nearest[edge] = kept
    # codes: 2 * label inside, 2 * label - 1 on the band (a label's voxels but its interior, and the
    # background beside labels, as the lowest of them), 0 elsewhere
    code = np.where(labelled, labels, nearest + np.uint8(1))  # background wraps back to 0: no label beside
    band = np.greater(code > 0, inner)
    code <<= 1
    np.subtract(code, band, out=code, casting="unsafe")
    if exclude is not None:
        code[exclude[box] & band] = 0
    fine = grid.fine_box(box)
    local = np.empty(tuple(sl.stop - sl.start for sl in fine), dtype=np.uint8)
    for sub in grid.slabs(box):  # slab by slab: the fine temporaries stay in the cache
        fine_box = grid.fine_box(sub)
        part = grid.upsample(code[sub[0].start - box[0].start:sub[0].stop - box[0].start], sub)
        band = np.bitwise_and(part, 1).view(bool)
        keep = band_keep(fine_box)
        np.greater_equal(keep, band, out=keep)  # off the band, or kept by the fine threshold
        part += 1
        part >>= 1
        np.multiply(part, keep, out=local[fine_box[0].start - fine[0].start:fine_box[0].stop - fine[0].start])
    return fine, local
