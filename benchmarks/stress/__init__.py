"""``python -m benchmarks.stress``: the classical segmenters on random anatomy nobody tuned them on.

An independent generator (`benchmarks.stress.anatomy`, `benchmarks.stress.render`; nothing is
shared with `imaging.phantoms`, on which the segmenters were developed) draws adult chest and
upper-abdomen CTs from realistic ranges, writes each as NIfTI in a random layout (LPS, RAS, LAS or
oblique), loads it back through `imaging.io.load` and asks the ``segment`` tool for every
structure (`benchmarks.stress.evaluate`).

Seeds: the **tuning** split is seeds 0-99 (use it while changing a segmenter); the **held-out**
split is seeds 1000 and up (report it; never tune on it). A case is a pure function of its seed
and `render.GenerateOptions`.
"""

TUNING_SEEDS = range(0, 100)
HELDOUT_START = 1000
SPLITS = ("tuning", "heldout")


def split_seeds(split: str, n: int) -> list[int]:
    """The first ``n`` seeds of ``split`` (``tuning``: 0-99; ``heldout``: 1000 and up)."""
    if split == "tuning":
        if n > len(TUNING_SEEDS):
            raise ValueError(f"the tuning split has {len(TUNING_SEEDS)} seeds; ask for at most that many")
        return list(TUNING_SEEDS[:n])
    if split == "heldout":
        return list(range(HELDOUT_START, HELDOUT_START + n))
    raise ValueError(f"unknown split '{split}'; choose one of {', '.join(SPLITS)}")
