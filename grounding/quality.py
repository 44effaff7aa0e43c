"""How far a piece of evidence can be trusted: a level and the reasons for it.

Levels, from best to worst: ``ok`` (nothing argues against it), ``doubtful`` (something does:
an assumed spacing, a truncated organ, a volume at the edge of the adult range, two segmenters
disagreeing ...) and ``implausible`` (it contradicts anatomy: a 255 mL adult liver, a spleen on
the right, a lung lesion at bone density). Reasons are short sentences shown to the model, kept in
the trace and the report, and read by verifiers, rewards and the rules planner.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

LEVELS = ("ok", "doubtful", "implausible")


@dataclass
class Quality:
    """A trust level with its reasons (``checks`` lists what was checked, passed or not)."""

    level: str = "ok"
    reasons: list[str] = field(default_factory=list)
    checks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"quality level must be one of {', '.join(LEVELS)}, got {self.level!r}")

    def flag(self, level: str, reason: str) -> None:
        """Lower the level to ``level`` (never raises it) and record why; a reason that lowers it
        goes first, so ``reasons[0]`` always explains the level."""
        if level == "ok" or reason in self.reasons:
            return
        if LEVELS.index(level) > LEVELS.index(self.level):
            self.level = level
            self.reasons.insert(0, reason)
        else:
            self.reasons.append(reason)

    def merge(self, other: "Quality") -> None:
        if LEVELS.index(other.level) > LEVELS.index(self.level):
            self.level = other.level
            self.reasons = other.reasons + [r for r in self.reasons if r not in other.reasons]
        else:
            self.reasons += [r for r in other.reasons if r not in self.reasons]
        self.checks.extend(c for c in other.checks if c not in self.checks)

    @property
    def trusted(self) -> bool:
        return self.level == "ok"

    def describe(self) -> str:
        """``Quality: doubtful (spacing assumed; ...)`` for tool messages."""
        if not self.reasons:
            return f"Quality: {self.level}"
        return f"Quality: {self.level} ({'; '.join(self.reasons)})"

    def to_dict(self) -> dict[str, Any]:
        return {"level": self.level, "reasons": list(self.reasons), "checks": list(self.checks)}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "Quality":
        if not d:
            return cls()
        return cls(level=d.get("level", "ok"), reasons=list(d.get("reasons", [])), checks=list(d.get("checks", [])))


def worst(levels: list[str]) -> str:
    """The worst of several levels (``ok`` for none)."""
    return max(levels, key=LEVELS.index, default="ok")
