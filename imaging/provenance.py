"""Where a volume's modality, spacing, orientation (and an MR's sequence) came from, and whether they
were assumed.

A loader knows which header field, DICOM tag or guess gave each of these facts; everything
downstream (tool messages, the model's prompt, the trace, the report, evidence quality) needs to
know too, because a millimetre figure computed from an assumed 1.0 mm spacing, a side read from an
assumed orientation, or a CT threshold applied to a volume only guessed to be CT, must not be stated
as certain.

Sources:

* ``argument``: the user gave it (an option); trusted, the user takes responsibility;
* ``header``: a NIfTI header field (sform/qform, pixdim) or a note our writer left there; the
  spacing, direction and origin of a NRRD, MetaImage or MGH header (a header that states no
  directions gives an assumed orientation instead);
* ``dicom``: a DICOM tag (Modality, PixelSpacing, ImagePositionPatient/ImageOrientationPatient,
  PatientOrientation);
* ``file name``: a word of the file's name (an MR sequence: ``_FLAIR``, ``_T1w``; see
  `imaging.io.sequence`): a naming convention, trusted like a header;
* ``caller``: a program built the volume from an array and its geometry (phantoms, tests);
* ``heuristic``: guessed from the voxel values (assumed);
* ``default``: nothing said it, a default was taken (assumed).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

FACT_NAMES = ("modality", "spacing", "orientation", "sequence")
SOURCES = ("argument", "header", "dicom", "file name", "caller", "heuristic", "default")
#: the sequence fact of an MR volume whose files do not name it
UNKNOWN_SEQUENCE = "unknown"
ASSUMED_SOURCES = frozenset({"heuristic", "default"})

#: ``geometry_source`` notes of loaders whose header states spacing, direction and origin
HEADER_GEOMETRY = ("NRRD header", "MetaImage header", "MGH header")


@dataclass(frozen=True)
class Fact:
    """One fact about a volume with where it came from."""

    name: str
    value: Any
    source: str
    detail: str = ""

    @property
    def assumed(self) -> bool:
        """True when nothing in the file or from the user said it (a guess or a default)."""
        return self.source in ASSUMED_SOURCES

    def describe(self) -> str:
        """``spacing 1.0 x 1.0 mm ASSUMED (no PixelSpacing tag)`` style text for prompts and reports."""
        value = self.value
        if isinstance(value, (tuple, list)):
            value = " x ".join(f"{float(v):.3g}" for v in value) + " mm"
        flag = " ASSUMED" if self.assumed else ""
        how = f"{self.source}: {self.detail}" if self.detail else self.source
        return f"{self.name} {value}{flag} ({how})"

    def to_dict(self) -> dict[str, Any]:
        value = list(self.value) if isinstance(self.value, tuple) else self.value
        return {"value": value, "source": self.source, "detail": self.detail, "assumed": self.assumed}


def fact_sources(metadata: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """(source, detail) of each fact from the notes every loader writes into ``metadata``.

    One function reads the loaders' notes so that no loader can forget to classify a fact:
    a volume whose notes say nothing keeps the ``caller`` source (it was built from an array).
    """
    out: dict[str, tuple[str, str]] = {}
    rule = metadata.get("modality_source")
    if rule is not None:
        out["modality"] = {
            "argument": ("argument", "modality option"),
            "dicom": ("dicom", "Modality tag"),
            "file note": ("header", "modality note in the file header (NIfTI descrip, MetaImage Modality)"),
        }.get(rule, ("heuristic", "guessed from the voxel values; give --modality to state it"))
    pixel = str(metadata.get("pixel_spacing_source", ""))
    if metadata.get("spacing_assumed"):  # a format that states no spacing at all (.npy)
        out["spacing"] = ("default", str(metadata["spacing_assumed"]))
    elif pixel.startswith("unknown"):
        out["spacing"] = ("default", "no pixel spacing in the file, 1.0 mm assumed; give --pixel-spacing")
    elif pixel == "argument":
        out["spacing"] = ("argument", "pixel spacing option")
    elif pixel:
        out["spacing"] = ("dicom", f"{pixel} tag")
    elif metadata.get("spacing_source"):
        out["spacing"] = ("header", str(metadata["spacing_source"]))
    if "sform_code" in metadata or "qform_code" in metadata:
        if int(metadata.get("sform_code", 0)) > 0:
            out["orientation"] = ("header", f"NIfTI sform (code {int(metadata['sform_code'])})")
        elif int(metadata.get("qform_code", 0)) > 0:
            out["orientation"] = ("header", f"NIfTI qform (code {int(metadata['qform_code'])})")
        else:
            out["orientation"] = ("default", "NIfTI sform and qform codes are 0: the axes' directions are unknown, "
                                             "left/right cannot be trusted; give --assume-orientation to accept them")
    elif str(metadata.get("geometry_source", "")).startswith("ImagePositionPatient"):
        out["orientation"] = ("dicom", "ImageOrientationPatient")
    elif str(metadata.get("geometry_source", "")).startswith(HEADER_GEOMETRY):
        out["orientation"] = ("header", str(metadata["geometry_source"]))
    elif str(metadata.get("geometry_source", "")).startswith("assumed"):
        out["orientation"] = ("default", str(metadata["geometry_source"]) + "; left/right cannot be trusted, give "
                                                                             "--assume-orientation to accept them")
    elif "display_orientation" in metadata:
        note = str(metadata["display_orientation"])
        out["orientation"] = ("default", note) if note.startswith("assumed") else ("dicom", note)
    elif str(metadata.get("geometry_source", "")).startswith("pixel grid"):
        out["orientation"] = ("default", "image file without patient axes: the standard display is assumed "
                                         "(patient's left on the image right)")
    if metadata.get("orientation_doubt"):  # a loader found the header's axes ambiguous (e.g. negative pixdim)
        out["orientation"] = ("default", str(metadata["orientation_doubt"]))
    if metadata.get("sequence_source"):
        out["sequence"] = (str(metadata["sequence_source"]), str(metadata.get("sequence_detail", "")))
    elif "sequence" not in metadata:
        out["sequence"] = ("default", "no sequence named by DICOM tags, NIfTI description or file name")
    if metadata.get("orientation_argument"):
        out["orientation"] = ("argument", f"--assume-orientation {metadata['orientation_argument']}")
    return out
