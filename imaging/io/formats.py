"""File-name suffixes of every format the loaders read.

Kept apart from the loaders so that deciding which loader a path needs (and listing the formats
in an error) imports neither nibabel, pydicom nor SimpleITK.
"""

from __future__ import annotations

NIFTI_SUFFIXES = (".nii", ".nii.gz")
DICOM_SUFFIXES = (".dcm", ".dicom", ".ima")
NRRD_SUFFIXES = (".nrrd", ".nhdr")
METAIMAGE_SUFFIXES = (".mha", ".mhd")
ITK_SUFFIXES = NRRD_SUFFIXES + METAIMAGE_SUFFIXES
MGH_SUFFIXES = (".mgz", ".mgh")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NPY_SUFFIXES = (".npy",)
