"""The synthetic grounded benchmark (`benchmarks.core.synthetic`), read back from ``synthetic.json``.

Layout: ``synthetic.json`` plus the ``studies/`` folder it refers to (paths relative to the
folder of ``synthetic.json``). For the registered task, a missing set is generated on first use
(`prepare`: seed 0 in the task's data folder, only as many cases as the run needs: ``--limit 10``
makes 10, a full run 200, about 300 MB and a few minutes, with progress); make other sets with
``mmreason bench --make-synthetic DIR --n N --seed S`` and point the task at them with
``--data synthetic=DIR``. A set made by another version of `benchmarks.core.synthetic` (other phantoms or
questions) is refused with the command that regenerates it.
"""

from __future__ import annotations

import sys
from pathlib import Path

from mmreason.case import Case

from benchmarks.datasets.common import DatasetError, read_json

ANNOTATION = "synthetic.json"
DEFAULT_N, DEFAULT_SEED = 200, 0


def prepare(root: Path, limit: int | None = None, progress: bool = True) -> None:
    """Generate the default set in ``root`` when it is missing or has fewer than the cases needed.

    ``limit`` cases are needed (all `DEFAULT_N` when None). A set with another seed is the user's
    own and is never rewritten; a smaller default set is extended (sets are prefixes of each other).
    """
    needed = min(limit, DEFAULT_N) if limit else DEFAULT_N
    path = root / ANNOTATION
    if path.exists():
        doc = read_json(path)
        if doc.get("seed") != DEFAULT_SEED or int(doc.get("n", 0)) >= needed:
            return
    from benchmarks.core.synthetic import make_synthetic

    print(f"synthetic: generating {needed} cases (seed {DEFAULT_SEED}) in {root} ...", file=sys.stderr)
    make_synthetic(root, n=needed, seed=DEFAULT_SEED, progress=progress)


def annotation_files(root: Path, split: str) -> list[Path]:
    path = root / ANNOTATION
    if not path.exists():
        raise DatasetError(f"no {ANNOTATION} in {root}; run mmreason bench --make-synthetic {root}")
    return [path]


def load(root: Path, split: str = "test", task: str = "synthetic") -> list[Case]:
    path = annotation_files(root, split)[0]
    doc = read_json(path)
    if doc.get("format") != "mmreason-synthetic":
        raise DatasetError(f"{path} is not a synthetic benchmark file (format {doc.get('format')!r})")
    from benchmarks.core.synthetic import VERSION

    if doc.get("version") != VERSION:
        raise DatasetError(f"{path} is synthetic benchmark version {doc.get('version')}, this mmreason makes version "
                           f"{VERSION}; regenerate it with mmreason bench --make-synthetic {path.parent} "
                           f"--n {doc.get('n', DEFAULT_N)} --seed {doc.get('seed', DEFAULT_SEED)}")
    base = path.parent
    cases = []
    for row in doc["cases"]:
        cases.append(Case(
            id=row["id"], task=task, images=[str(base / p) for p in row["images"]], question=row["question"],
            answer=row["answer"], answer_type=row["answer_type"], options=row.get("options"), unit=row.get("unit"),
            tolerance=row.get("tolerance"),
            subgroups={"family": row["family"], "kind": row["kind"], "answer_type": row["answer_type"],
                       "n_images": str(len(row["images"]))},
            boxes=row.get("boxes", []), masks={k: str(base / p) for k, p in row.get("masks", {}).items()},
            reference_steps=row.get("reference_steps", []), native=row,
        ))
    return cases
