"""Repeated timings of several contenders in one run, for the perf scripts.

Contenders are timed round-robin (A, B, C, A, B, C, ...) rather than one after the other, so that a
change in machine load during the run reaches every contender alike; each figure is the median of
its repeats, reported with its spread (min and max), so that a single lucky or unlucky run on a
shared machine is not mistaken for a measurement.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Timing:
    """Wall-clock seconds of the repeats of one contender on one input."""

    name: str
    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def low(self) -> float:
        return min(self.seconds)

    @property
    def high(self) -> float:
        return max(self.seconds)

    def describe(self) -> str:
        return f"{self.median:.3f} s (min {self.low:.3f}, max {self.high:.3f}, n={len(self.seconds)})"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "median_s": round(self.median, 4), "min_s": round(self.low, 4),
                "max_s": round(self.high, 4), "seconds": [round(s, 4) for s in self.seconds]}


def time_round_robin(contenders: dict[str, Callable[[], Any]], repeats: int, warmup: bool = True) -> dict[str, Timing]:
    """Time each contender ``repeats`` times, interleaved (one untimed warm-up call each first)."""
    if warmup:
        for run in contenders.values():
            run()
    timings = {name: Timing(name) for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            t0 = time.perf_counter()
            run()
            timings[name].seconds.append(time.perf_counter() - t0)
    return timings


def traced_peak(run: Callable[[], Any]) -> tuple[Any, int]:
    """``run()``'s result and the peak of the allocations `tracemalloc` saw during it (bytes; numpy
    and the C extensions that allocate through it are included, SimpleITK's own buffers are not)."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        out = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return out, peak


def ratio_line(timings: dict[str, Timing], ours: str, peer: str) -> str:
    """``ours / peer`` of the medians, with the range of the ratio over the spread of both."""
    t, p = timings[ours], timings[peer]
    return (f"{ours} / {peer}: {t.median / p.median:.2f} (medians; range {t.low / p.high:.2f}-"
            f"{t.high / p.low:.2f})")
