"""Helpers shared by the dataset loaders: finding files, reading HF copies, storing images.

Hugging Face copies are read either from a ``datasets.save_to_disk`` folder
(``datasets.load_from_disk``) or from the parquet files of the hub repository
(``data/test-00000-of-00001.parquet`` ...), streamed in record batches with pyarrow so a
multi-gigabyte file never sits in memory. Image columns hold ``{"bytes", "path"}`` structs; the
bytes are written once, unchanged, to an image folder (`ImageStore`) because a `Case` refers to
images by path.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path
from typing import Any, Iterator

from imaging.errors import MMReasonError

HF_HINT = "pip install 'mmreason[bench]'  (installs datasets and pyarrow)"


class DatasetError(MMReasonError):
    """A dataset's files are missing or not in the published format."""


def find_file(root: Path, candidates: list[str], what: str) -> Path:
    """The first of ``candidates`` (relative paths or globs) that exists under ``root``."""
    for pattern in candidates:
        hits = sorted(root.glob(pattern))
        if hits:
            return hits[0]
    raise DatasetError(f"no {what} found under {root} (looked for: {', '.join(candidates)}); "
                       f"put the published files there or pass --data TASK=DIR")


def find_image(root: Path, name: str, folders: list[str]) -> Path:
    """``name`` inside the first of ``folders`` (relative to ``root``) that holds it."""
    for folder in folders:
        path = root / folder / name
        if path.exists():
            return path
    raise DatasetError(f"image '{name}' not found under {root} in any of: {', '.join(folders) or '.'}")


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} is not valid JSON ({exc}); re-download the annotation file") from None


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    with path.open(encoding="utf-8") as f:
        for i, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise DatasetError(f"{path}:{i} is not valid JSON ({exc})") from None
    return rows


def sha256_files(paths: list[Path]) -> str:
    """sha256 of one file, or of the sorted list ``name:sha256`` lines when there are several."""
    digests = []
    for p in sorted(paths):
        h = hashlib.sha256()
        with p.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digests.append((p.name, h.hexdigest()))
    if len(digests) == 1:
        return digests[0][1]
    return hashlib.sha256("".join(f"{n}:{d}\n" for n, d in digests).encode()).hexdigest()


def is_hf_saved(root: Path) -> bool:
    """True when ``root`` is a ``datasets.save_to_disk`` folder (a Dataset or a DatasetDict)."""
    return (root / "dataset_dict.json").exists() or (root / "state.json").exists()


def parquet_files(root: Path, split: str, subdir: str = "") -> list[Path]:
    """The hub layout's parquet shards of ``split``: ``[subdir/]data/<split>-*.parquet`` or similar."""
    base = root / subdir if subdir else root
    for pattern in (f"data/{split}-*.parquet", f"{split}-*.parquet", f"**/{split}-*.parquet", f"**/*{split}*.parquet"):
        hits = sorted(base.glob(pattern))
        if hits:
            return hits
    return []


def annotation_files_hf(root: Path, split: str, subdir: str = "") -> list[Path]:
    """Files that define a HF copy's content (what the checksum covers)."""
    base = root / subdir if subdir else root
    if is_hf_saved(base):
        split_dir = base / split if (base / "dataset_dict.json").exists() else base
        return sorted(split_dir.glob("*.arrow"))
    return parquet_files(root, split, subdir)


def hf_rows(root: Path, split: str, subdir: str = "", batch_size: int = 64) -> Iterator[dict[str, Any]]:
    """Rows of a local HF copy as plain dicts (images as ``{"bytes", "path"}``), in file order."""
    base = root / subdir if subdir else root
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DatasetError(f"reading parquet datasets needs pyarrow: {HF_HINT}") from None
    if is_hf_saved(base):
        try:
            import datasets
        except ImportError:
            raise DatasetError(f"reading a saved Hugging Face dataset needs `datasets`: {HF_HINT}") from None
        ds = datasets.load_from_disk(str(base))
        if isinstance(ds, datasets.DatasetDict):
            if split not in ds:
                raise DatasetError(f"{base} has splits {list(ds)}, not '{split}'; pass --split")
            ds = ds[split]
        for batch in ds.with_format("arrow").iter(batch_size=batch_size):
            yield from batch.to_pylist()
        return
    files = parquet_files(root, split, subdir)
    if not files:
        raise DatasetError(f"no parquet files of split '{split}' under {base} and no saved dataset there; "
                           f"copy the hub repository's data/ folder or a `save_to_disk` folder there")
    for f in files:
        for batch in pq.ParquetFile(f).iter_batches(batch_size=batch_size):
            yield from batch.to_pylist()


def _image_suffix(data: bytes) -> str:
    from PIL import Image

    try:
        fmt = (Image.open(io.BytesIO(data)).format or "PNG").lower()
    except Exception:  # noqa: BLE001 - undecodable bytes are reported when the image is used
        return ".bin"
    suffixes = {"jpeg": ".jpg", "png": ".png", "tiff": ".tif", "bmp": ".bmp", "gif": ".gif", "webp": ".webp"}
    return suffixes.get(fmt, ".png")


class ImageStore:
    """Writes embedded images once to a folder and returns their paths.

    The folder is ``<data dir>/.mmreason_images`` when the data folder is writable, else
    ``~/.cache/mmreason/images/<task>``; an existing file with the same name is reused.
    """

    def __init__(self, root: Path, task: str) -> None:
        folder = root / ".mmreason_images"
        try:
            folder.mkdir(exist_ok=True)
            writable = os.access(folder, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            folder = Path.home() / ".cache" / "mmreason" / "images" / task
            folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder

    def put(self, image: Any, stem: str) -> str:
        """Store ``image`` (a ``{"bytes", "path"}`` struct, raw bytes, or a PIL image) as ``stem.*``."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        if isinstance(image, dict):
            data = image.get("bytes")
            if data is None and image.get("path") and Path(image["path"]).exists():
                return str(Path(image["path"]).resolve())
        elif isinstance(image, (bytes, bytearray)):
            data = bytes(image)
        else:  # a decoded PIL image (load_from_disk with decoding on)
            buf = io.BytesIO()
            image.save(buf, format="PNG")
            data = buf.getvalue()
        if not data:
            raise DatasetError(f"row '{stem}' has an image column without bytes or a readable path")
        path = self.folder / f"{safe}{_image_suffix(data)}"
        if not path.exists():
            tmp = path.with_suffix(path.suffix + ".tmp")
            tmp.write_bytes(data)
            tmp.replace(path)
        return str(path)


def enum(value: Any) -> str:
    """An enum field as published files write it, compared without case or surrounding space ("CLOSED " -> "closed")."""
    return "" if value is None else str(value).strip().lower()


def yes_no_type(answer: str) -> str:
    """``closed`` for a yes/no reference answer, else ``open`` (PathVQA's published split)."""
    return "closed" if answer.strip().lower() in ("yes", "no") else "open"
