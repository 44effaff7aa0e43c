"""PNG, JPEG, TIFF and BMP images through Pillow, as one-slice volumes.

Pixels keep their stored layout: image row -> volume y, image column -> volume x, so an axial
`slice_view` shows the picture exactly as a viewer would. Grayscale (8/16-bit, float TIFF) keeps
its values; colour is collapsed to luminance (ITU-R 601: 0.299 R + 0.587 G + 0.114 B) unless
``color=True``, which also keeps an RGB uint8 copy in `Volume.color`. Alpha is dropped. The pixel
size is unknown in these formats: 1.0 mm unless ``spacing=(row_mm, col_mm)`` is given, and
``metadata["pixel_spacing_source"]`` says which.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from imaging.io.build import LoadOptions, build_volume
from imaging.io.errors import CorruptFileError, FrameSelectionError, ImageTooLargeError, cause
from imaging.io.limits import check_shape
from imaging.volume import Volume, axis_aligned_affine

LUMINANCE = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _pixels(im: Image.Image) -> np.ndarray:
    """The image as an array: (h, w) for grayscale modes, (h, w, 3) for colour ones."""
    if im.mode in ("1", "P", "PA", "CMYK", "YCbCr", "LAB", "HSV", "RGBA", "RGBX", "LA"):
        im = im.convert("RGB") if im.mode not in ("1", "LA") else im.convert("L")
    arr = np.asarray(im)
    if arr.ndim == 3:
        arr = arr[..., :3]
    return arr


def load_raster(path: Path, options: LoadOptions) -> Volume:
    """Read a PNG/JPEG/TIFF/BMP file into a one-slice `Volume` (see `imaging.io.load`)."""
    source = path.name
    try:
        with warnings.catch_warnings():
            # Pillow warns above MAX_IMAGE_PIXELS; our own `check_shape` below decides on size
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as exc:
        raise ImageTooLargeError(f"{source}: the header announces an image too large to decode safely ({cause(exc)}); "
                                 "if it is genuine, downsample it first or raise PIL.Image.MAX_IMAGE_PIXELS "
                                 "in Python before loading") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise CorruptFileError(f"{source}: Pillow cannot identify the image ({cause(exc)}); the file is damaged or "
                               "not the format its extension says") from exc
    with im:
        frames = int(getattr(im, "n_frames", 1))
        if frames > 1 and options.frame is None:
            raise FrameSelectionError(f"{source}: multi-page image with {frames} pages; pick one with "
                                      f"frame=0..{frames - 1} (CLI: --frame N)")
        if options.frame is not None and options.frame >= frames:
            raise FrameSelectionError(f"{source}: frame={options.frame} is out of range; the file has {frames} page(s)")
        width, height = im.size
        check_shape((1, height, width), options.max_voxels, source)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                if options.frame:
                    im.seek(options.frame)
                arr = _pixels(im)
        except Image.DecompressionBombError as exc:
            raise ImageTooLargeError(f"{source}: Pillow refuses a {width}x{height} image as a possible "
                                     "decompression bomb; raise PIL.Image.MAX_IMAGE_PIXELS if it is genuine") from exc
        except (OSError, SyntaxError, ValueError) as exc:
            raise CorruptFileError(f"{source}: the image data are truncated or damaged ({cause(exc)}); re-export it") from exc
        fmt, mode = im.format or path.suffix.lstrip(".").upper(), im.mode
    color = None
    is_color = arr.ndim == 3 and not (
        np.array_equal(arr[..., 0], arr[..., 1]) and np.array_equal(arr[..., 1], arr[..., 2])
    )
    if arr.ndim == 3:
        if is_color:
            values = arr.astype(np.float32) @ LUMINANCE
            if options.color:
                color = arr[None].astype(np.uint8)
        else:
            values = arr[..., 0]
    else:
        values = arr
    dy, dx = options.spacing if options.spacing is not None else (1.0, 1.0)
    spacing = (1.0, dy, dx)
    metadata = {
        "format": fmt,
        "mode": mode,
        "pixel_spacing_source": "argument" if options.spacing is not None else "unknown (1.0 mm assumed)",
        "geometry_source": "pixel grid only",
    }
    if is_color:
        metadata["color_collapsed_to_luminance"] = not options.color
    if frames > 1:
        metadata["frame"] = options.frame
    return build_volume(values[None], axis_aligned_affine(spacing), spacing, options, source=source, name=path.stem,
                        metadata=metadata, color=color, is_color=is_color)
