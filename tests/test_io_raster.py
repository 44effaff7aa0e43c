"""PNG/JPEG/TIFF loading, the modality heuristic for untagged images, and write_png."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from imaging.io import load
from imaging.io.errors import CorruptFileError, FrameSelectionError, InvalidOptionError
from imaging.views import slice_view
from imaging.volume import Volume
from imaging.writers import WriteError, write_png


def test_grayscale_png_keeps_values_and_layout(tmp_path):
    arr = np.arange(200, dtype=np.uint8).reshape(10, 20)
    Image.fromarray(arr).save(tmp_path / "g.png")
    vol = load(tmp_path / "g.png")
    assert vol.shape == (1, 10, 20) and vol.is_2d
    np.testing.assert_array_equal(vol.data[0], arr)
    assert vol.spacing == (1.0, 1.0, 1.0)
    assert vol.metadata["pixel_spacing_source"] == "unknown (1.0 mm assumed)"
    assert vol.modality == "XR" and vol.metadata["modality_source"] == "heuristic"
    assert vol.name == "g"


def test_16bit_png_and_given_spacing(tmp_path):
    arr = (np.arange(60, dtype=np.uint16).reshape(6, 10) * 1000).astype(np.uint16)
    Image.fromarray(arr).save(tmp_path / "w.png")
    vol = load(tmp_path / "w.png", spacing=(0.2, 0.25), modality="CT")
    np.testing.assert_array_equal(vol.data[0], arr.astype(np.float32))
    assert vol.spacing == (1.0, 0.2, 0.25) and vol.metadata["pixel_spacing_source"] == "argument"
    assert vol.modality == "CT" and vol.metadata["modality_source"] == "argument"


def test_rgb_collapsed_to_luminance_or_kept(tmp_path):
    rgb = np.zeros((4, 5, 3), dtype=np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 200, 100, 50
    Image.fromarray(rgb).save(tmp_path / "c.png")
    gray = load(tmp_path / "c.png")
    assert gray.color is None and gray.modality == "OT"
    np.testing.assert_allclose(gray.data, 0.299 * 200 + 0.587 * 100 + 0.114 * 50, rtol=1e-5)
    kept = load(tmp_path / "c.png", color=True)
    assert kept.color.shape == (1, 4, 5, 3)
    np.testing.assert_array_equal(kept.color[0], rgb)
    np.testing.assert_array_equal(kept.data, gray.data)


def test_rgb_with_equal_channels_is_grayscale(tmp_path):
    arr = np.random.default_rng(0).integers(0, 255, (8, 8), dtype=np.uint8)
    Image.fromarray(np.stack([arr] * 3, -1)).convert("RGB").save(tmp_path / "g.jpg", quality=100)
    vol = load(tmp_path / "g.jpg")
    assert vol.modality == "XR" and "color_collapsed_to_luminance" not in vol.metadata


def test_multipage_tiff_needs_frame(tmp_path):
    pages = [Image.fromarray(np.full((6, 7), v, dtype=np.uint8)) for v in (10, 20, 30)]
    pages[0].save(tmp_path / "stack.tif", save_all=True, append_images=pages[1:])
    with pytest.raises(FrameSelectionError, match="3 pages"):
        load(tmp_path / "stack.tif")
    assert load(tmp_path / "stack.tif", frame=2).data.max() == 30.0


def test_float_tiff_with_nan(tmp_path):
    arr = np.ones((5, 5), dtype=np.float32)
    arr[2, 2] = np.nan
    Image.fromarray(arr, mode="F").save(tmp_path / "f.tif")
    assert load(tmp_path / "f.tif", nonfinite="zero").data[0, 2, 2] == 0.0


def test_truncated_png(tmp_path):
    arr = np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8)
    Image.fromarray(arr).save(tmp_path / "ok.png")
    raw = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "bad.png").write_bytes(raw[: len(raw) // 2])
    with pytest.raises(CorruptFileError):
        load(tmp_path / "bad.png")
    (tmp_path / "junk.png").write_bytes(b"not an image at all")
    with pytest.raises(CorruptFileError):
        load(tmp_path / "junk.png")


def test_bad_options(tmp_path):
    Image.fromarray(np.zeros((3, 3), dtype=np.uint8)).save(tmp_path / "z.png")
    for kwargs in ({"modality": "XRAY"}, {"nonfinite": "drop"}, {"spacing": (0.0, 1.0)}, {"frame": -1}):
        with pytest.raises(InvalidOptionError):
            load(tmp_path / "z.png", **kwargs)


def test_write_png_round_trip_and_views(tmp_path):
    data = np.tile(np.linspace(0, 1000, 16, dtype=np.float32), (9, 1))
    vol = Volume.from_array(data, modality="XR")
    write_png(vol, tmp_path / "v.png", window="auto")
    back = load(tmp_path / "v.png")
    assert back.shape == (1, 9, 16)
    assert back.data[0, 0, 0] == 0.0 and back.data[0, 0, -1] == 255.0
    assert np.all(np.diff(back.data[0, 0]) >= 0)  # monotone ramp survives the window
    view = slice_view(vol)
    write_png(view, tmp_path / "view.png")
    assert Image.open(tmp_path / "view.png").size == view.image.size
    with pytest.raises(WriteError, match="slice_view"):
        write_png(Volume.from_array(np.zeros((3, 4, 4))), tmp_path / "x.png")
