"""A planner's next turn (`Action`), what the tools established (`Finding`), and the turn as text.

`render` writes a turn exactly as a model would: a thought and ``<tool_call>`` blocks, or the
explanation and the ``<answer>`` tag, so the rules backend's traces serve as SFT demonstrations.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Finding:
    """What the tools established, from which the short answer and the option are chosen.

    Attributes:
        cites: evidence ids the answer rests on.
        present: whether the asked finding is there (None when the question is not about presence).
        none_text: set when nothing was found: what to say ("no nodule was found").
        site: what ``side`` qualifies ("lung", "hemisphere"; "" for a bare side).
        side: ``left``, ``right``, ``midline`` or ``bilateral`` (several lesions, on both sides);
            ``leaning`` the side most of a midline region is on, or the measured one of bilateral ones.
        diameter_mm: longest axial diameter; volume_mm3: volume (organs summed); size_is_volume:
            "how large" asks for the volume (organs) rather than the diameter (lesions).
        trend: ``grew``, ``shrank`` or ``is stable`` (follow-up); change_mm, change_pct: its size.
        ratio: the cardiothoracic ratio.
        count: the number of lesions found; count_at_least: the search was doubtful, so there may
            be more ("at least 2").
        label: a word answer (a sequence or modality name); words: words an option may contain.
        caveat: why the short answer is uncertain although no evidence was flagged (a ratio near
            a cut-off), shown with it.
        versus: a measured value against the value or structure it is compared with ("12.9 mm
            against 10 mm"), said after the yes/no; undecided: why the measurement cannot decide the
            comparison (within its own uncertainty of the cut-off): no yes/no and no option is given.
        mean_hu, sd_hu, voxels: mean and standard deviation of the CT values over a mask, and its voxels.
        tolerance: how far (in the unit of the number answered) an option may lie from the measured
            value and still be its option (None: `answer.OPTION_TOLERANCE`).
    """

    cites: list[str]
    present: bool | None = None
    none_text: str = ""
    site: str = ""
    side: str | None = None
    leaning: str | None = None
    diameter_mm: float | None = None
    volume_mm3: float | None = None
    size_is_volume: bool = False
    trend: str | None = None
    change_mm: float | None = None
    change_pct: float | None = None
    ratio: float | None = None
    count: int | None = None
    count_at_least: bool = False
    label: str | None = None
    words: list[str] = field(default_factory=list)
    caveat: str = ""
    versus: str = ""
    undecided: str = ""
    mean_hu: float | None = None
    sd_hu: float | None = None
    voxels: int | None = None
    tolerance: float | None = None


@dataclass
class Action:
    """The next turn: tool calls (``calls``), or a final answer.

    A final answer has ``answer`` (the explanation, or the whole text of an abstention) and,
    when the tools established something, ``finding``; `decide` then sets ``tag``, the text of
    the ``<answer>`` tag.
    """

    thought: str
    tool: str | None = None
    arguments: dict[str, Any] = field(default_factory=dict)
    answer: str = ""
    finding: Finding | None = None
    tag: str = ""
    more_calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def calls(self) -> list[tuple[str, dict[str, Any]]]:
        return ([(self.tool, self.arguments)] if self.tool else []) + self.more_calls


def render(action: Action) -> str:
    """A turn as a model writes it: the thought and the calls, or the explanation and the answer tag."""
    if action.calls:
        blocks = "\n".join(f"<tool_call>\n{json.dumps({'name': n, 'arguments': a})}\n</tool_call>"
                           for n, a in action.calls)
        return f"{action.thought}\n{blocks}"
    if action.finding is None:  # an abstention: the explanation is the answer
        prose = f"{action.answer}\n" if action.tag and action.tag != action.answer else ""
        return f"{action.thought}\n{prose}<answer>{action.tag or action.answer}</answer>"
    return f"{action.answer}\n<answer>{action.tag}</answer>"

